"""Evaluation entry point: measures what a run's encoder learned, beside two baselines.

  python -m sslax.evaluate --workdir=runs/simclr [--step=N] [--eval=KEY=VALUE ...]

Restores a checkpoint of the run, extracts frozen encoder features of the labelled splits and
runs kNN (cosine, k=20, T=0.07, weighted vote) and a linear probe on them. The same protocol runs
on a randomly initialised encoder of the same architecture (the run's own initial weights) and on
raw pixels, so every number comes with the two numbers it has to beat.
"""
if __name__ == "__main__":  # Before numpy and JAX start threads: sslax/host_memory.py.
  from sslax import host_memory
  host_memory.keep_freed_memory()

import functools
import json
import os
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags, logging

from sslax import checkpoint, distributed, optim, parallel
from sslax import config as config_lib
from sslax import state as state_lib
from sslax import train as train_lib
from sslax.data import image_ops, pipeline, sources, text_corpus
from sslax.evals import (
  collapse,
  export,
  fewshot,
  finetune,
  knn,
  linear,
  pretext,
  probe_data,
  retrieval,
  zeroshot,
)
from sslax.evals import ranking as ranking_eval
from sslax.evals import text as text_eval
from sslax.evals import video as video_eval
from sslax.methods import get_method

_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default the latest.")
_ALL_STEPS = flags.DEFINE_bool("all_steps", False, "Evaluate every kept checkpoint and write "
                               "eval_curve.json (accuracy against step).")
_EVAL = flags.DEFINE_multi_string(
    "eval", [], "An evaluation setting over the run's config.eval, KEY=VALUE (dotted keys, "
    "Python literals or plain strings): e.g. --eval=finetune_steps=0 "
    "--eval=probe_data.train=labels.tsv")

EVALUATORS = ("knn", "linear", "fewshot", "collapse", "finetune", "retrieval", "pretext",
              "linear_augmented", "zeroshot", "video", "ranking")

EVAL_DEFAULTS = {# Which evaluators run, by name (all but the slow augmented probe by default).
                 "evaluators": ["knn", "linear", "fewshot", "collapse", "finetune", "retrieval",
                                "pretext"],
                 "knn_k": 20, "knn_temperature": 0.07,
                 # kNN accuracies reported beside the protocol's: the k and T other papers use.
                 "knn_sweep_ks": [10, 20, 100, 200], "knn_sweep_temperatures": [0.07, 0.1],
                 "linear_steps": 1000,
                 "linear_learning_rate": 1e-2, "linear_weight_decay": 1e-4, "batch_size": 500,
                 "linear_optimizer": "adamw",  # Or "sgd", "lars" (momentum 0.9).
                 # Learning rates tried together, the best on 10% of the train split kept.
                 "linear_grid": [],
                 # Fine-tuning of the encoder with a linear head on the probe's train split.
                 "finetune_steps": 300, "finetune_learning_rate": 1e-4,
                 "finetune_head_learning_rate": 1e-3,
                 # A regex over parameter paths: ".*" full, "block(10|11)/" partial, "^$" head.
                 "finetune_trainable": ".*", "finetune_label_smoothing": 0.0,
                 "finetune_layer_decay": 1.0, "finetune_mixup_alpha": 0.0,
                 "pretext_batches": 200, "probe_data": None,
                 "fewshot_shots": [1, 5, 10, 25], "fewshot_l2": 1.0,
                 "collapse_min_rank_fraction": 0.05,
                 # The feature-extraction protocol: scikit-learn classifiers, an .npz export.
                 "sklearn": [], "sklearn_c": 1.0, "export_features": False,
                 # Recall@1/5/10 of one view's partner among the other views (0 to skip).
                 "retrieval_examples": 1000}


def parse_eval_overrides(items: list[str]) -> dict[str, Any]:
  """['a.b=1', 'c=x'] -> {'a': {'b': 1}, 'c': 'x'}; a key outside EVAL_DEFAULTS is an error."""
  out: dict[str, Any] = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or key.split(".")[0] not in EVAL_DEFAULTS:
      raise config_lib.ConfigError(
          f"--eval={item}: expected KEY=VALUE with KEY one of {sorted(EVAL_DEFAULTS)}")
    value = config_lib.parse_value(text)
    *parents, leaf = key.split(".")
    target = out
    for part in parents:
      target = target.setdefault(part, {})
    target[leaf] = value
  return out


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a directory made by sslax.train")
  with open(path) as f:
    return config_lib.from_dict(json.load(f))


def protocol(train_x, train_y, test_x, test_y, num_classes: int,
             cfg: dict[str, Any]) -> dict[str, Any]:
  """The frozen-feature evaluators of eval.evaluators on one feature set: kNN (and its sweep),
  linear probe (and its lr grid), few-shot, collapse monitors, scikit-learn classifiers."""
  on = set(cfg["evaluators"])
  scores: dict[str, Any] = {}
  if "knn" in on:  # One pass over the test set serves the protocol's (k, T) and the sweep.
    ks = sorted({cfg["knn_k"], *cfg["knn_sweep_ks"]})
    temperatures = sorted({cfg["knn_temperature"], *cfg["knn_sweep_temperatures"]})
    sweep = knn.knn_sweep(train_x, train_y, test_x, test_y, num_classes, ks, temperatures)
    scores["knn_top1"] = float(sweep[(cfg["knn_k"], cfg["knn_temperature"])])
    scores["knn_sweep"] = {f"k={k},T={t:g}": v for (k, t), v in sweep.items()}
  if "linear" in on:
    probe = linear.linear_probe(train_x, train_y, test_x, test_y, num_classes,
                                steps=cfg["linear_steps"],
                                learning_rate=cfg["linear_learning_rate"],
                                weight_decay=cfg["linear_weight_decay"],
                                optimizer=cfg["linear_optimizer"])
    scores["linear_top1"] = float(probe["test_top1"])
  if "linear" in on and cfg["linear_grid"]:  # DINOv2's protocol: lr chosen on validation.
    grid = linear.linear_probe_grid(train_x, train_y, test_x, test_y, num_classes,
                                    learning_rates=cfg["linear_grid"],
                                    steps=cfg["linear_steps"],
                                    weight_decay=cfg["linear_weight_decay"],
                                    optimizer=cfg["linear_optimizer"])
    scores.update(linear_grid_top1=float(grid["test_top1"]),
                  linear_grid_lr=float(grid["learning_rate"]))
  if "fewshot" in on:
    shots = fewshot.fewshot_top1(train_x, train_y, test_x, test_y, num_classes,
                                 shots=cfg["fewshot_shots"], l2=cfg["fewshot_l2"])
    scores.update({f"fewshot_{k}shot_top1": v for k, v in shots.items()})
  if "collapse" in on:
    report = collapse.collapse_report(test_x, cfg["collapse_min_rank_fraction"])
    scores.update({"rankme": report["rankme"], "rank_fraction": report["rank_fraction"],
                   "normalized_std": report["normalized_std"],
                   "collapsed": report["collapsed"]})
  for kind in cfg["sklearn"]:
    scores[f"sklearn_{kind}_top1"] = export.sklearn_top1(train_x, train_y, test_x, test_y, kind,
                                                         c=cfg["sklearn_c"])
  return scores


def trained_and_initial(method, config, workdir, step, mesh):
  """(step, restored train state, the run's initial state) of checkpoint `step` or the latest."""
  pretrain_source, views = train_lib.pretrain_data(method, config, workdir)
  sample = pipeline.sample_batch(pretrain_source, views)
  tx, _ = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  abstract, shardings = state_lib.state_shardings(
      method, tx, sample, config.seed, mesh, config.get("sharding_rules", ()))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  step = ckpt.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train first")
  trained, _ = ckpt.restore(step, abstract)
  ckpt.close()
  return step, trained, state_lib.create_state(method, tx, sample, config.seed, shardings)


def evaluate(workdir: str, step: int | None = None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
  """Evaluates checkpoint `step` (default: latest) of the run in `workdir`; writes results.

  `overrides` replace settings of the run's config.eval (see EVAL_DEFAULTS)."""
  config = load_run_config(workdir)
  cfg = {**EVAL_DEFAULTS, **(config.eval.to_dict() if "eval" in config else {}),
         **(overrides or {})}
  for key in ("fewshot_shots", "knn_sweep_ks", "knn_sweep_temperatures", "sklearn",
              "linear_grid", "evaluators"):
    cfg[key] = list(cfg[key])  # JSON keeps lists, not tuples.
  unknown = sorted(set(cfg["evaluators"]) - set(EVALUATORS))
  if unknown:
    raise config_lib.ConfigError(f"eval.evaluators: unknown {unknown}; choose from {EVALUATORS}")
  method = get_method(config)
  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}))
  step, trained, initial = trained_and_initial(method, config, workdir, step, mesh)
  if hasattr(method, "ranking_eval"):  # Recommendation: leave-one-out next-item ranking.
    results = ranking_eval.evaluate_ranking(method, config, cfg, step, trained, initial, mesh)
    _write_results(workdir, results, ranking_eval.results_table(results), cfg)
    return results
  if hasattr(method, "video_eval"):  # Video methods: digit, frame-order and next-frame probes.
    results = video_eval.evaluate_video(method, config, cfg, step, trained, initial, mesh)
    _write_results(workdir, results, video_eval.results_table(results), cfg)
    return results
  if hasattr(method, "pair_eval_data"):  # Image-text methods (CLIP): zero-shot and retrieval.
    results = zeroshot.evaluate_pairs(method, config, cfg, workdir, step, trained, initial, mesh,
                                      protocol)
    _write_results(workdir, results, zeroshot.results_table(results), cfg)
    return results
  if hasattr(method, "data"):
    results = evaluate_text(method, config, cfg, workdir, step, trained, initial, mesh)
    _write_results(workdir, results, text_results_table(results), cfg)
    return results

  splits = probe_data.labelled_splits(method, config, workdir, cfg)
  train_x, train_y, test_x, test_y = splits.train_x, splits.train_y, splits.test_x, splits.test_y
  num_classes = splits.num_classes

  results: dict[str, Any] = {"step": int(step), "train_examples": len(train_y),
                             "test_examples": len(test_y), "protocol": cfg,
                             "head_levels": list(method.feature_levels[1:])
                             if "knn" in cfg["evaluators"] else []}
  encoders = {"": trained, "random_init_": initial}
  exported = {"train_labels": train_y, "test_labels": test_y}
  test_source = sources.make_source(config.data, "test")  # Raw records: augmented views.
  pairs = _two_view_pairs(method, config, test_source, test_x, cfg)
  for prefix, state in encoders.items():
    features = functools.partial(probe_data.extract_features, method, state["params"],
                                 state["model_state"], batch_size=cfg["batch_size"], mesh=mesh)
    train_f, test_f = features(train_x), features(test_x)
    exported.update({f"{prefix or 'pretrained_'}train": train_f,
                     f"{prefix or 'pretrained_'}test": test_f})
    scores = protocol(train_f, train_y, test_f, test_y, num_classes, cfg)
    results.update({prefix + k: v for k, v in scores.items()})
    results.update(_finetune(method, state, prefix, train_x, train_y, test_x, test_y,
                             num_classes, mesh, cfg, config.seed))
    if "pretext" in cfg["evaluators"]:
      scores = pretext.heldout_pretext_metrics(
          pretext.loss_metrics(method, state["extra"], step, config.seed), state["params"],
          state["model_state"], test_source, method.views(),
          config.batch_size, config.seed + 1, mesh, cfg["pretext_batches"])
      results.update({f"{prefix}heldout_{k}": v for k, v in scores.items()})
    if "linear_augmented" in cfg["evaluators"]:
      results[prefix + "linear_augmented_top1"] = _augmented_linear_probe(
          method, state, config, cfg, splits, mesh)
    if pairs is not None:
      recall = retrieval.recall_at_k(features(pairs[0]), features(pairs[1]))
      results.update({f"{prefix}two_view_recall@{k}": v for k, v in recall.items()})
    # Heads above the encoder (SimCLR's projector) get kNN too: where the pretext loss acts.
    for level in method.feature_levels[1:] if "knn" in cfg["evaluators"] else ():
      results[f"{prefix}{level}_knn_top1"] = float(knn.knn_top1(
          features(train_x, level=level), train_y, features(test_x, level=level), test_y,
          num_classes, k=cfg["knn_k"], temperature=cfg["knn_temperature"]))
  scores = protocol(train_x.reshape(len(train_x), -1), train_y, test_x.reshape(len(test_x), -1),
                    test_y, num_classes, cfg)
  results.update({"raw_pixels_" + k: v for k, v in scores.items()})
  if pairs is not None:
    recall = retrieval.recall_at_k(*(p.reshape(len(p), -1) for p in pairs))
    results.update({f"raw_pixels_two_view_recall@{k}": v for k, v in recall.items()})
  if cfg["export_features"]:
    exported.update(raw_pixels_train=train_x.reshape(len(train_x), -1),
                    raw_pixels_test=test_x.reshape(len(test_x), -1))
    results["exported_features"] = export.export_features(
        os.path.join(workdir, f"features_step{step}.npz"), exported)

  _warn_if_collapsed(results)
  _write_results(workdir, results, results_table(results), cfg)
  return results


def protocol_text(cfg: dict[str, Any]) -> str:
  """The protocol of every evaluator that ran, in words, so no number is quoted without it."""
  described = {
      "knn": f"- kNN: cosine similarity of L2-normalised features, the k={cfg['knn_k']} nearest "
             f"training examples vote with weight exp(sim/{cfg['knn_temperature']}); the sweep "
             f"adds k in {cfg['knn_sweep_ks']} x T in {cfg['knn_sweep_temperatures']}.",
      "linear": f"- Linear probe: logistic regression on standardised frozen features, "
                f"{cfg['linear_optimizer']}, {cfg['linear_steps']} full-batch steps, lr "
                f"{cfg['linear_learning_rate']}, weight decay {cfg['linear_weight_decay']}." + (
                    f" Grid: the same probe for each lr in {cfg['linear_grid']} on 90% of the "
                    "train split, the lr best on the other 10% retrained on all of it."
                    if cfg["linear_grid"] else ""),
      "finetune": f"- Fine-tuning: encoder (lr {cfg['finetune_learning_rate']}) and linear head "
                  f"(lr {cfg['finetune_head_learning_rate']}) on standardised features, "
                  f"{cfg['finetune_steps']} steps of 32, AdamW with warm-up and cosine decay, "
                  "inference-mode normalisation and no dropout; trainable parameters "
                  f"{cfg['finetune_trainable']!r}, label smoothing "
                  f"{cfg['finetune_label_smoothing']}, layer decay "
                  f"{cfg['finetune_layer_decay']}, mixup alpha {cfg['finetune_mixup_alpha']}.",
      "linear_augmented": "- Linear probe with augmentation: a linear head on the frozen "
                          "encoder's features of freshly augmented training views (the "
                          f"method's first view), {cfg['finetune_steps'] or 300} steps of 32, "
                          f"lr {cfg['finetune_head_learning_rate']}.",
      "fewshot": f"- Few-shot: ridge regression (l2 {cfg['fewshot_l2']}) on L2-normalised "
                 f"features from {cfg['fewshot_shots']} examples a class, mean of 5 seeded "
                 "draws.",
      "collapse": f"- Collapse: RankMe of the test features; flagged below "
                  f"{cfg['collapse_min_rank_fraction']:.0%} of min(examples, dimensions).",
      "pretext": "- Held-out pretext metrics: the method's own loss and its metrics on test "
                 f"batches of {cfg['pretext_batches']} at most, its training views, a fixed key.",
      "zeroshot": "- Zero-shot (image-text methods): each class name in every prompt template, "
                  "text embeddings normalised, averaged over templates, normalised; top-1 of "
                  "the most cosine-similar class. Image<->text retrieval: recall@1/5/10 of "
                  f"the partner among {cfg['retrieval_examples']} held-out pairs (one fixed "
                  "caption each), cosine, ties against the query.",
      "retrieval": f"- Two-view retrieval: {cfg['retrieval_examples']} test images, two views "
                   "with the method's training augmentations; recall@k of each image's other "
                   "view among all of them by cosine similarity.",
  }
  lines = [line for name, line in described.items() if name in cfg["evaluators"]]
  if cfg["sklearn"]:
    lines.append(f"- scikit-learn {cfg['sklearn']} on standardised features, C={cfg['sklearn_c']}.")
  return "\n".join(lines)


def _write_results(workdir: str, results: dict[str, Any], table: str, cfg: dict[str, Any]) -> None:
  """eval_results.json (every number and the settings) and eval_results.md (the table and the
  protocol in words); the table is printed too."""
  checkpoint.write_atomically(os.path.join(workdir, "eval_results.json"),
                              json.dumps(results, indent=2))
  title, rows = table.split("\n", 1)  # A Markdown table needs a blank line above it.
  checkpoint.write_atomically(os.path.join(workdir, "eval_results.md"),
                              f"# Evaluation of {workdir}\n\n{title}\n\n{rows}\n\nProtocol:\n"
                              f"{protocol_text(cfg)}\n")
  print(table)


def _augmented_linear_probe(method, state, config, cfg, splits, mesh) -> float:
  """Test top-1 of a linear head trained on features of freshly augmented training views (the
  method's first view), the encoder frozen: the linear protocol with train-time augmentation,
  eval.finetune_steps steps of 32 at eval.finetune_head_learning_rate."""
  spec = method.views()[0]
  source = sources.make_source(config.data, "train")

  def augment(index, rng):
    return np.stack([image_ops.augment(image_ops.to_float(source[int(i)]["image"]), rng, spec)
                     for i in index])

  shape = augment([0], np.random.default_rng(0)).shape[1:]
  if shape != splits.train_x.shape[1:]:
    raise ValueError(f"linear_augmented: the training view is {shape}, the evaluation view "
                     f"{splits.train_x.shape[1:]}; the probe needs one shape")
  tuned = finetune.finetune(
      lambda params, batch: method.features(params, state["model_state"], batch),
      state["params"], splits.train_x, splits.train_y, splits.test_x, splits.test_y,
      splits.num_classes, mesh, steps=cfg["finetune_steps"] or 300,
      head_learning_rate=cfg["finetune_head_learning_rate"], trainable="^$", augment=augment,
      seed=config.seed)
  return tuned["test_top1"]


def _two_view_pairs(method, config, source, test_x, cfg):
  """Two augmented views of eval.retrieval_examples test images, for methods that train on
  two (or more) views of the evaluation view's shape; None for the others."""
  specs = method.views()
  if "retrieval" not in cfg["evaluators"] or not cfg["retrieval_examples"] or len(specs) < 2:
    return None
  first, second = retrieval.two_views(source, specs, cfg["retrieval_examples"], config.seed)
  if first.shape[1:] != test_x.shape[1:] or second.shape != first.shape:
    return None
  return first, second


def evaluate_all(workdir: str, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
  """Evaluates every kept checkpoint, oldest first, and writes eval_curve.json: one row per
  step with its scalar results (the baselines repeat: they do not depend on the step).
  eval_results.json ends up holding the latest step's full results."""
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  steps = ckpt.all_steps()
  ckpt.close()
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train first")
  curve = []
  for step in steps:
    results = evaluate(workdir, step, overrides)
    curve.append({k: v for k, v in results.items()
                  if k == "step" or (isinstance(v, float | int) and not isinstance(v, bool))})
  checkpoint.write_atomically(os.path.join(workdir, "eval_curve.json"),
                              json.dumps(curve, indent=2))
  return curve


def _warn_if_collapsed(results: dict[str, Any]) -> None:
  if results.get("collapsed"):
    logging.warning("The pretrained features look collapsed: RankMe %.1f is %.1f%% of the "
                    "largest possible rank (flagged below %.0f%%, eval.collapse_min_rank_"
                    "fraction).", results["rankme"], 100 * results["rank_fraction"],
                    100 * results["protocol"]["collapse_min_rank_fraction"])


def evaluate_text(method, config, cfg, workdir, step, trained, initial, mesh) -> dict[str, Any]:
  """Held-out pretext metrics and a sentence classification probe (kNN, linear, fine-tuning;
  see sslax.evals.text), for the trained model, its initial weights and (kNN and linear only)
  bag-of-tokens features."""
  corpus = text_corpus.prepare(config.data, workdir, method.tokenizer_kind, config.seed)
  records, views = method.data("heldout", workdir)
  splits = probe_data.labelled_splits(method, config, workdir, cfg)
  train_x, train_y, test_x, test_y = splits.train_x, splits.train_y, splits.test_x, splits.test_y
  train_s, test_s, num_classes, probe = splits.train_s, splits.test_s, splits.num_classes, \
      splits.description
  results: dict[str, Any] = {
      "step": int(step), "protocol": cfg, "heldout_articles": len(corpus.heldout),
      "probe": probe, "train_examples": len(train_y), "test_examples": len(test_y),
      "majority_top1": float(np.bincount(test_y).max() / len(test_y))}
  for prefix, state in (("", trained), ("random_init_", initial)):
    pretext_scores = pretext.heldout_pretext_metrics(
        method.pretext_metrics, state["params"], state["model_state"], records, views,
        config.batch_size,
        config.seed + 1, mesh, cfg["pretext_batches"])
    results.update({f"{prefix}heldout_{k}": v for k, v in pretext_scores.items()})
    features = functools.partial(probe_data.extract_features, method, state["params"],
                                 state["model_state"], batch_size=cfg["batch_size"], mesh=mesh)
    scores = protocol(features(train_x), train_y, features(test_x), test_y, num_classes, cfg)
    results.update({prefix + k: v for k, v in scores.items()})
    results.update(_finetune(method, state, prefix, train_x, train_y, test_x, test_y,
                             num_classes, mesh, cfg, config.seed))
  vocab = config.data.vocab_size
  scores = protocol(text_eval.bag_of_tokens(train_s, vocab), train_y,
                    text_eval.bag_of_tokens(test_s, vocab), test_y, num_classes, cfg)
  results.update({"bag_of_tokens_" + k: v for k, v in scores.items()})
  _warn_if_collapsed(results)
  return results


def _finetune(method, state, prefix, train_x, train_y, test_x, test_y, num_classes, mesh, cfg,
              seed) -> dict[str, Any]:
  """{prefix}finetune_top1 and the protocol, or nothing when eval.finetune_steps is 0. The
  model state (batch-norm statistics) stays as restored: the encoder runs in inference mode."""
  if not cfg["finetune_steps"] or "finetune" not in cfg["evaluators"]:
    return {}
  tuned = finetune.finetune(
      lambda params, batch: method.features(params, state["model_state"], batch),
      state["params"], train_x, train_y, test_x, test_y, num_classes, mesh,
      steps=cfg["finetune_steps"], learning_rate=cfg["finetune_learning_rate"],
      head_learning_rate=cfg["finetune_head_learning_rate"], trainable=cfg["finetune_trainable"],
      label_smoothing=cfg["finetune_label_smoothing"], layer_decay=cfg["finetune_layer_decay"],
      mixup_alpha=cfg["finetune_mixup_alpha"], seed=seed)
  return {prefix + "finetune_top1": tuned["test_top1"], "finetune_protocol": tuned["protocol"]}


def _cell(results: dict[str, Any], key: str, digits: int = 4) -> str:
  """A table cell: the value at `key`, or blank where that evaluator did not run."""
  value = results.get(key)
  return "" if value is None else f"{value:.{digits}f}"


def text_results_table(results: dict[str, Any]) -> str:
  pretext = sorted(k[len("heldout_"):] for k in results if k.startswith("heldout_")
                   and k != "heldout_articles")
  lines = [f"step {results['step']}: held-out pretext metrics on {results['heldout_articles']} "
           f"articles; probe: {results['probe']} ({results['train_examples']} train / "
           f"{results['test_examples']} test sentences, majority class "
           f"{results['majority_top1']:.4f})",
           "| model | " + " | ".join(pretext) +
           " | probe kNN top-1 | probe linear top-1 | probe fine-tune top-1 |",
           "|---" * (len(pretext) + 4) + "|"]
  for name, p in (("pretrained", ""), ("random init", "random_init_")):
    values = " | ".join(f"{results[f'{p}heldout_{k}']:.4f}" for k in pretext)
    lines.append(f"| {name} | {values} | {_cell(results, p + 'knn_top1')} | "
                 f"{_cell(results, p + 'linear_top1')} | {_cell(results, p + 'finetune_top1')} |")
  blanks = " | " * len(pretext)
  lines.append(f"| bag of tokens | {blanks}{_cell(results, 'bag_of_tokens_knn_top1')} | "
               f"{_cell(results, 'bag_of_tokens_linear_top1')} | |")
  return "\n".join(lines)


def results_table(results: dict[str, Any]) -> str:
  rows = [("pretrained encoder", ""), ("random-init encoder", "random_init_"),
          ("raw pixels", "raw_pixels_")]
  shots = results["protocol"]["fewshot_shots"]
  lines = [f"step {results['step']}: {results['train_examples']} labelled train / "
           f"{results['test_examples']} test examples",
           "| features | kNN top-1 | linear top-1 | fine-tune top-1 | few-shot top-1 (" +
           "/".join(str(k) for k in shots) + " a class) | RankMe |", "|---|---|---|---|---|---|"]
  for name, p in rows:
    few = " / ".join(_cell(results, f"{p}fewshot_{k}shot_top1", 3) for k in shots)
    flag = " (collapsed)" if results.get(p + "collapsed") else ""
    lines.append(f"| {name} | {_cell(results, p + 'knn_top1')} | "
                 f"{_cell(results, p + 'linear_top1')} | {_cell(results, p + 'finetune_top1')} | "
                 f"{few if p + f'fewshot_{shots[0]}shot_top1' in results else ''} | "
                 f"{_cell(results, p + 'rankme', 1)}{flag} |")
  for level in results["head_levels"]:
    lines += [f"| {name} {level} (kNN only) | {_cell(results, f'{p}{level}_knn_top1')} | | | | |"
              for name, p in (("pretrained", ""), ("random-init", "random_init_"))]
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  workdir = config_lib.workdir_from_flags(argv)
  with config_lib.one_line_errors():
    distributed.initialize()
    overrides = parse_eval_overrides(_EVAL.value)
    if _ALL_STEPS.value:
      evaluate_all(workdir, overrides)
    else:
      evaluate(workdir, _STEP.value, overrides)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
