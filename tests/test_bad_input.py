"""Bad input ends a run with one line that says what to change: every case in one table.

Each case runs the code a run goes through (in process, cheap) and checks the error twice: its
message is one line that names the fix, and `config_lib.one_line_errors()`, which wraps the
entry points, turns it into exactly `sslax: <Error>: <message>`. Covered elsewhere: a corrupt
file among good ones is dropped and counted (test_sources), unknown config keys and bad values
on the command line (test_config), a NaN loss (test_train).
"""
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import checkpoint, parallel, recovery
from sslax import config as config_lib
from sslax.data import sources


def _folder(root, files):
  """A folder holding `files` (name -> bytes), as data.path of the folder source."""
  root.mkdir()
  for name, data in files.items():
    (root / name).write_bytes(data)
  return sources.make_source({"source": "folder", "path": str(root)}, "pretrain")


def _tfds(name, data_dir):
  return sources.make_source({"source": "tfds", "name": name, "data_dir": str(data_dir)},
                             "pretrain")


def _restore_other_model(directory, saved, wanted):
  """Saves a state of the shapes `saved` (path -> shape), restores it as `wanted`."""
  ckpt = checkpoint.Checkpointer(str(directory), async_save=False)
  ckpt.save(1, {"params": {k: jnp.zeros(s) for k, s in saved.items()}}, {"position": 1})
  ckpt.close()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = {"params": {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=device)
                         for k, s in wanted.items()}}
  checkpoint.Checkpointer(str(directory)).restore(1, abstract)


_CORRUPT = np.random.default_rng(0).bytes(300)
_RESTORE = ("train with the config it was written with (the workdir's config.json) or pass a "
            "new --workdir")


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  run: Callable  # A directory -> raises `error`.
  error: type
  says: tuple[str, ...]  # What the message must say: what is wrong, what to change.


CASES = [
    Case("folder_every_image_corrupt",
         lambda tmp: _folder(tmp / "images", {"a.png": _CORRUPT, "b.jpg": _CORRUPT[::-1]}),
         ValueError, ("No usable images in", "all 2 image files are corrupt; replace them or "
                      "point data.path at another folder")),
    Case("folder_empty", lambda tmp: _folder(tmp / "images", {"notes.txt": b"no images"}),
         ValueError, ("it holds no .png/.jpg/.jpeg files; add some or point data.path at a "
                      "folder that does",)),
    Case("folder_missing", lambda tmp: sources.make_source(
        {"source": "folder", "path": str(tmp / "nope")}, "pretrain"),
         FileNotFoundError, ("nope does not exist: point the data path (data.path) at a folder",)),
    Case("tfds_unknown_name", lambda tmp: _tfds("no_such_dataset", tmp), ValueError,
         ("(Dataset no_such_dataset not found.): fix data.name or set data.data_dir to where "
          "it was prepared",)),
    Case("tfds_unknown_version", lambda tmp: _tfds("mnist:9.9.9", tmp), ValueError,
         ("cannot be loaded at version 9.9.9", "fix data.name or set data.data_dir")),
    Case("tfds_missing_data_dir", lambda tmp: _tfds("mnist", tmp / "nope"), FileNotFoundError,
         ("nope does not exist: set data.data_dir to the DIR of `tfds build mnist "
          "--file_format=array_record --data_dir=DIR`",)),
    Case("tfds_not_prepared", lambda tmp: _tfds("mnist", tmp), ValueError,
         ("is not prepared in data_dir=", ": run `tfds build mnist --file_format=array_record "
          "--data_dir=DIR` and set data.data_dir to that DIR")),
    Case("batch_does_not_divide_over_devices",
         lambda tmp: parallel.check_batch_size(20, parallel.make_mesh({"data": -1})),
         ValueError, ("batch_size=20 must be a multiple of 8 (data x fsdp = 8 devices, 1 "
                      "processes); try batch_size=16",)),
    Case("checkpoint_of_another_model", lambda tmp: _restore_other_model(
        tmp, {"kernel": (3, 3, 1, 4)}, {"kernel": (3, 3, 1, 8)}), ValueError,
         ("another model or optimizer: params/kernel has shape [3, 3, 1, 4] there, "
          f"[3, 3, 1, 8] here; {_RESTORE}",)),
    Case("checkpoint_with_other_parameters", lambda tmp: _restore_other_model(
        tmp, {"kernel": (2,)}, {"kernel": (2,), "bias": (2,)}), ValueError,
         (f"params/bias is missing from the checkpoint; {_RESTORE}",)),
    Case("nan_policy_unknown_action", lambda tmp: recovery.parse_policy({"action": "skip"}),
         ValueError, ("nan_policy.action='skip': use one of ['stop', 'rollback']",)),
    Case("nan_policy_unknown_key", lambda tmp: recovery.parse_policy({"max_rollback": 2}),
         ValueError, ("nan_policy has unknown keys ['max_rollback']: use ['action', "
                      "'max_rollbacks']",)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gives_one_line_that_says_what_to_change(case, tmp_path):
  for where in ("direct", "entry_point"):
    (tmp_path / where).mkdir()
  with pytest.raises(case.error) as raised:
    case.run(tmp_path / "direct")
  message = str(raised.value)
  assert "\n" not in message and all(part in message for part in case.says), message
  with pytest.raises(SystemExit) as exited, config_lib.one_line_errors():
    case.run(tmp_path / "entry_point")
  line = exited.value.code
  assert line.startswith(f"sslax: {case.error.__name__}: "), line
  assert "\n" not in line and all(part in line for part in case.says), line
