"""The optimizer, assembled from optax parts in one place.

Order of the chain: clip the global gradient norm, then the named optimizer (AdamW, LARS or LAMB)
with a linear-warmup + cosine learning-rate schedule and weight decay (constant or on a cosine
ramp) masked off biases and normalisation parameters (every array with fewer than two dimensions).
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax


def learning_rate_schedule(cfg: ml_collections.ConfigDict, total_steps: int,
                           batch_size: int) -> optax.Schedule:
  """Linear warm-up to the peak, cosine decay to `end_lr_fraction` of it at `total_steps`.

  With `lr_batch_scaling=True` the peak is `learning_rate * batch_size / 256` (Goyal et al. 2017;
  SimCLR, BYOL and DINO state their rates this way).
  """
  peak = cfg.learning_rate * (batch_size / 256 if cfg.get("lr_batch_scaling", False) else 1.0)
  warmup = min(cfg.get("warmup_steps", 0), total_steps)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1),
      end_value=peak * cfg.get("end_lr_fraction", 0.0))


def weight_decay_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> Any:
  """The weight decay: constant, or with `weight_decay_end` a cosine ramp to it (DINO: 0.04 -> 0.4).

  Optax applies it as lr * wd * param, as PyTorch's AdamW does, so a ramp here is DINO's ramp.
  """
  start, end = cfg.get("weight_decay", 0.0), cfg.get("weight_decay_end", None)
  if end is None:
    return start
  return lambda step: end + (start - end) * 0.5 * (
      1.0 + jnp.cos(jnp.pi * jnp.minimum(step / max(total_steps, 1), 1.0)))


def decay_mask(params: Any) -> Any:
  """True for weight matrices and kernels, False for biases, norm scales and other vectors."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int,
                   batch_size: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns (transformation, learning-rate schedule) from `config.optimizer`."""
  schedule = learning_rate_schedule(cfg, total_steps, batch_size)
  name = cfg.name
  wd = weight_decay_schedule(cfg, total_steps)
  if name == "adamw":
    core = optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999),
                       eps=cfg.get("eps", 1e-8), weight_decay=wd, mask=decay_mask)
  elif name == "lars":
    # SimCLR excludes biases and batch-norm parameters from both decay and trust-ratio scaling.
    core = optax.lars(schedule, weight_decay=wd, weight_decay_mask=decay_mask,
                      trust_coefficient=cfg.get("trust_coefficient", 0.001),
                      trust_ratio_mask=decay_mask, momentum=cfg.get("momentum", 0.9))
  elif name == "lamb":
    core = optax.lamb(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999),
                      eps=cfg.get("eps", 1e-6), weight_decay=wd, mask=decay_mask)
  else:
    raise ValueError(f"unknown optimizer.name={name!r}; choose adamw, lars or lamb")
  clip = cfg.get("grad_clip_norm", None)
  tx = optax.chain(optax.clip_by_global_norm(clip), core) if clip else core
  return tx, schedule
