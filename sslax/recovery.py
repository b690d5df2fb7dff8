"""What the train loop does when a step's loss, gradient norm or parameter norm is not finite:
stop, or roll back and skip the batch.

`config.nan_policy = dict(action="stop" | "rollback", max_rollbacks=3)`. "stop" (the default)
ends the run with the step and what to change; the state is not saved. "rollback" restores the
latest checkpoint (state and data iterator), or the initial state when none was written yet,
replays the same batches up to the offending one and skips it, so every later batch comes one
position later than in a run without it. Once `max_rollbacks` batches were skipped, the next
non-finite step stops the run as "stop" does. Every non-finite step and rollback is logged and
printed with the step and the batch index (the position in the data stream).

The skipped batch indices are part of the data state every checkpoint keeps (`BatchStream`), so
a resumed run draws exactly the batches the uninterrupted one did and counts the same rollbacks.
"""
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

ACTIONS = ("stop", "rollback")
DEFAULT_POLICY = {"action": "stop", "max_rollbacks": 3}


# The loss; the gradient norm, since a NaN input can leave the loss finite (a normalisation that
# maps NaN features to zeros) while its gradient is NaN; and the norm of the updated parameters,
# which finite gradients can still make infinite (a huge learning rate): that state is never
# saved, so the latest checkpoint is always one a rollback can continue from.
WATCHED = ("loss", "grad_norm", "param_norm")


class NonFiniteStep(FloatingPointError):
  """`name` (a WATCHED metric) of `step`, computed on the batch at stream position `batch`, is
  `value`: NaN or infinite."""

  def __init__(self, message: str, step: int, batch: int, name: str, value: float):
    super().__init__(message)
    self.step, self.batch, self.name, self.value = step, batch, name, value


def check_finite(step: int, batch: int, metrics: Mapping[str, Any],
                 last_saved: int | None) -> None:
  """Raises NonFiniteStep if a WATCHED metric is not finite. Waits for those scalars only;
  float() on each costs less than one jax.device_get of both (measured on CPU)."""
  for name in WATCHED:
    value = float(metrics.get(name, 0.0))
    if not np.isfinite(value):
      kept = f"step {last_saved}" if last_saved is not None else "none yet"
      raise NonFiniteStep(
          f"{name} is {value} at step {step}; stopped without saving this state (last good "
          f"checkpoint: {kept}). Lower optimizer.learning_rate, set optimizer.grad_clip_norm, "
          "or check the input data.", step, batch, name, value)


def parse_policy(policy: Mapping[str, Any] | None) -> tuple[str, int]:
  """(action, max_rollbacks) of `config.nan_policy` (None: stop); one-line errors otherwise."""
  policy = dict(policy or {})
  unknown = sorted(set(policy) - set(DEFAULT_POLICY))
  if unknown:
    raise ValueError(f"nan_policy has unknown keys {unknown}: use {sorted(DEFAULT_POLICY)}")
  policy = {**DEFAULT_POLICY, **policy}
  action, max_rollbacks = policy["action"], policy["max_rollbacks"]
  if action not in ACTIONS:
    raise ValueError(f"nan_policy.action={action!r}: use one of {list(ACTIONS)}")
  if not isinstance(max_rollbacks, int) or max_rollbacks < 0:
    raise ValueError(f"nan_policy.max_rollbacks={max_rollbacks!r}: use an integer >= 0")
  return action, max_rollbacks


class BatchStream:
  """The data iterator, its position (the index of the next batch, skipped batches included)
  and the batch indices to skip. `get_state()` is the data state checkpoints keep."""

  def __init__(self, iterator: Any):
    self._iterator = iterator
    self.position = 0
    self.skipped: list[int] = []

  def next(self) -> tuple[int, Any]:
    """(index, batch) of the next batch that is not skipped."""
    while self.position in self.skipped:
      next(self._iterator)
      self.position += 1
    self.position += 1
    return self.position - 1, next(self._iterator)

  def get_state(self) -> dict[str, Any]:
    return {"iterator": self._iterator.get_state(), "position": self.position,
            "skipped_batches": list(self.skipped)}

  def set_state(self, state: Mapping[str, Any], step: int) -> None:
    """Continues from a checkpoint's data state. A checkpoint written before batches could be
    skipped holds the bare iterator state of a run that drew one batch per step."""
    if "position" not in state:
      state = {"iterator": state, "position": step, "skipped_batches": []}
    self._iterator.set_state(state["iterator"])
    self.position = int(state["position"])
    self.skipped = [int(b) for b in state["skipped_batches"]]


def _announce(message: str) -> None:
  logging.warning(message)
  if jax.process_index() == 0:
    print(message, flush=True)


class Rollback:
  """Applies the NaN policy to a NonFiniteStep: re-raises it (policy "stop", or no rollbacks
  left) or returns the state and step to continue from, with the offending batch skipped."""

  def __init__(self, policy: Mapping[str, Any] | None, checkpointer: Any, abstract_state: Any,
               initial_state: Callable[[], Any], stream: BatchStream):
    self.action, self.max_rollbacks = parse_policy(policy)
    self._checkpointer, self._abstract = checkpointer, abstract_state
    self._initial_state, self._initial_data = initial_state, stream.get_state()
    self._stream = stream

  def __call__(self, nan: NonFiniteStep) -> tuple[Any, int]:
    used = len(self._stream.skipped)
    _announce(f"non-finite {nan.name} {nan.value} at step {nan.step} (batch {nan.batch}); "
              f"nan_policy {self.action}, {used} of {self.max_rollbacks} rollbacks used")
    if self.action == "stop" or used >= self.max_rollbacks:
      raise nan
    self._checkpointer.wait()  # The latest save may still be being written.
    step = self._checkpointer.latest_step()
    if step is None:
      state, data, step, origin = self._initial_state(), self._initial_data, 0, "initial state"
    else:
      state, data = self._checkpointer.restore(step, self._abstract)
      origin = f"checkpoint {step}"
    skipped = [*self._stream.skipped, nan.batch]
    self._stream.set_state(data, step)
    self._stream.skipped = skipped
    _announce(f"rollback {used + 1} of {self.max_rollbacks}: restored the {origin}; replaying "
              f"up to batch {nan.batch} and skipping it")
    return state, step
