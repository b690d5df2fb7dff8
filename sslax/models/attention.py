"""Multi-head self-attention shared by the Vision Transformer and the text Transformer.

Kernels keep a heads axis, query/key/value [D, heads, head_dim] and out [heads, head_dim, D], so
sharding rules can split heads over a `tensor` mesh axis. The three projections run as one
matmul against the stacked kernels (one wider GEMM instead of three; the stacked axis is new, so a
sharded heads axis stays sharded). Softmax runs in float32. The key has no bias: softmax ignores a
shift shared by every key, so its gradient is zero and Adam would only turn rounding noise into
random steps.

Attention without mask on CPU (the ViT's) is `folded_attention`: heads folded into one leading
batch axis and a hand-written backward, about 2-3% of the MAE ViT-Tiny/4 step faster than
jax.nn.dot_product_attention there (fewer layout copies; benchmarks/README.md). Masked or causal
attention, and every GPU/TPU one, is jax.nn.dot_product_attention.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Array, Dtype

from sslax.models import dense

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


def _fold(x: Array) -> Array:
  """[B, T, N, H] -> [B * N, T, H]."""
  b, t, n, h = x.shape
  return x.transpose(0, 2, 1, 3).reshape(b * n, t, h)


def _unfold(x: Array, heads: int) -> Array:
  """[B * N, T, H] -> [B, T, N, H]."""
  bn, t, h = x.shape
  return x.reshape(bn // heads, heads, t, h).transpose(0, 2, 1, 3)


@jax.custom_vjp
def folded_attention(q: Array, k: Array, v: Array) -> Array:
  """softmax(q k^T / sqrt(H)) v for [B, T, N, H] inputs, as jax.nn.dot_product_attention
  computes it (float32 logits and softmax, probabilities cast to v's dtype)."""
  return _attention_fwd(q, k, v)[0]


def _attention_fwd(q: Array, k: Array, v: Array):
  scale = 1.0 / math.sqrt(q.shape[-1])
  qf, kf, vf = _fold(q), _fold(k), _fold(v)
  logits = jnp.einsum("xth,xsh->xts", qf, kf, preferred_element_type=jnp.float32) * scale
  probs = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum("xts,xsh->xth", probs.astype(v.dtype), vf)
  return _unfold(out, q.shape[2]), (qf, kf, vf, probs)


def _attention_bwd(residuals, g: Array):
  qf, kf, vf, probs = residuals
  heads, scale = g.shape[2], 1.0 / math.sqrt(qf.shape[-1])
  gf = _fold(g)
  dv = jnp.einsum("xts,xth->xsh", probs.astype(g.dtype), gf)
  dprobs = jnp.einsum("xth,xsh->xts", gf, vf, preferred_element_type=jnp.float32)
  dlogits = probs * (dprobs - jnp.sum(dprobs * probs, axis=-1, keepdims=True)) * scale
  dq = jnp.einsum("xts,xsh->xth", dlogits.astype(kf.dtype), kf)
  dk = jnp.einsum("xts,xth->xsh", dlogits.astype(qf.dtype), qf)
  return _unfold(dq, heads), _unfold(dk, heads), _unfold(dv, heads)


folded_attention.defvjp(_attention_fwd, _attention_bwd)


class Projection(nn.Module):
  """A query, key or value projection's kernel [D, heads, head_dim] and bias [heads, head_dim]
  (zeros without `use_bias`), named and initialised as nn.DenseGeneral's, for the fused matmul."""
  features: tuple[int, int]
  use_bias: bool = True

  @nn.compact
  def __call__(self, dim: int) -> tuple[Array, Array]:
    def init(rng, shape, dtype):  # DenseGeneral's: xavier on the flattened [D, heads x hd].
      return _xavier(rng, (dim, int(np.prod(shape[1:]))), dtype).reshape(shape)

    kernel = self.param("kernel", init, (dim, *self.features), jnp.float32)
    if not self.use_bias:
      return kernel, jnp.zeros(self.features, jnp.float32)
    return kernel, self.param("bias", nn.initializers.zeros, self.features, jnp.float32)


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
    heads = (self.num_heads, dim // self.num_heads)
    kernels, biases = zip(*(Projection(heads, use_bias=name != "key", name=name)(dim)
                            for name in ("query", "key", "value")), strict=True)
    kernel = jnp.stack(kernels, axis=1).astype(self.dtype)  # [D, 3, heads, head_dim]
    qkv = dense.dot_general(x.astype(self.dtype), kernel, (((2,), (0,)), ((), ())))
    qkv = qkv + jnp.stack(biases).astype(self.dtype)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if self.rotary:
      positions = jnp.arange(x.shape[1])
      q, k = apply_rotary(q, positions), apply_rotary(k, positions)
    if mask is None and not self.causal and jax.default_backend() == "cpu":
      y = folded_attention(q, k, v)
    else:
      y = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=self.causal)
    return nn.DenseGeneral(dim, axis=(-2, -1), dtype=self.dtype, param_dtype=jnp.float32,
                           kernel_init=_xavier, dot_general=dense.dot_general, name="out")(y)
