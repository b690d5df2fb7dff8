"""Pretext tasks. A method is one module here, `sslax/methods/<name>.py`, defining `Method`.

`config.method` names the module, as big_vision names its models and evaluators; adding a method
is one file plus one config and touches nothing else. See `base.PretextMethod` for the interface.
"""
import importlib
import pkgutil

import ml_collections

from sslax.methods.base import PretextMethod


def available() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")


def get_method(config: ml_collections.ConfigDict) -> PretextMethod:
  """Instantiates `sslax.methods.<config.method>.Method(config)`."""
  name = config.method
  if name not in available():
    raise ValueError(f"unknown method={name!r}; available: {', '.join(available())}")
  return importlib.import_module(f"sslax.methods.{name}").Method(config)
