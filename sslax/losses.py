"""Losses shared by the pretext tasks, on plain arrays.

Every loss computes in float32 whatever the compute dtype of the model, and treats its inputs as
the global batch: under `jax.jit` with sharded inputs XLA inserts the cross-device gathers, so a
contrastive loss sees every other sample of the global batch as a negative.
"""
import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis`."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


def nt_xent(z_a: jax.Array, z_b: jax.Array, temperature: float) -> jax.Array:
  """SimCLR's normalised-temperature cross-entropy (Chen et al. 2020).

  z_a, z_b: `[batch, dim]` projections of two views; row i of z_a and of z_b are a positive pair.
  Each of the 2*batch anchors is classified against the other 2*batch - 1 samples (its positive
  and 2*batch - 2 negatives) by cosine similarity / temperature; the result is the mean over the
  2*batch anchors.
  """
  z = l2_normalize(jnp.concatenate([z_a, z_b], axis=0).astype(jnp.float32))
  n = z_a.shape[0]
  logits = (z @ z.T) / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_prob = logits[jnp.arange(2 * n), positive] - jax.nn.logsumexp(logits, axis=1)
  return -jnp.mean(log_prob)


def contrastive_top1(z_a: jax.Array, z_b: jax.Array) -> jax.Array:
  """Fraction of rows of z_a whose most similar row of z_b is their positive (a pretext metric)."""
  sim = l2_normalize(z_a.astype(jnp.float32)) @ l2_normalize(z_b.astype(jnp.float32)).T
  return jnp.mean(jnp.argmax(sim, axis=1) == jnp.arange(z_a.shape[0]))
