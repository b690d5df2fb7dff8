"""Few-shot probe: closed-form ridge regression on frozen features, k labelled examples a class.

The protocol big_vision reports beside its linear probes: draw `shots` training examples of
each class, L2-normalise the features, fit a ridge regression from features to one-hot targets
(the bias unpenalised: features and targets are centred on the drawn examples), predict the
largest output. No iterations and no learning rate, so a number depends only on the features,
the draw and the ridge strength; the result is the mean over `draws` seeded draws.
"""
from collections.abc import Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ridge_fit(x: np.ndarray, targets: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
  """(w [d, c], b [c]) minimising |x w + b - targets|^2 + l2 |w|^2.

  Solved in the smaller of the two spaces: (x'x + l2 I) w = x'y when n >= d, else
  w = x'(x x' + l2 I)^-1 y, the same minimiser.
  """
  x, targets = np.asarray(x, np.float64), np.asarray(targets, np.float64)
  x_mean, t_mean = x.mean(0), targets.mean(0)
  xc, tc = x - x_mean, targets - t_mean
  n, d = xc.shape
  if n >= d:
    w = np.linalg.solve(xc.T @ xc + l2 * np.eye(d), xc.T @ tc)
  else:
    w = xc.T @ np.linalg.solve(xc @ xc.T + l2 * np.eye(n), tc)
  return w, t_mean - x_mean @ w


def fewshot_top1(train_x, train_y, test_x, test_y, num_classes: int,
                 shots: Sequence[int] = (1, 5, 10, 25), l2: float = 1.0, draws: int = 5,
                 seed: int = 0) -> dict[int, float]:
  """Mean test top-1 over `draws` draws of `shots` examples per class, for each shots value.

  A class with fewer than `shots` training examples contributes all it has.
  """
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  train_x, test_x = _unit(train_x), _unit(test_x)
  by_class = [np.flatnonzero(train_y == c) for c in range(num_classes)]
  rng = np.random.default_rng(seed)
  results = {}
  for k in shots:
    scores = []
    for _ in range(draws):
      index = np.concatenate([rng.choice(members, min(k, len(members)), replace=False)
                              for members in by_class if len(members)])
      w, b = ridge_fit(train_x[index], np.eye(num_classes)[train_y[index]], l2)
      scores.append(np.mean(np.argmax(test_x @ w + b, axis=1) == test_y))
    results[int(k)] = float(np.mean(scores))
  return results
