"""Orbax checkpoints of the train state together with the data iterator's state.

Saves are asynchronous (the device-to-host copy blocks, the write does not) and atomic: Orbax
writes into a temporary directory (`<step>.orbax-checkpoint-tmp-*`) and renames it when
complete, so a process killed mid-write leaves no checkpoint that `latest_step` would pick.
"""
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from sslax import parallel


class Checkpointer:
  """Keeps the last `max_to_keep` checkpoints of a run under `directory`.

  `remove_unfinished` deletes the temporary directories of writes cut off by a crash, before
  anything else happens (Orbax's own cleanup option runs in a thread that a quick exit cuts off
  with a traceback); only the run that writes the checkpoints may pass it, since a reader would
  delete a write in flight.
  """

  def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True,
               remove_unfinished: bool = False):
    self.directory = os.path.abspath(directory)
    if remove_unfinished and jax.process_index() == 0 and os.path.isdir(self.directory):
      for name in os.listdir(self.directory):
        if ocp.utils.TMP_DIR_SUFFIX in name:
          shutil.rmtree(os.path.join(self.directory, name))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save)
    # Handlers named up front, so that item_metadata can read a checkpoint's shapes.
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict[str, Any]) -> None:
    """Starts an asynchronous save; returns once the arrays have been copied off the device."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
    """Restores onto the shardings of `abstract_state` (jax.ShapeDtypeStructs with shardings)."""
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(
          f"checkpoint {self.directory}/{step} was written by another model or optimizer: "
          f"{self._mismatch(step, abstract_state, e)}; train with the config it was written "
          "with (the workdir's config.json) or pass a new --workdir") from e
    return restored["state"], restored["data"]

  def _mismatch(self, step: int, abstract_state: Any, error: Exception) -> str:
    """The first difference of array paths and shapes between the checkpoint and this config,
    with how many there are; Orbax's own first line when the metadata shows none."""
    try:
      stored = _shapes(self._manager.item_metadata(step)["state"])
    except (ValueError, KeyError, TypeError, OSError):
      stored = None
    wanted = _shapes(abstract_state)
    differences = [] if stored is None else (
        [f"{p} is only in the checkpoint" for p in sorted(stored.keys() - wanted.keys())]
        + [f"{p} is missing from the checkpoint" for p in sorted(wanted.keys() - stored.keys())]
        + [f"{p} has shape {list(stored[p])} there, {list(wanted[p])} here"
           for p in sorted(stored.keys() & wanted.keys()) if stored[p] != wanted[p]])
    if not differences:
      lines = str(error).strip().splitlines()
      return lines[0][:200] if lines else type(error).__name__
    more = f" (and {len(differences) - 1} more differences)" if len(differences) > 1 else ""
    return differences[0] + more

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """'params/encoder/conv1/kernel' -> shape, for every array of a state or metadata tree."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {parallel.path_name(path): tuple(leaf.shape) for path, leaf in leaves}


def write_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file and a rename, so that a crash leaves
  either the old file or the new one, never a part of it."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
