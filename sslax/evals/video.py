"""Evaluation of video methods (`method.video_eval`): frozen frame features of held-out clips,
for the trained encoder and the run's initial weights (random init), on three tasks.

- Digit identities (Moving-MNIST, 2 digits a clip): a clip's feature is the mean of its frames'
  features; a multi-label logistic probe (one sigmoid per digit class, AdamW, full batch) is
  fitted on training clips; reported are the mean per-digit top-2 accuracy (the fraction of a
  clip's digits among its 2 highest scores) and the both-digits accuracy (all of its digits
  among them).
- Frame order: Shuffle and Learn tuples (sslax.data.video_examples.order_tuple, fixed draws);
  a linear probe on [f_b, f_c, f_d, |f_b - f_c|, |f_c - f_d|] of the tuple's frame features,
  fitted on training clips' tuples, accuracy on held-out ones (chance 0.5).
- Next frame: closed-form ridge regression (l2 = video_ridge_l2) from the features of k context
  frames (standardised, concatenated) to the pixels of the next frame (the evaluation view in
  [0, 1]); mean squared error on held-out clips, beside copying the last context frame.

The digit and frame-order probes also run on raw pixels (a clip's mean frame; the tuple's
frames). RankMe (Garrido et al. 2023) of the held-out frame features shows collapse. Plus the
method's own loss and metrics on held-out clips (`pretext`): the frame-order
method's accuracy, the future-frame method's latent error.
"""
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax.data import video, video_examples, video_ops
from sslax.evals import collapse, linear, pretext, probe_data

EVAL_KEYS = {"video_train_clips": 1000, "video_test_clips": 500, "video_context": 4,
             "video_tuples_per_clip": 4, "video_ridge_l2": 10.0, "video_probe_steps": 500}


def top2_digit_scores(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """scores [N, C], labels [N, L] -> mean per-digit top-2 accuracy and both-digits accuracy."""
  top2 = np.argsort(-scores, axis=1, kind="stable")[:, :2]
  hit = (labels[:, :, None] == top2[:, None, :]).any(-1)  # [N, L]
  return {"per_digit_top2": float(hit.mean()), "both_digits": float(hit.all(-1).mean())}


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit_multilabel(x, targets, *, num_classes: int, steps: int, learning_rate: float = 1e-2,
                    weight_decay: float = 1e-4):
  """Logistic regression of multi-hot targets [N, C] on x [N, D]: {"w": [D, C], "b": [C]}."""
  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
  opt = optax.adamw(learning_rate, weight_decay=weight_decay, mask={"w": True, "b": False})

  def loss_fn(p):
    return optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], targets).mean()

  def step(carry, _):
    p, state = carry
    updates, state = opt.update(jax.grad(loss_fn)(p), state, p)
    return (optax.apply_updates(p, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params


def multilabel_probe(train_x: np.ndarray, train_labels: np.ndarray, test_x: np.ndarray,
                     test_labels: np.ndarray, num_classes: int, steps: int) -> dict[str, float]:
  """A per-class sigmoid probe on standardised features; top2_digit_scores on the test set."""
  train_x, test_x = linear._standardize(train_x, test_x)
  targets = np.zeros((len(train_labels), num_classes), np.float32)
  np.put_along_axis(targets, train_labels, 1.0, axis=1)
  p = _fit_multilabel(train_x, targets, num_classes=num_classes, steps=steps)
  return top2_digit_scores(np.asarray(test_x @ p["w"] + p["b"]), test_labels)


def order_probe_inputs(feats: np.ndarray, tuples_per_clip: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Frame features [N, T, D] -> tuple inputs [N * n, 5D] and labels [N * n] (fixed draws)."""
  rng = np.random.default_rng(seed)
  rows, labels = [], []
  for clip in feats:
    for _ in range(tuples_per_clip):
      index, label = video_examples.order_tuple(len(clip), rng)
      b, c, d = clip[index]
      rows.append(np.concatenate([b, c, d, np.abs(b - c), np.abs(c - d)]))
      labels.append(label)
  return np.stack(rows), np.asarray(labels, np.int32)


def next_frame_inputs(feats: np.ndarray, pixels: np.ndarray,
                      context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(context features [M, k*D], next-frame pixels [M, P], last context frame [M, P]) of every
  window of k + 1 frames of features [N, T, D] and pixels [N, T, ...]."""
  n, t = feats.shape[:2]
  flat = pixels.reshape(n, t, -1)
  x = np.concatenate([feats[:, s:s + context].reshape(n, -1)[:, None]
                      for s in range(t - context)], axis=1)
  return (x.reshape(-1, x.shape[-1]), flat[:, context:].reshape(-1, flat.shape[-1]),
          flat[:, context - 1:-1].reshape(-1, flat.shape[-1]))


def ridge_next_frame_mse(train: tuple, test: tuple, l2: float) -> float:
  """Held-out MSE of a ridge regression (with bias, standardised inputs) of next_frame_inputs."""
  train_x, test_x = linear._standardize(train[0], test[0])
  train_x = np.concatenate([train_x, np.ones((len(train_x), 1), np.float32)], 1).astype(np.float64)
  test_x = np.concatenate([test_x, np.ones((len(test_x), 1), np.float32)], 1)
  gram = train_x.T @ train_x + l2 * np.eye(train_x.shape[1])
  w = np.linalg.solve(gram, train_x.T @ train[1].astype(np.float64))
  return float(np.mean((test_x @ w - test[1]) ** 2))


def clip_arrays(source: Any, count: int, spec: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Evaluation views [N, T, s, s, C], [0, 1] frames [N, T, s, s, C] and labels [N, L] of
  `count` clips spread evenly over `source`."""
  index = np.linspace(0, len(source) - 1, min(count, len(source))).astype(int)
  records = [source[int(i)] for i in index]
  pixels = np.stack([video_ops.resize_clip(video_ops.to_float(r["clip"]), spec["size"])
                     for r in records])
  views = np.stack([video_ops.eval_clip(video_ops.to_float(r["clip"]), spec) for r in records])
  return views, pixels, np.stack([r["labels"] for r in records])


def evaluate_video(method, config, cfg: dict[str, Any], step: int, trained, initial,
                   mesh) -> dict[str, Any]:
  """The tasks above for the trained and the initial state; keys prefixed "" and
  "random_init_", plus "raw_pixels_" probes and "copy_last_frame_next_frame_mse"."""
  cfg = {**EVAL_KEYS, **cfg}
  data, spec, seed = config.data, config.data.augment, config.seed
  train_src = video.make_video_source(data, "train")
  test_src = video.make_video_source(data, "heldout")
  train_v, train_p, train_y = clip_arrays(train_src, cfg["video_train_clips"], spec)
  test_v, test_p, test_y = clip_arrays(test_src, cfg["video_test_clips"], spec)
  k = cfg["video_context"]
  results: dict[str, Any] = {"step": int(step), "protocol": cfg, "train_clips": len(train_v),
                             "test_clips": len(test_v), "frames": int(train_v.shape[1])}
  for prefix, state in (("", trained), ("random_init_", initial)):
    def features(views, state=state):
      flat = views.reshape(-1, *views.shape[2:])
      f = probe_data.extract_features(method, state["params"], state["model_state"], flat,
                                      cfg["batch_size"], mesh)
      return f.reshape(*views.shape[:2], -1)
    train_f, test_f = features(train_v), features(test_v)
    results[f"{prefix}frame_rankme"] = collapse.rankme(test_f.reshape(-1, test_f.shape[-1]))
    if train_y.shape[1]:
      scores = multilabel_probe(train_f.mean(1), train_y, test_f.mean(1), test_y, 10,
                                cfg["video_probe_steps"])
      results.update({f"{prefix}digits_{key}": v for key, v in scores.items()})
    order_train = order_probe_inputs(train_f, cfg["video_tuples_per_clip"], seed)
    order_test = order_probe_inputs(test_f, cfg["video_tuples_per_clip"], seed + 1)
    probe = linear.linear_probe(*order_train, *order_test, 2, steps=cfg["linear_steps"],
                                learning_rate=cfg["linear_learning_rate"],
                                weight_decay=cfg["linear_weight_decay"])
    results[f"{prefix}order_probe_accuracy"] = float(probe["test_top1"])
    nf_train, nf_test = (next_frame_inputs(train_f, train_p, k),
                         next_frame_inputs(test_f, test_p, k))
    results[f"{prefix}next_frame_mse"] = ridge_next_frame_mse(nf_train, nf_test,
                                                              cfg["video_ridge_l2"])
    if "pretext" in cfg["evaluators"]:
      scores = pretext.heldout_pretext_metrics(
          pretext.loss_metrics(method, state["extra"], step, seed), state["params"],
          state["model_state"], test_src, method.transform(), config.batch_size, seed + 1, mesh,
          cfg["pretext_batches"])
      results.update({f"{prefix}heldout_{key}": v for key, v in scores.items()})
  results["copy_last_frame_next_frame_mse"] = float(np.mean((nf_test[2] - nf_test[1]) ** 2))
  results.update(_raw_pixel_scores(train_v, train_y, test_v, test_y, cfg, seed))
  return results


def _raw_pixel_scores(train_v, train_y, test_v, test_y, cfg, seed) -> dict[str, float]:
  """The digit and frame-order probes on the evaluation views' pixels as features."""
  train_f, test_f = (v.reshape(*v.shape[:2], -1) for v in (train_v, test_v))
  out = {}
  if train_y.shape[1]:
    scores = multilabel_probe(train_f.mean(1), train_y, test_f.mean(1), test_y, 10,
                              cfg["video_probe_steps"])
    out.update({f"raw_pixels_digits_{key}": v for key, v in scores.items()})
  probe = linear.linear_probe(*order_probe_inputs(train_f, cfg["video_tuples_per_clip"], seed),
                              *order_probe_inputs(test_f, cfg["video_tuples_per_clip"], seed + 1),
                              2, steps=cfg["linear_steps"],
                              learning_rate=cfg["linear_learning_rate"],
                              weight_decay=cfg["linear_weight_decay"])
  out["raw_pixels_order_probe_accuracy"] = float(probe["test_top1"])
  return out


def results_table(results: dict[str, Any]) -> str:
  """A Markdown table: every task's number for the trained and the random-init encoder."""
  keys = sorted(k for k in results
                if k.startswith(("digits_", "order_", "next_", "heldout_", "frame_")))
  lines = [f"step {results['step']}: {results['train_clips']} training / "
           f"{results['test_clips']} held-out clips of {results['frames']} frames; next frame: "
           f"copying the last frame gives MSE {results['copy_last_frame_next_frame_mse']:.4f}",
           "| encoder | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
  for name, p in (("pretrained", ""), ("random init", "random_init_"), ("raw pixels",
                                                                         "raw_pixels_")):
    lines.append(f"| {name} | " + " | ".join(
        f"{results[p + k]:.4f}" if p + k in results else "" for k in keys) + " |")
  return "\n".join(lines)
