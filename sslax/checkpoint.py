"""Orbax checkpoints of the train state together with the data iterator's state.

Saves are asynchronous (the device-to-host copy blocks, the write does not) and atomic: Orbax
writes into a temporary directory and renames it when complete, so a process killed mid-write
leaves no checkpoint that `latest_step` would pick.
"""
import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Keeps the last `max_to_keep` checkpoints of a run under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "data"))

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
          f"checkpoint {self.directory}/{step} does not match the model and optimizer of this "
          f"config ({str(e).splitlines()[0][:200]}); use a new --workdir or the config it was "
          "trained with") from e
    return restored["state"], restored["data"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

