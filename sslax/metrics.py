"""Where a run's numbers go: metrics.jsonl, TensorBoard events and a progress line.

Only process 0 writes; the other processes of a multi-host run get a writer that does nothing.
"""
import json
import math
import os
import sys
import time
from typing import Any

import jax


class MetricWriter:
  """Appends one JSON object per logged step to `workdir/metrics.jsonl` and to TensorBoard."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    truncate_after(self.path, resume_step)
    from tensorboardX import SummaryWriter  # Imported late: it is slow to import.
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

  def write(self, step: int, scalars: dict[str, Any]) -> None:
    if not self.active:
      return
    row = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for key, value in row.items():
      if key != "step" and isinstance(value, (int, float)):
        self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def truncate_after(path: str, step: int) -> None:
  """Drops rows logged after `step`, so a resumed run does not repeat steps in the log."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    rows = [line for line in f if (row := _parse(line)) is not None and row["step"] <= step]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(rows)
  os.replace(tmp, path)


def _parse(line: str) -> dict[str, Any] | None:
  """A logged row, or None for a blank line or one cut off when the machine lost power."""
  try:
    return json.loads(line) if line.strip() else None
  except json.JSONDecodeError:
    return None


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _plain(value: Any) -> Any:
  """A JSON-safe Python scalar (NaN and Inf as strings, which JSON cannot hold)."""
  value = value.item() if hasattr(value, "item") else value
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


class Progress:
  """One terminal line per log step: step, loss, examples/s and the time left."""

  def __init__(self, total_steps: int):
    self.total_steps = total_steps
    self.active = jax.process_index() == 0

  def show(self, step: int, loss: float, examples_per_sec: float, steps_per_sec: float) -> None:
    if not self.active:
      return
    eta = (self.total_steps - step) / steps_per_sec if steps_per_sec > 0 else float("nan")
    line = (f"step {step:>6d}/{self.total_steps}  loss {loss:.4f}  "
            f"{examples_per_sec:8.1f} ex/s  ETA {_duration(eta)}")
    print(line, file=sys.stdout, flush=True)


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  return time.strftime("%H:%M:%S", time.gmtime(seconds))
