"""Command-line configs: `--config=configs/x.py[:arg]` plus `--config.key=value` overrides.

ml_collections does the parsing; this module turns its tracebacks into one-line errors that say
what to change, and checks the keys every run needs.
"""
import ast
import contextlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

REQUIRED_KEYS = ("seed", "batch_size", "total_steps", "log_every_steps", "checkpoint_every_steps")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file: path.py[:arg].",
                                          lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory: checkpoints, logs, results.")


class ConfigError(ValueError):
  """A config that cannot run; the message says what to change."""


def _one_line(error: BaseException) -> str:
  text = str(error).replace("\\n", "\n")
  if "Traceback (most recent call last)" in text:  # A get_config() that raised: keep its error.
    text = f"{text.split(':', 1)[0]}: {text.strip().splitlines()[-1].strip()}"
  text = text.replace("\n", " ")
  text = re.sub(r"[\\'\"]+", "'", text).strip("' ")
  missing = re.fullmatch(r"'?(\w+)'?(?: Did you mean '(\w+)' instead of '\w+'\?)?", text)
  if isinstance(error, AttributeError) and missing:
    hint = f" (did you mean '{missing.group(2)}'?)" if missing.group(2) else ""
    return f"unknown config key '{missing.group(1)}'{hint}"
  return text


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for `app.run` that exits with a one-line message on a bad command line."""
  try:
    rest = flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    sys.exit(f"sslax: bad command line: {_one_line(e)}")
  return rest


def workdir_from_flags(argv: list[str]) -> str:
  """The checks every entry point starts with: no stray arguments, a --workdir; quiets the
  libraries' logs. Exits with one line otherwise."""
  if len(argv) > 1:
    sys.exit(f"sslax: unexpected arguments {argv[1:]}")
  if not WORKDIR.value:
    sys.exit("sslax: --workdir=DIR is required")
  quiet_library_logs()
  return WORKDIR.value


def config_from_flags() -> ml_collections.ConfigDict:
  """The parsed --config, validated; exits with one line if the file could not be loaded."""
  if flags.FLAGS["config"].present == 0:
    sys.exit("sslax: --config=configs/<file>.py[:arg] is required")
  config = _CONFIG.value
  # ml_collections wraps a file that failed to load in an object that holds the error.
  load_error = None if isinstance(config, ml_collections.ConfigDict) else getattr(
      config, "_error", None)
  if load_error is not None:
    sys.exit(f"sslax: could not load --config={flags.FLAGS['config'].config_filename}: "
             f"{_one_line(load_error)}")
  try:
    validate(config)
  except ConfigError as e:
    sys.exit(f"sslax: bad config: {e}")
  return config


def load_config(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:arg]' as --config does, then sets dotted-key overrides.

  For tests, notebooks and sweeps: load_config("configs/simclr_mnist.py:tiny", total_steps=2).
  """
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  return with_overrides(config, overrides)


def with_overrides(config: ml_collections.ConfigDict,
                   overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted-key values set ({"optimizer.learning_rate": 1e-3}); an
  unknown key is an error, as on the command line. The result is validated."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    parent, _, leaf = key.rpartition(".")
    target = config
    for part in filter(None, parent.split(".")):
      if part not in target:
        raise ConfigError(f"unknown config key '{key}'")
      target = target[part]
    if leaf not in target:
      raise ConfigError(f"unknown config key '{key}'")
    target[leaf] = value
  validate(config)
  return config


def parse_value(text: str) -> Any:
  """A command-line value: a Python literal (1, 0.5, True, [1, 2]) or else the plain string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the keys and values every run needs; raises ConfigError naming the key."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"get_config() must return a ConfigDict, got {type(config).__name__}")
  for key in REQUIRED_KEYS:
    if key not in config:
      raise ConfigError(f"missing required key '{key}'")
  for key in ("batch_size", "total_steps", "log_every_steps", "checkpoint_every_steps"):
    if not isinstance(config[key], int) or config[key] <= 0:
      raise ConfigError(f"'{key}' must be a positive integer, got {config[key]!r}")


def to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A JSON-safe plain dict of the config (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def from_dict(values: dict[str, Any]) -> ml_collections.ConfigDict:
  """The inverse of `to_dict`, used by evaluation to rebuild a run's config from config.json."""
  return ml_collections.ConfigDict(_tuples(values))


def _tuples(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
  """Entry points: bad input (config, files, data, NaN loss) exits with one line, not a traceback.

  The traceback is still logged at --verbosity=1 for debugging.
  """
  try:
    yield
  except (FloatingPointError, ValueError, FileNotFoundError, KeyError) as e:
    logging.debug("traceback", exc_info=True)
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    sys.exit(f"sslax: {type(e).__name__}: {message}")



def quiet_library_logs() -> None:
  """Orbax and Grain log every save at INFO; show warnings only unless --verbosity was given.

  sslax prints its own progress and results to stdout.
  """
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
