"""Shared checks for pretext methods: a few sharded steps, and train + checkpoint + evaluate."""
import jax
import numpy as np

from sslax import checkpoint, evaluate, metrics, optim, parallel, train
from sslax import config as config_lib
from sslax import state as state_lib
from sslax.data import pipeline
from sslax.methods import get_method
from sslax.step import make_train_step

REPO = __file__.rsplit("/tests/", 1)[0]


def run_steps(config, devices, num_steps=3, workdir=None, mesh_axes=None, rules=()):
  """(losses, final params, final model_state, final extra) of `num_steps` steps on `devices`
  arranged as `mesh_axes` (default all data parallel), parameters laid out by `rules`.

  `workdir` is where a text method keeps its tokenizer."""
  mesh = parallel.make_mesh(mesh_axes or {"data": -1}, devices=devices)
  method = get_method(config)
  source, views = train.pretrain_data(method, config, workdir)
  dataset = pipeline.train_dataset(source, views, config.batch_size, config.seed)
  sample = pipeline.sample_batch(source, views)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  _, shardings = state_lib.state_shardings(method, tx, sample, config.seed, mesh, rules)
  state = state_lib.create_state(method, tx, sample, config.seed, shardings)
  step_fn = make_train_step(method, tx, schedule, mesh, shardings)
  losses = []
  for i in range(num_steps):
    batch = parallel.to_global(dataset[i], mesh)
    state, metrics_ = step_fn(state, batch)
    losses.append(float(metrics_["loss"]))
  state = jax.device_get(state)
  return np.array(losses), state["params"], state["model_state"], state["extra"]


def assert_eight_devices_match_one(config, num_steps=3, rtol=2e-5, workdir=None):
  """The loss curve and final state on 8 simulated devices equal those on one device."""
  one = run_steps(config, jax.devices()[:1], num_steps, workdir)
  eight = run_steps(config, jax.devices()[:8], num_steps, workdir)
  assert np.all(np.isfinite(one[0])) and one[0][0] != one[0][-1], one[0]
  np.testing.assert_allclose(eight[0], one[0], rtol=rtol)
  for a, b in zip(jax.tree.leaves(one[1:]), jax.tree.leaves(eight[1:]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def train_and_evaluate(config_path, workdir, **overrides):
  """Trains `config_path` for 4 steps (checkpoints at 2 and 4), then evaluates the last one.

  Returns (per-step metric rows, evaluation results). Checks the parts every method shares:
  finite losses at every step, both checkpoints kept, results for the three feature sets.
  Evaluation runs the kNN (without its k/T sweep), linear and pretext (4 held-out batches)
  evaluators only: the others (fine-tuning, few-shot, collapse, retrieval) and the full kNN
  sweep are the same code for every method and are tested once, on SimCLR, by
  tests/test_train.py (and unit-tested in test_fewshot/collapse/retrieval/knn.py).
  """
  overrides = {"total_steps": 4, "log_every_steps": 1, "checkpoint_every_steps": 2,
               "keep_checkpoints": 2, **overrides}
  config = config_lib.load_config(config_path, **overrides)
  train.train(config, str(workdir))
  rows = metrics.read_metrics(workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert all(np.isfinite(r["loss"]) for r in rows), rows
  assert checkpoint.Checkpointer(str(workdir / "checkpoints")).all_steps() == [2, 4]
  results = evaluate.evaluate(str(workdir), overrides={
      "evaluators": ["knn", "linear", "pretext"], "knn_sweep_ks": [], "pretext_batches": 4})
  for prefix in ("", "random_init_", "raw_pixels_"):
    for key in ("knn_top1", "linear_top1"):
      assert 0.0 <= results[prefix + key] <= 1.0
  return rows, results
