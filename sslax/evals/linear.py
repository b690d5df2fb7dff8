"""Linear probe: multinomial logistic regression on frozen, standardised features.

Standardising with the training set's per-dimension mean and std is MAE's batch norm without
affine parameters in front of the head (He et al. 2022), with the statistics of the whole
split instead of each batch's: the features are frozen, so the two differ only by batch noise.
The whole optimisation (AdamW, SGD with momentum or LARS; full-batch or seeded minibatches) is
one jitted `jax.lax.scan`, vmapped over learning rates so a learning-rate grid trains as one
program. Results carry their protocol (steps, learning rate, weight decay, batch size) with them.
"""
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
  """Out-of-range labels would silently corrupt the cross-entropy: reject them."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got "
                     f"[{labels.min()}, {labels.max()}]")


def _standardize(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """All arrays [n, D] standardised with train_x's per-dimension mean and std (>= 1e-6).

  Statistics accumulate in float64; the arrays stay float32 so large sets are not doubled.
  """
  mean = train_x.mean(axis=0, dtype=np.float64).astype(np.float32)
  std = np.maximum(train_x.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)
  return [(np.asarray(x, np.float32) - mean) / std for x in (train_x, *others)]


def _logits(params: dict, x: jax.Array) -> jax.Array:
  return x @ params["w"] + params["b"]


OPTIMIZERS = ("adamw", "sgd", "lars")


def _optimizer(name: str, learning_rate, weight_decay) -> optax.GradientTransformation:
  """The probe's optimizer; the bias is never decayed (only the weights' scale is
  regularised). SGD and LARS use momentum 0.9, as the SimCLR and MAE linear protocols do."""
  mask = {"w": True, "b": False}
  if name == "adamw":
    return optax.adamw(learning_rate, weight_decay=weight_decay, mask=mask)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay, mask),
                       optax.sgd(learning_rate, momentum=0.9))
  if name == "lars":
    return optax.lars(learning_rate, weight_decay=weight_decay, weight_decay_mask=mask,
                      trust_ratio_mask=mask, momentum=0.9)
  raise ValueError(f"linear probe optimizer {name!r}; use one of {OPTIMIZERS}")


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size", "optimizer"))
def _fit(x: jax.Array, y: jax.Array, learning_rates: jax.Array, weight_decay: jax.Array,
         key: jax.Array, *, num_classes: int, steps: int, batch_size: int | None,
         optimizer: str = "adamw") -> dict:
  """Probe parameters {"w": [L, D, C], "b": [L, C]}, one per learning rate [L].

  Every learning rate sees the same minibatches: each epoch is a fresh seeded permutation
  of the N training samples, cut into [steps, batch_size] indices.
  """
  n, d = x.shape
  if batch_size is None:
    batches = None
  else:
    epochs = -(-steps * batch_size // n)
    # argsort of random bits: one sort, far quicker to compile than jax.random.permutation.
    perms = jnp.argsort(jax.random.bits(key, (epochs, n)), axis=-1)
    batches = perms.reshape(-1)[:steps * batch_size].reshape(steps, batch_size)

  def loss_fn(params, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(_logits(params, xb), yb).mean()

  def train(learning_rate):
    opt = _optimizer(optimizer, learning_rate, weight_decay)
    params = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}

    def step(carry, idx):
      params, opt_state = carry
      xb, yb = (x, y) if idx is None else (x[idx], y[idx])
      grads = jax.grad(loss_fn)(params, xb, yb)
      updates, opt_state = opt.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), batches, length=steps)
    return params

  return jax.vmap(train)(learning_rates)


@jax.jit
def _num_correct(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
  """Correct top-1 predictions [L] of each of L stacked probes on x [n, D], y [n]."""
  preds = jnp.argmax(jax.vmap(_logits, in_axes=(0, None))(params, x), axis=-1)
  return jnp.sum(preds == y, axis=-1)


def _top1(params: dict, x: np.ndarray, y: np.ndarray) -> list[float]:
  """Top-1 accuracy of each stacked probe, as exact fractions of len(y)."""
  return [int(c) / len(y) for c in _num_correct(params, x, y)]


def _fit_many(x: np.ndarray, y: np.ndarray, num_classes: int, learning_rates: Sequence[float],
              steps: int, weight_decay: float, batch_size: int | None, seed: int,
              optimizer: str = "adamw") -> dict:
  """Stacked probes [L, ...] trained on already standardised x [N, D], y [N]."""
  _check_labels(y, num_classes)
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"linear probe optimizer {optimizer!r}; use one of {OPTIMIZERS}")
  return _fit(jnp.asarray(x), jnp.asarray(y, jnp.int32),
              jnp.asarray(learning_rates, jnp.float32), jnp.float32(weight_decay),
              jax.random.key(seed), num_classes=num_classes, steps=steps,
              batch_size=batch_size, optimizer=optimizer)


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, *, steps: int = 1000,
                 learning_rate: float = 1e-2, weight_decay: float = 1e-4,
                 batch_size: int | None = None, seed: int = 0,
                 optimizer: str = "adamw") -> dict:
  """Logistic regression on train_x [N, D], train_y [N]; top-1 on train and test [M, D], [M].

  Full-batch when batch_size is None, else seeded minibatches. Returns the accuracies
  together with the protocol that produced them.
  """
  train_x, test_x = _standardize(np.asarray(train_x, np.float32), test_x)
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  params = _fit_many(train_x, train_y, num_classes, (learning_rate,), steps, weight_decay,
                     batch_size, seed, optimizer)
  return {
      "train_top1": _top1(params, train_x, train_y)[0],
      "test_top1": _top1(params, test_x, test_y)[0],
      "steps": steps,
      "learning_rate": learning_rate,
      "weight_decay": weight_decay,
      "batch_size": batch_size,
      "optimizer": optimizer,
  }


def stratified_split(labels, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded (train_idx, val_idx) into labels [N], holding out round(val_fraction * n_c)
  samples of each class c so the validation set keeps the class balance."""
  if not 0 < val_fraction < 1:
    raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  train_idx, val_idx = [], []
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    n_val = int(round(val_fraction * len(idx)))
    val_idx.append(idx[:n_val])
    train_idx.append(idx[n_val:])
  train_idx, val_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))
  if not len(train_idx) or not len(val_idx):
    raise ValueError(f"val_fraction={val_fraction} leaves an empty train or validation split")
  return train_idx, val_idx


def linear_probe_grid(train_x, train_y, test_x, test_y, num_classes: int, *,
                      learning_rates: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                      val_fraction: float = 0.1, steps: int = 1000, weight_decay: float = 1e-4,
                      batch_size: int | None = None, seed: int = 0,
                      optimizer: str = "adamw") -> dict:
  """linear_probe with the learning rate chosen on a held-out validation split.

  All learning rates train together (one vmapped program) on a stratified split of the
  training set; the one with the best validation top-1 (first on ties) is retrained on
  the full training set. Returns linear_probe's dict plus "val_top1" {lr: top-1} and
  "val_fraction"; "learning_rate" is the chosen one.
  """
  train_x, train_y = np.asarray(train_x, np.float32), np.asarray(train_y)
  fit_idx, val_idx = stratified_split(train_y, val_fraction, seed)
  fit_x, val_x = _standardize(train_x[fit_idx], train_x[val_idx])
  params = _fit_many(fit_x, train_y[fit_idx], num_classes, learning_rates, steps,
                     weight_decay, batch_size, seed, optimizer)
  val_top1 = _top1(params, val_x, train_y[val_idx])
  best = learning_rates[int(np.argmax(val_top1))]
  result = linear_probe(train_x, train_y, test_x, test_y, num_classes, steps=steps,
                        learning_rate=best, weight_decay=weight_decay, batch_size=batch_size,
                        seed=seed, optimizer=optimizer)
  return {**result, "val_top1": dict(zip(learning_rates, val_top1, strict=True)),
          "val_fraction": val_fraction}
