"""Evaluation data and metrics of the language methods, on articles pretraining never saw.

Pretext metrics (MLM/NSP accuracy, perplexity) are measured on examples drawn from the held-out
articles. The probe task is built from the same held-out articles: which article a sentence
comes from. Each article's sentences are split between probe-train and probe-test (every
`test_every`-th sentence is a test sentence), so the classes are fixed, neither side was seen in
pretraining, and a sentence's neighbours in its article are what the features have to relate it
to. The class prior (majority class) and a bag-of-tokens baseline come with it.
"""
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from sslax import parallel
from sslax.data import pipeline


def heldout_pretext_metrics(method: Any, params: Any, model_state: Any, records: Sequence[Any],
                            views: Any, batch_size: int, seed: int, mesh,
                            max_batches: int = 200) -> dict[str, float]:
  """`method.pretext_metrics` averaged over a fixed draw of held-out batches (about one example
  per record, at most `max_batches`; batches of equal size, so the mean of batch means)."""
  dataset = pipeline.train_dataset(records, views, batch_size, seed, process_index=0,
                                   process_count=1)
  fn = jax.jit(method.pretext_metrics, out_shardings=parallel.replicated(mesh))
  totals: dict[str, float] = {}
  num_batches = min(max(1, len(records) // batch_size), max_batches)
  for i in range(num_batches):
    row = jax.device_get(fn(params, model_state, parallel.to_global(dataset[i], mesh)))
    for k, v in row.items():
      totals[k] = totals.get(k, 0.0) + float(v) / num_batches
  return totals


def article_probe(docs: Sequence[Sequence[np.ndarray]], min_tokens: int = 8,
                  test_every: int = 5) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray],
                                                np.ndarray]:
  """(train sentences, labels, test sentences, labels): the label is the article's index.

  Sentences shorter than `min_tokens` (headings left over, list items) are dropped; an article
  with fewer than `test_every` such sentences is left out, so every class has test sentences.
  """
  train_x, train_y, test_x, test_y = [], [], [], []
  label = 0
  for doc in docs:
    sentences = [s for s in doc if len(s) >= min_tokens]
    if len(sentences) < test_every:
      continue
    for i, s in enumerate(sentences):
      (test_x if i % test_every == test_every - 1 else train_x).append(s)
      (test_y if i % test_every == test_every - 1 else train_y).append(label)
    label += 1
  if label < 2:
    raise ValueError(f"the held-out articles give {label} probe class(es); raise "
                     "data.heldout_fraction so that at least two articles are held out")
  return train_x, np.asarray(train_y, np.int32), test_x, np.asarray(test_y, np.int32)


def bag_of_tokens(sentences: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
  """[n, vocab_size] token counts of each sentence, L2-normalised: the features a probe gets
  without any model (the raw-pixel baseline of text)."""
  counts = np.zeros((len(sentences), vocab_size), np.float32)
  for i, s in enumerate(sentences):
    np.add.at(counts[i], np.asarray(s, np.int64), 1.0)
  return counts / np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12)
