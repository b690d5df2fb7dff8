"""Retrieval: does the embedding find an example's partner among all the others?

Query i's partner is key i (another augmented view of the same image, or the caption of an
image). Similarity is cosine; recall@k is the fraction of queries whose partner ranks among
their k most similar keys (ties count against the query: the partner must beat every other key
to rank first). For two views of the same images this is the pretext metric of contrastive
methods, measured on held-out images.
"""
from collections.abc import Sequence
from typing import Any

import numpy as np

from sslax.data import pipeline


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def partner_ranks(queries: np.ndarray, keys: np.ndarray, chunk: int = 1024) -> np.ndarray:
  """[n] int: for each query, how many keys are at least as similar as its partner, the
  partner excluded (0 = retrieved first)."""
  queries, keys = _unit(queries), _unit(keys)
  ranks = []
  for start in range(0, len(queries), chunk):
    sims = queries[start:start + chunk] @ keys.T
    rows = np.arange(len(sims))
    own = sims[rows, start + rows]
    ranks.append((sims >= own[:, None]).sum(1) - 1)
  return np.concatenate(ranks)


def recall_at_k(queries: np.ndarray, keys: np.ndarray,
                ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
  ranks = partner_ranks(queries, keys)
  return {int(k): float(np.mean(ranks < k)) for k in ks}


def two_views(source: Sequence[dict[str, Any]], specs: Sequence[Any], count: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Two augmented views ([count, ...] each) of the first `count` records, with the method's
  first two training augmentations, seeded per record."""
  make = pipeline.example_transform(list(specs[:2]))
  pairs = [make.random_map(source[i], np.random.default_rng([seed, i]))["views"]
           for i in range(min(count, len(source)))]
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
