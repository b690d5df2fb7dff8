"""Zero-shot transfer of an image-text model (CLIP, Radford et al. 2021): classification by
class-name prompts, and image<->text retrieval of held-out pairs.

Zero-shot classification: every class name is written into each prompt template ("a photo of
a {}."), the text embeddings of a class are L2-normalised, averaged over the templates and
normalised again (CLIP's prompt ensembling), and each image goes to the class whose embedding
is most similar to its own (cosine). Retrieval: recall@1/5/10 of each held-out image's own
caption among all the held-out captions (image->text) and of each caption's image (text->image)
by cosine (sslax.evals.retrieval; ties count against the query, so captions that repeat word
for word, like the embedded digits' templated ones, cap it), and, where labels exist, recall of
any pair of the same class ("same-class"). The image encoder's features also get the frozen-
feature protocol (kNN, linear, few-shot, collapse) of every other method, on the labelled pairs.
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sslax.evals import pretext, probe_data, retrieval


@dataclasses.dataclass(frozen=True)
class PairEvalData:
  """What an image-text method gives evaluation (see sslax.methods.clip.pair_eval_data).

  splits: labelled images (eval views) of the training pairs (train) and held-out pairs (test),
  None without labels; prompts: token batch {"input_ids", "attention_mask"} [C * T, L] of every
  class name in every template, class-major; pair_*: the first eval.retrieval_examples held-out
  pairs (eval views [N, H, W, C], one fixed caption each as tokens [N, L], labels [N], -1
  unknown); heldout_*: the held-out records and the training transform (pretext metrics)."""
  splits: probe_data.Splits | None
  class_names: tuple[str, ...]
  templates: tuple[str, ...]
  prompts: dict[str, np.ndarray] | None
  pair_images: np.ndarray
  pair_texts: dict[str, np.ndarray]
  pair_labels: np.ndarray
  heldout_records: Any
  heldout_transform: Any


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_embeddings(prompt_embeddings: np.ndarray, num_templates: int) -> np.ndarray:
  """[C * T, E] prompt embeddings (class-major) -> [C, E]: each normalised, averaged over the
  T templates of a class, normalised again."""
  per_class = _unit(prompt_embeddings).reshape(-1, num_templates, prompt_embeddings.shape[-1])
  return _unit(per_class.mean(1))


def zeroshot_predict(image_embeddings: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
  """[N] int: the class whose embedding is most cosine-similar to each image's."""
  return np.argmax(_unit(image_embeddings) @ _unit(class_emb).T, axis=1)


def same_label_recall(queries: np.ndarray, keys: np.ndarray, query_labels: np.ndarray,
                      key_labels: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
  """Fraction of queries with a key of their own label among their k most similar (cosine;
  equal similarities in index order)."""
  sims = _unit(queries) @ _unit(keys).T
  order = np.argsort(-sims, axis=1, kind="stable")[:, :max(ks)]
  hits = key_labels[order] == query_labels[:, None]
  return {int(k): float(np.mean(hits[:, :k].any(1))) for k in ks}


def pair_retrieval(image_emb: np.ndarray, text_emb: np.ndarray,
                   labels: np.ndarray) -> dict[str, float]:
  """Image->text and text->image recall@1/5/10 of pair i's partner; same-class recall too when
  every pair has a label."""
  out = {f"image_to_text_recall@{k}": v for k, v in
         retrieval.recall_at_k(image_emb, text_emb).items()}
  out.update({f"text_to_image_recall@{k}": v for k, v in
              retrieval.recall_at_k(text_emb, image_emb).items()})
  if len(labels) and labels.min() >= 0:
    out.update({f"image_to_text_same_class@{k}": v for k, v in
                same_label_recall(image_emb, text_emb, labels, labels).items()})
  return out


def evaluate_pairs(method: Any, config: Any, cfg: dict[str, Any], workdir: str, step: int,
                   trained: Any, initial: Any, mesh: Any,
                   protocol: Callable[..., dict[str, Any]]) -> dict[str, Any]:
  """sslax.evaluate for image-text methods: zero-shot classification and pair retrieval
  ("zeroshot"), held-out pretext metrics ("pretext") and `protocol` (the frozen-feature
  evaluators) on the image encoder, for the trained and the initial weights; `protocol` on raw
  pixels too."""
  data = method.pair_eval_data(workdir, cfg)
  on = set(cfg["evaluators"])
  s = data.splits
  results: dict[str, Any] = {"step": int(step), "protocol": cfg,
                             "retrieval_pairs": len(data.pair_labels),
                             "classes": list(data.class_names),
                             "zeroshot_templates": list(data.templates),
                             "train_examples": len(s.train_y) if s else 0,
                             "test_examples": len(s.test_y) if s else 0}
  for prefix, state in (("", trained), ("random_init_", initial)):
    features = functools.partial(probe_data.extract_features, method, state["params"],
                                 state["model_state"], batch_size=cfg["batch_size"], mesh=mesh)
    if s is not None:
      scores = protocol(features(s.train_x), s.train_y, features(s.test_x), s.test_y,
                        s.num_classes, cfg)
      results.update({prefix + k: v for k, v in scores.items()})
    if "zeroshot" in on:
      scores = pair_retrieval(features(data.pair_images, level="embedding"),
                              features(data.pair_texts, level="text"), data.pair_labels)
      results.update({prefix + k: v for k, v in scores.items()})
      if s is not None and data.prompts is not None:
        classes = class_embeddings(features(data.prompts, level="text"), len(data.templates))
        predicted = zeroshot_predict(features(s.test_x, level="embedding"), classes)
        results[prefix + "zeroshot_top1"] = float(np.mean(predicted == s.test_y))
    if "pretext" in on:
      scores = pretext.heldout_pretext_metrics(
          method.pretext_metrics, state["params"], state["model_state"], data.heldout_records,
          data.heldout_transform, config.batch_size, config.seed + 1, mesh,
          cfg["pretext_batches"])
      results.update({f"{prefix}heldout_{k}": v for k, v in scores.items()})
  if s is not None:
    scores = protocol(s.train_x.reshape(len(s.train_x), -1), s.train_y,
                      s.test_x.reshape(len(s.test_x), -1), s.test_y, s.num_classes, cfg)
    results.update({"raw_pixels_" + k: v for k, v in scores.items()})
  return results


def _cell(results: dict[str, Any], key: str) -> str:
  value = results.get(key)
  return "" if value is None else f"{value:.4f}"


def results_table(results: dict[str, Any]) -> str:
  """The Markdown table of evaluate_pairs' results (blank where an evaluator did not run)."""
  recall = [f"image_to_text_recall@{k}" for k in (1, 5, 10)] + \
      [f"text_to_image_recall@{k}" for k in (1, 5, 10)]
  lines = [f"step {results['step']}: zero-shot over {len(results['classes'])} classes "
           f"({len(results['zeroshot_templates'])} prompt templates) on "
           f"{results['test_examples']} held-out images; retrieval among "
           f"{results['retrieval_pairs']} held-out pairs",
           "| model | zero-shot top-1 | image->text R@1 / R@5 / R@10 | text->image R@1 / R@5 / "
           "R@10 | same-class image->text R@1 | held-out loss | kNN top-1 | linear top-1 |",
           "|---|---|---|---|---|---|---|---|"]
  for name, p in (("pretrained", ""), ("random init", "random_init_"), ("raw pixels",
                                                                         "raw_pixels_")):
    i2t = " / ".join(_cell(results, p + k) for k in recall[:3]) if p + recall[0] in results \
        else ""
    t2i = " / ".join(_cell(results, p + k) for k in recall[3:]) if p + recall[3] in results \
        else ""
    lines.append(f"| {name} | {_cell(results, p + 'zeroshot_top1')} | {i2t} | {t2i} | "
                 f"{_cell(results, p + 'image_to_text_same_class@1')} | "
                 f"{_cell(results, p + 'heldout_loss')} | {_cell(results, p + 'knn_top1')} | "
                 f"{_cell(results, p + 'linear_top1')} |")
  return "\n".join(lines)
