"""Multi-head self-attention shared by the Vision Transformer and the text Transformer.

Kernels keep a heads axis, query/key/value [D, heads, head_dim] and out [heads, head_dim, D], so
sharding rules can split heads over a `tensor` mesh axis. Softmax runs in float32
(jax.nn.dot_product_attention). The key has no bias: softmax ignores a shift shared by every
key, so its gradient is zero and Adam would only turn rounding noise into random steps.
"""
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Array, Dtype

_xavier = nn.initializers.xavier_uniform()


def apply_rotary(x: Array, positions: Array) -> Array:
  """Rotary position embedding of queries or keys `[B, T, heads, head_dim]` at `positions` [T].

  Dimension i is paired with i + head_dim/2 and the pair rotated by the angle position *
  theta_i, theta_i = 10000^(-2i/head_dim), so q_m . k_n depends on m - n only. RoFormer pairs
  neighbouring dimensions instead; the half split is the same function up to a fixed permutation
  of head dimensions, which the query and key kernels absorb, and needs no strided slices.
  Angles and the rotation are computed in float32: bfloat16 cannot resolve position * theta
  for long sequences.
  """
  head_dim = x.shape[-1]
  if head_dim % 2:
    raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
  half = head_dim // 2
  theta = 10000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[:, None, None] * theta  # [T, 1, half]: all heads.
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


class SelfAttention(nn.Module):
  """Self-attention over [B, T, D]. `mask` [B, 1, 1, T] is True at keys that may be attended to
  (padding is False); `causal` also hides later positions (GPT); `rotary` applies rotary position
  embeddings to queries and keys (no position parameter)."""
  num_heads: int
  causal: bool = False
  rotary: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None) -> Array:
    dim = x.shape[-1]
    if dim % self.num_heads:
      raise ValueError(f"hidden size {dim} is not divisible by num_heads={self.num_heads}")
    proj = partial(nn.DenseGeneral, features=(self.num_heads, dim // self.num_heads),
                   dtype=self.dtype, param_dtype=jnp.float32, kernel_init=_xavier)
    q, k, v = proj(name="query")(x), proj(use_bias=False, name="key")(x), proj(name="value")(x)
    if self.rotary:
      positions = jnp.arange(x.shape[1])
      q, k = apply_rotary(q, positions), apply_rotary(k, positions)
    y = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=self.causal)
    return nn.DenseGeneral(dim, axis=(-2, -1), dtype=self.dtype, param_dtype=jnp.float32,
                           kernel_init=_xavier, name="out")(y)
