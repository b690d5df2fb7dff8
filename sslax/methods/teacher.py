"""EMA teachers (BYOL's target, MoCo's momentum encoder, DINO's teacher) and their schedule."""
from typing import Any

import jax
import jax.numpy as jnp


def cosine_momentum(step: jax.Array, total_steps: int, base: float) -> jax.Array:
  """BYOL's schedule: tau = 1 - (1 - base)·(cos(pi·step/total) + 1)/2, from base at 0 to 1."""
  progress = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def ema(target: Any, online: Any, tau: jax.Array) -> Any:
  """tau·target + (1 - tau)·online, leaf by leaf (computed in float32)."""
  return jax.tree.map(
      lambda t, o: (tau * t.astype(jnp.float32) + (1.0 - tau) * o.astype(jnp.float32)
                    ).astype(t.dtype), target, online)
