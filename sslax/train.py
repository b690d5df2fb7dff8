"""Pretraining entry point and the one train loop every method shares.

  python -m sslax.train --config=configs/simclr_mnist.py --workdir=runs/simclr [--config.x=y]

Running the same command on the same workdir resumes from the latest checkpoint, with the data
iterator where it was, so the losses continue exactly as if the run had not stopped.
"""
if __name__ == "__main__":  # Before numpy and JAX start threads: sslax/host_memory.py.
  from sslax import host_memory
  host_memory.keep_freed_memory()

import functools
import json
import os
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, logging
from jax.experimental import multihost_utils

from sslax import checkpoint, distributed, optim, parallel, recovery
from sslax import config as config_lib
from sslax import metrics as metrics_lib
from sslax import state as state_lib
from sslax.data import pipeline, sources
from sslax.evals import online
from sslax.methods import get_method
from sslax.step import make_train_step


class _Preemption:
  """Turns SIGTERM into a stop the loop checks after each step: save, then exit cleanly.

  One process: a Python handler sets a flag. Several: JAX's preemption sync manager (started by
  jax.distributed.initialize) catches SIGTERM on any host and names one step, max + 1 of the
  hosts' steps; every host learns it from a local check (well under a microsecond, no device or
  host sync) and all of them save that step and stop.
  """

  def __init__(self):
    self.requested = False
    self._synced = jax.process_count() > 1

  def __enter__(self):
    if not self._synced:  # A Python handler would replace JAX's, which the other hosts rely on.
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint after this step, then exiting.")
    self.requested = True

  def stop(self, step: int) -> bool:
    """Whether to save `step` and exit; every process must call it with every step."""
    if self._synced:
      self.requested = multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def __exit__(self, *exc):
    if not self._synced:
      signal.signal(signal.SIGTERM, self._previous)


def pretrain_data(method: Any, config: ml_collections.ConfigDict, workdir: str) -> tuple[Any, Any]:
  """(records, views) to pretrain on. A method with its own `data(split, workdir)` (text: a
  tokenizer trained into the workdir, tokenised documents) provides both; image methods read
  `config.data` and give augmentation specs."""
  if hasattr(method, "data"):
    return method.data("pretrain", workdir)
  return sources.make_source(config.data, "pretrain"), method.views()


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Pretrains (or resumes) the run in `workdir`; returns the last logged metrics."""
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)

  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}))
  parallel.check_batch_size(config.batch_size, mesh)
  method = get_method(config)
  source, views = pretrain_data(method, config, workdir)
  if getattr(source, "report", None):
    print(f"data cleaning: {source.report}", flush=True)
  dataset = pipeline.train_dataset(source, views, config.batch_size, config.seed)
  sample = pipeline.sample_batch(source, views)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  abstract, shardings = state_lib.state_shardings(
      method, tx, sample, config.seed, mesh, config.get("sharding_rules", ()))

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 max_to_keep=config.get("keep_checkpoints", 3),
                                 remove_unfinished=True)
  iterator = pipeline.make_iterator(dataset, config.data.get("num_workers", 0))
  stream = recovery.BatchStream(iterator)
  initial_state = functools.partial(state_lib.create_state, method, tx, sample, config.seed,
                                    shardings)
  rollback = recovery.Rollback(config.get("nan_policy"), ckpt, abstract, initial_state, stream)
  start = ckpt.latest_step()
  if start is None:
    start = 0
    state = initial_state()
  else:
    state, data_state = ckpt.restore(start, abstract)
    stream.set_state(data_state, start)
    print(f"resumed from step {start} of {workdir}", flush=True)
  if jax.process_index() == 0:  # Once the checkpoint fits: a failed resume keeps the old one.
    checkpoint.write_atomically(os.path.join(workdir, "config.json"),
                                json.dumps(config_lib.to_dict(config), indent=2))

  train_step = make_train_step(method, tx, schedule, mesh, shardings,
                               grad_accum_steps=config.get("grad_accum_steps", 1))
  online_evals = online.OnlineEvals(method, config, workdir, mesh)
  writer = metrics_lib.MetricWriter(workdir, resume_step=start)
  progress = metrics_lib.Progress(config.total_steps)
  last_saved = start if start else None
  logged: dict[str, Any] = {}
  previous = None
  interval_start, data_wait, interval_steps = time.perf_counter(), 0.0, 0
  try:
    with _Preemption() as preemption:
      step = start
      while step < config.total_steps:
        step += 1
        t = time.perf_counter()
        index, host_batch = stream.next()
        batch = parallel.to_global(host_batch, mesh)
        data_wait += time.perf_counter() - t
        state, metrics = train_step(state, batch)
        interval_steps += 1
        try:  # Each check_finite raises NonFiniteStep, which config.nan_policy handles below.
          # Checking the previous step's loss waits only for work already queued before this.
          if previous is not None:
            recovery.check_finite(*previous, last_saved)
          previous = (step, index, metrics)

          if step % config.log_every_steps == 0 or step == config.total_steps:
            row = jax.device_get(metrics)
            recovery.check_finite(step, index, row, last_saved)
            elapsed = time.perf_counter() - interval_start
            row.update(examples_per_sec=config.batch_size * interval_steps / elapsed,
                       steps_per_sec=interval_steps / elapsed,
                       data_wait_fraction=data_wait / elapsed)
            writer.write(step, row)
            progress.show(step, float(row["loss"]), row["examples_per_sec"],
                          row["steps_per_sec"])
            logged = {"step": step, **row}
            interval_start, data_wait, interval_steps = time.perf_counter(), 0.0, 0

          if online_evals.due(step):
            evaluated = online_evals(state, step)
            writer.write(step, evaluated)
            if jax.process_index() == 0:
              print(f"step {step:>7}  " + "  ".join(f"{k} {v:.4f}" for k, v in
                                                    evaluated.items()), flush=True)

          stop = preemption.stop(step)
          if stop or step % config.checkpoint_every_steps == 0 or step == config.total_steps:
            recovery.check_finite(step, index, metrics, last_saved)
            ckpt.save(step, state, stream.get_state())
            last_saved = step
        except recovery.NonFiniteStep as nan:
          state, step = rollback(nan)  # Re-raises it unless the policy allows a rollback.
          last_saved, previous = step or None, None
          if writer.active:  # The steps after `step` are trained again.
            metrics_lib.truncate_after(writer.path, step)
          interval_start, data_wait, interval_steps = time.perf_counter(), 0.0, 0
          continue
        if stop:
          logging.warning("preempted: checkpoint of step %d saved; exiting.", step)
          break
  finally:
    ckpt.close()
    writer.close()
    close = getattr(iterator, "close", None)
    if close:
      close()
  return {k: float(np.asarray(v)) for k, v in logged.items()}


def main(argv: list[str]) -> None:
  workdir = config_lib.workdir_from_flags(argv)
  config = config_lib.config_from_flags()
  with config_lib.one_line_errors():
    distributed.initialize()
    train(config, workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
