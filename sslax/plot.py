"""Pictures of a run: python -m sslax.plot --workdir=DIR [--map_points=1000]

Writes PNGs into DIR/plots:
- training.png: the loss and the learning rate against step (metrics.jsonl).
- evals.png: every accuracy logged by the evaluations inside training (`<name>/...top1`) and,
  after `sslax.evaluate --all_steps`, the offline kNN and linear accuracy (eval_curve.json).
- rank.png: RankMe against step, from a `collapse` evaluation inside training.
- embedding_map.png: a 2-D map (UMAP where umap-learn is installed, else t-SNE) of the latest
  checkpoint's test features, coloured by label, beside the initial weights' map: a picture of
  what pretraining changed.
A picture whose data the run does not have is skipped, with a line saying why.
"""
import json
import os
from typing import Any

import jax
import numpy as np
from absl import app, flags
from matplotlib.figure import Figure  # Draws to files: no pyplot state, no display backend.

from sslax import config as config_lib
from sslax import evaluate, parallel
from sslax import metrics as metrics_lib
from sslax.evals import probe_data
from sslax.methods import get_method

_MAP_POINTS = flags.DEFINE_integer("map_points", 1000, "Test examples in the embedding map.")


def _figure(width: float = 7, height: float = 4) -> tuple[Figure, Any]:
  fig = Figure(figsize=(width, height), layout="tight")
  return fig, fig.subplots()


def _save(fig: Figure, path: str) -> str:
  fig.savefig(path, dpi=110)
  return path


def plot_training(rows: list[dict[str, Any]], path: str) -> str | None:
  train = [r for r in rows if "loss" in r]
  if not train:
    return None
  fig, ax = _figure()
  ax.plot([r["step"] for r in train], [r["loss"] for r in train], color="tab:blue")
  ax.set_xlabel("step")
  ax.set_ylabel("loss", color="tab:blue")
  if any("learning_rate" in r for r in train):
    lr_ax = ax.twinx()
    lr_rows = [r for r in train if "learning_rate" in r]
    lr_ax.plot([r["step"] for r in lr_rows], [r["learning_rate"] for r in lr_rows],
               color="tab:orange")
    lr_ax.set_ylabel("learning rate", color="tab:orange")
  ax.set_title("training")
  return _save(fig, path)


def _series(rows: list[dict[str, Any]], keep) -> dict[str, tuple[list, list]]:
  out: dict[str, tuple[list, list]] = {}
  for r in rows:
    for k, v in r.items():
      if k != "step" and keep(k) and isinstance(v, int | float):
        out.setdefault(k, ([], []))
        out[k][0].append(r["step"])
        out[k][1].append(v)
  return out


def _line_plot(series: dict[str, tuple[list, list]], ylabel: str, title: str,
               path: str) -> str | None:
  """One line per named (steps, values) series; None when there is nothing to draw."""
  if not series:
    return None
  fig, ax = _figure()
  for name, (steps, values) in sorted(series.items()):
    ax.plot(steps, values, marker="o", label=name)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.legend()
  ax.set_title(title)
  return _save(fig, path)


def plot_evals(rows: list[dict[str, Any]], curve: list[dict[str, Any]], path: str) -> str | None:
  series = _series(rows, lambda k: "/" in k and k.endswith("top1"))
  series.update({f"offline {k}": v for k, v in _series(
      curve, lambda k: k in ("knn_top1", "linear_top1", "finetune_top1")).items()})
  return _line_plot(series, "top-1 accuracy", "evaluation against step", path)


def plot_rank(rows: list[dict[str, Any]], path: str) -> str | None:
  return _line_plot(_series(rows, lambda k: k.endswith("/rankme")),
                    "RankMe (effective rank of the test features)", "rank of the embedding",
                    path)


def map_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
  """([n, 2] coordinates, method name): UMAP where umap-learn is installed, else t-SNE from
  scikit-learn (PCA-initialised, perplexity below n / 3). Both are imported only here: they
  take a second or more to import."""
  features = np.asarray(features, np.float64)
  try:
    import umap
  except ImportError:
    from sklearn.manifold import TSNE
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        features), "t-SNE"
  return umap.UMAP(n_components=2, random_state=seed).fit_transform(features), "UMAP"


def plot_embedding_map(workdir: str, path: str, points: int) -> str | None:
  """2-D maps of the test features of the latest checkpoint and of the initial weights."""
  config = evaluate.load_run_config(workdir)
  method = get_method(config)
  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}))
  step, trained, initial = evaluate.trained_and_initial(method, config, workdir, None, mesh)
  cfg = {**evaluate.EVAL_DEFAULTS, **(config.eval.to_dict() if "eval" in config else {})}
  splits = probe_data.labelled_splits(method, config, workdir, cfg)
  n = min(points, len(splits.test_y))
  index = np.random.default_rng(0).permutation(len(splits.test_y))[:n]
  subset = jax.tree.map(lambda a: np.asarray(a)[index], splits.test_x)  # Images or token dicts.
  labels = splits.test_y[index]
  fig = Figure(figsize=(11, 5), layout="constrained")
  axes = fig.subplots(1, 2)
  for ax, (name, state) in zip(axes, ((f"pretrained, step {step}", trained),
                                      ("initial weights", initial)), strict=True):
    features = probe_data.extract_features(method, state["params"], state["model_state"], subset,
                                           cfg["batch_size"], mesh)
    xy, how = map_2d(features)
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=6)
    ax.set_title(f"{name}: {how} of {n} test features")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(scatter, ax=axes, label="label")
  return _save(fig, path)


def plot_run(workdir: str, map_points: int = 1000) -> dict[str, str | None]:
  """Every picture of the run in `workdir`; name -> PNG path, None where data is missing."""
  out_dir = os.path.join(workdir, "plots")
  os.makedirs(out_dir, exist_ok=True)
  rows = metrics_lib.read_metrics(workdir)
  curve_path = os.path.join(workdir, "eval_curve.json")
  curve = []
  if os.path.exists(curve_path):
    with open(curve_path) as f:
      curve = json.load(f)
  has_checkpoint = os.path.isdir(os.path.join(workdir, "checkpoints"))
  return {
      "training": plot_training(rows, os.path.join(out_dir, "training.png")),
      "evals": plot_evals(rows, curve, os.path.join(out_dir, "evals.png")),
      "rank": plot_rank(rows, os.path.join(out_dir, "rank.png")),
      "embedding_map": plot_embedding_map(workdir, os.path.join(out_dir, "embedding_map.png"),
                                          map_points) if has_checkpoint and map_points else None,
  }


def main(argv: list[str]) -> None:
  workdir = config_lib.workdir_from_flags(argv)
  with config_lib.one_line_errors():
    for name, path in plot_run(workdir, _MAP_POINTS.value).items():
      print(f"{name}: {path}" if path else f"{name}: skipped (the run has no data for it)")


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
