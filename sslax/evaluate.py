"""Evaluation entry point: measures what a run's encoder learned, beside two baselines.

  python -m sslax.evaluate --workdir=runs/simclr [--step=N]

Restores a checkpoint of the run, extracts frozen encoder features of the labelled splits and
runs kNN (cosine, k=20, T=0.07, weighted vote) and a linear probe on them. The same protocol runs
on a randomly initialised encoder of the same architecture (the run's own initial weights) and on
raw pixels, so every number comes with the two numbers it has to beat.
"""
import functools
import json
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags

from sslax import checkpoint, optim, parallel
from sslax import config as config_lib
from sslax import state as state_lib
from sslax.data import pipeline, sources
from sslax.evals import knn, linear
from sslax.methods import get_method

_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default the latest.")

EVAL_DEFAULTS = {"knn_k": 20, "knn_temperature": 0.07, "linear_steps": 1000,
                 "linear_learning_rate": 1e-2, "linear_weight_decay": 1e-4, "batch_size": 500}


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a directory made by sslax.train")
  with open(path) as f:
    return config_lib.from_dict(json.load(f))


@functools.cache
def _jitted_features(method, level: str, mesh):
  """One compiled feature function per (method, level), shared by every call and encoder."""
  return jax.jit(functools.partial(method.features, level=level),
                 out_shardings=parallel.replicated(mesh))


def extract_features(method, params, model_state, images: np.ndarray, batch_size: int, mesh,
                     level: str = "encoder") -> np.ndarray:
  """Features of `images` at `level` in fixed-size, sharded chunks (one compiled shape)."""
  step = parallel.batch_divisor(mesh)
  batch_size = -(-batch_size // step) * step
  fn = _jitted_features(method, level, mesh)
  out = []
  for i in range(0, len(images), batch_size):
    chunk = images[i:i + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]),
                                             chunk.dtype)])
    x = jax.device_put(padded, parallel.batch_sharding(mesh))
    out.append(np.asarray(fn(params, model_state, x))[:len(chunk)])
  return np.concatenate(out)


def protocol(train_x, train_y, test_x, test_y, num_classes: int,
             cfg: dict[str, Any]) -> dict[str, float]:
  """kNN and linear-probe top-1 of one feature set."""
  knn_top1 = knn.knn_top1(train_x, train_y, test_x, test_y, num_classes, k=cfg["knn_k"],
                          temperature=cfg["knn_temperature"])
  probe = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes,
                              steps=cfg["linear_steps"], learning_rate=cfg["linear_learning_rate"],
                              weight_decay=cfg["linear_weight_decay"])
  return {"knn_top1": float(knn_top1), "linear_top1": float(probe["test_top1"])}


def evaluate(workdir: str, step: int | None = None) -> dict[str, Any]:
  """Evaluates checkpoint `step` (default: latest) of the run in `workdir`; writes results."""
  config = load_run_config(workdir)
  cfg = {**EVAL_DEFAULTS, **dict(config.get("eval", {}))}
  method = get_method(config)
  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}))
  pretrain_source = sources.make_source(config.data, "pretrain")
  sample = pipeline.sample_batch(pretrain_source, method.views())
  tx, _ = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  abstract, shardings = state_lib.state_shardings(
      method, tx, sample, config.seed, mesh, config.get("sharding_rules", ()))

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  step = ckpt.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train first")
  trained, _ = ckpt.restore(step, abstract)
  ckpt.close()
  initial = state_lib.create_state(method, tx, sample, config.seed, shardings)

  view = method.views()[0]
  train_x, train_y = pipeline.eval_arrays(sources.make_source(config.data, "train"), view)
  test_x, test_y = pipeline.eval_arrays(sources.make_source(config.data, "test"), view)
  num_classes = int(max(train_y.max(), test_y.max())) + 1

  results: dict[str, Any] = {"step": int(step), "train_examples": len(train_y),
                             "test_examples": len(test_y), "protocol": cfg,
                             "head_levels": list(method.feature_levels[1:])}
  encoders = {"": trained, "random_init_": initial}
  for prefix, state in encoders.items():
    features = functools.partial(extract_features, method, state["params"], state["model_state"],
                                 batch_size=cfg["batch_size"], mesh=mesh)
    scores = protocol(features(train_x), train_y, features(test_x), test_y, num_classes, cfg)
    results.update({prefix + k: v for k, v in scores.items()})
    # Heads above the encoder (SimCLR's projector) get kNN too: where the pretext loss acts.
    for level in method.feature_levels[1:]:
      results[f"{prefix}{level}_knn_top1"] = float(knn.knn_top1(
          features(train_x, level=level), train_y, features(test_x, level=level), test_y,
          num_classes, k=cfg["knn_k"], temperature=cfg["knn_temperature"]))
  scores = protocol(train_x.reshape(len(train_x), -1), train_y, test_x.reshape(len(test_x), -1),
                    test_y, num_classes, cfg)
  results.update({"raw_pixels_" + k: v for k, v in scores.items()})

  with open(os.path.join(workdir, "eval_results.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(results_table(results))
  return results


def results_table(results: dict[str, Any]) -> str:
  rows = [("pretrained encoder", ""), ("random-init encoder", "random_init_"),
          ("raw pixels", "raw_pixels_")]
  lines = [f"step {results['step']}: {results['train_examples']} labelled train / "
           f"{results['test_examples']} test examples",
           "| features | kNN top-1 | linear top-1 |", "|---|---|---|"]
  lines += [f"| {name} | {results[p + 'knn_top1']:.4f} | {results[p + 'linear_top1']:.4f} |"
            for name, p in rows]
  for level in results["head_levels"]:
    lines += [f"| {name} {level} (kNN only) | {results[f'{p}{level}_knn_top1']:.4f} | |"
              for name, p in (("pretrained", ""), ("random-init", "random_init_"))]
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"sslax: unexpected arguments {argv[1:]}")
  if not config_lib.WORKDIR.value:
    sys.exit("sslax: --workdir=DIR is required")
  config_lib.quiet_library_logs()
  with config_lib.one_line_errors():
    evaluate(config_lib.WORKDIR.value, _STEP.value)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
