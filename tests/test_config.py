"""Command-line configs: overrides apply, and bad input exits with one clear line."""
import subprocess
import sys

import ml_collections
import pytest

from sslax import config as config_lib

REPO = __file__.rsplit("/tests/", 1)[0]


def run_train(*args, tmp_path):
  return subprocess.run([sys.executable, "-m", "sslax.train", f"--workdir={tmp_path}", *args],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


def test_unknown_key_is_one_line_with_suggestion(tmp_path):
  out = run_train("--config=configs/simclr_mnist.py:tiny", "--config.sed=3", tmp_path=tmp_path)
  assert out.returncode != 0
  assert out.stderr.strip().splitlines()[-1] == (
      "sslax: bad command line: unknown config key 'sed' (did you mean 'seed'?)")
  assert "Traceback" not in out.stderr


def test_bad_value_and_missing_file_are_one_line(tmp_path):
  bad = run_train("--config=configs/simclr_mnist.py:tiny", "--config.total_steps=abc",
                  tmp_path=tmp_path)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert "total_steps" in bad.stderr.strip().splitlines()[-1]
  missing = run_train("--config=configs/nope.py", tmp_path=tmp_path)
  assert missing.returncode != 0 and "Traceback" not in missing.stderr
  assert "could not load --config=configs/nope.py" in missing.stderr.strip().splitlines()[-1]
  variant = run_train("--config=configs/simclr_mnist.py:huge", tmp_path=tmp_path)
  assert variant.returncode != 0 and "Traceback" not in variant.stderr
  assert variant.stderr.strip().splitlines()[-1].endswith(
      "ValueError: unknown variant 'huge'; use configs/simclr_mnist.py or :tiny")


def test_overrides_apply_end_to_end(tmp_path):
  out = run_train("--config=configs/simclr_mnist.py:tiny", "--config.total_steps=2",
                  "--config.log_every_steps=1", "--config.simclr.temperature=0.3",
                  tmp_path=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  saved = (tmp_path / "config.json").read_text()
  assert '"total_steps": 2' in saved and '"temperature": 0.3' in saved


def test_validate_names_the_key():
  c = ml_collections.ConfigDict({"seed": 0, "batch_size": 8, "total_steps": 0,
                                 "log_every_steps": 1, "checkpoint_every_steps": 1})
  with pytest.raises(config_lib.ConfigError, match="'total_steps' must be a positive integer"):
    config_lib.validate(c)
  del c["seed"]
  with pytest.raises(config_lib.ConfigError, match="missing required key 'seed'"):
    config_lib.validate(c)


def test_json_round_trip_keeps_values():
  c = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py")
  back = config_lib.from_dict(config_lib.to_dict(c))
  assert back.data.augment["crop_scale"] == c.data.augment["crop_scale"]
  assert back.to_dict() == ml_collections.ConfigDict(c.to_dict()).to_dict()


def test_load_config_overrides_and_rejects_unknown_keys():
  c = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny", total_steps=3,
                             **{"simclr.temperature": 0.7})
  assert c.total_steps == 3 and c.simclr.temperature == 0.7 and c.batch_size == 16
  with pytest.raises(config_lib.ConfigError, match="unknown config key 'simclr.tau'"):
    config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny", **{"simclr.tau": 1.0})
