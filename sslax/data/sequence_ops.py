"""CL4SRec's item-sequence augmentations (Xie et al. 2022, "Contrastive Learning for Sequential
Recommendation"), pure numpy functions of a sequence and an explicit generator.

For a sequence of n items: crop keeps a random contiguous run of floor(eta * n) items (at least
one); mask replaces floor(gamma * n) random positions by the mask token; reorder shuffles a
random contiguous run of floor(beta * n) items. Each view applies one of the three, chosen
uniformly, as the paper does. They run in the Grain pipeline, so a view is a function of
(seed, record, epoch) like every image augmentation here.
"""
import numpy as np


def crop(items: np.ndarray, rng: np.random.Generator, eta: float) -> np.ndarray:
  """A contiguous run of max(1, floor(eta * n)) items at a uniform start."""
  n = len(items)
  length = max(1, int(np.floor(eta * n)))
  start = int(rng.integers(n - length + 1))
  return items[start:start + length].copy()


def mask(items: np.ndarray, rng: np.random.Generator, gamma: float, mask_id: int) -> np.ndarray:
  """floor(gamma * n) positions, drawn without replacement, set to `mask_id`."""
  out = items.copy()
  out[rng.choice(len(items), int(np.floor(gamma * len(items))), replace=False)] = mask_id
  return out


def reorder(items: np.ndarray, rng: np.random.Generator, beta: float) -> np.ndarray:
  """A contiguous run of floor(beta * n) items, at a uniform start, randomly permuted."""
  n = len(items)
  length = int(np.floor(beta * n))
  start = int(rng.integers(n - length + 1))
  out = items.copy()
  out[start:start + length] = rng.permutation(out[start:start + length])
  return out


def random_view(items: np.ndarray, rng: np.random.Generator, mask_id: int, eta: float,
                gamma: float, beta: float) -> np.ndarray:
  """One of crop / mask / reorder, chosen uniformly, of `items` [n] (n >= 1)."""
  kind = int(rng.integers(3))
  items = np.asarray(items, np.int32)
  if kind == 0:
    return crop(items, rng, eta)
  if kind == 1:
    return mask(items, rng, gamma, mask_id)
  return reorder(items, rng, beta)
