"""Weighted k-nearest-neighbour evaluation of frozen features (Wu et al. 2018; DINO).

Both feature sets are L2-normalised, so similarity is cosine. Each test sample's k most
similar training samples vote for their label with weight exp(sim / T); the prediction is
the class with the largest summed vote. The test set is processed in fixed-size chunks
(the last one padded) so memory stays bounded at [batch_size, N] and one shape compiles.
"""
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
  """Out-of-range labels would be dropped silently by the scatter-add: reject them."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got "
                     f"[{labels.min()}, {labels.max()}]")


def _l2_normalize(x: jax.Array) -> jax.Array:
  """Rows scaled to unit norm; [n, D] -> [n, D] (zero rows stay zero)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_k"))
def _chunk_predictions(train: jax.Array, train_labels: jax.Array, test: jax.Array,
                       ks: jax.Array, temperatures: jax.Array, *, num_classes: int,
                       max_k: int) -> jax.Array:
  """Predictions [len(T), len(ks), B] for one test chunk [B, D] against normalised train [N, D].

  top_k runs once with max_k; smaller k reuse its prefix through a mask, so ks and
  temperatures are traced and only max_k triggers recompilation.
  """
  sims = jnp.matmul(_l2_normalize(test), train.T, precision=jax.lax.Precision.HIGHEST)
  top_sims, top_idx = jax.lax.top_k(sims, max_k)  # [B, max_k], sorted descending
  top_labels = train_labels[top_idx]  # [B, max_k]
  rows = jnp.arange(test.shape[0])[:, None]

  def predict(temperature, k):
    # Subtracting each row's best similarity rescales all its votes by one factor, which
    # keeps the argmax and keeps exp() finite for small temperatures.
    weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)
    weights = jnp.where(jnp.arange(max_k) < k, weights, 0.0)
    votes = jnp.zeros((test.shape[0], num_classes)).at[rows, top_labels].add(weights)
    return jnp.argmax(votes, axis=-1)

  per_k = jax.vmap(predict, in_axes=(None, 0))
  return jax.vmap(per_k, in_axes=(0, None))(temperatures, ks)


def _predictions(train_features, train_labels, test_features, num_classes: int,
                 ks: Sequence[int], temperatures: Sequence[float],
                 batch_size: int) -> np.ndarray:
  """Predictions [len(temperatures), len(ks), M] int from one pass over the test set."""
  train_labels = np.asarray(train_labels)
  _check_labels(train_labels, num_classes)
  test = np.asarray(test_features, np.float32)
  n, m = len(train_labels), len(test)
  if n == 0:
    raise ValueError("k-NN needs at least one training sample")
  if min(ks) < 1:
    raise ValueError(f"every k must be >= 1, got {tuple(ks)}")
  clamped = np.minimum(np.asarray(ks), n)
  if m == 0:
    return np.zeros((len(temperatures), len(ks), 0), np.int64)
  chunk = min(batch_size, m)
  padded = np.zeros((-(-m // chunk) * chunk, test.shape[1]), np.float32)
  padded[:m] = test
  train = _l2_normalize(jnp.asarray(train_features, jnp.float32))
  labels = jnp.asarray(train_labels, jnp.int32)
  ks_arr = jnp.asarray(clamped, jnp.int32)
  temps = jnp.asarray(temperatures, jnp.float32)
  out = [
      _chunk_predictions(train, labels, padded[i:i + chunk], ks_arr, temps,
                         num_classes=num_classes, max_k=int(clamped.max()))
      for i in range(0, len(padded), chunk)
  ]
  return np.concatenate([np.asarray(o) for o in out], axis=-1)[..., :m]


def knn_predict(train_features, train_labels, test_features, num_classes: int, k: int = 20,
                temperature: float = 0.07, batch_size: int = 1024) -> np.ndarray:
  """Predicted labels [M] int for test_features [M, D] from train_features [N, D], labels [N].

  k > N is clamped to N.
  """
  preds = _predictions(train_features, train_labels, test_features, num_classes, (k,),
                       (temperature,), batch_size)
  return preds[0, 0]


def knn_top1(train_features, train_labels, test_features, test_labels, num_classes: int,
             k: int = 20, temperature: float = 0.07, batch_size: int = 1024) -> float:
  """Top-1 accuracy of knn_predict against test_labels [M]."""
  preds = knn_predict(train_features, train_labels, test_features, num_classes, k,
                      temperature, batch_size)
  return float(np.mean(preds == np.asarray(test_labels)))


def knn_sweep(train_features, train_labels, test_features, test_labels, num_classes: int,
              ks: Sequence[int] = (10, 20, 100, 200),
              temperatures: Sequence[float] = (0.07,),
              batch_size: int = 1024) -> dict[tuple[int, float], float]:
  """Top-1 accuracy for every (k, T) pair, keyed by the requested k and T.

  One similarity matrix and one top_k (with the largest k) per chunk serve every pair,
  so a sweep costs about as much as a single evaluation.
  """
  preds = _predictions(train_features, train_labels, test_features, num_classes, ks,
                       temperatures, batch_size)
  correct = preds == np.asarray(test_labels)
  return {(k, t): float(np.mean(correct[ti, ki]))
          for ti, t in enumerate(temperatures) for ki, k in enumerate(ks)}
