"""Vision Transformer: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words".

Images are cut into non-overlapping p x p patches, each linearly projected to a token; a CLS token
is prepended, position embeddings added, and pre-norm Transformer blocks follow, then a final
LayerNorm. The encoder is split into `embed` (patch tokens with positions) and `encode` (CLS +
blocks + norm) so that MAE (He et al. 2022) can encode a subset of the tokens. The options for
self-supervised pretraining: fixed 2-D sin-cos position embeddings (MAE; MoCo v3, Chen et al.
2021) and MoCo v3's frozen random patch projection, which they found to stabilise training.

Parameter names follow the sharding-rule layout: `patch_embed/kernel` [p, p, C, D] (a conv
kernel's layout), `cls_token`, `pos_embed` [1, 1 + N, D] (learned only; slot 0 is the CLS's),
`block{i}/{norm1, attn/{query,key,value,out}, norm2, mlp/{fc1,fc2}}`, `norm`; the attention
kernels keep a heads axis ([D, heads, head_dim] and [heads, head_dim, D]) so rules can shard it
(the key projection has no bias, see sslax/models/attention.py). With `scan_layers` the blocks
are one `blocks/...` tree stacked on a leading [depth] axis; `remat` rematerialises each block
(both in sslax/models/stack.py).
"""
import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Array, Dtype

from sslax.models import dense
from sslax.models.attention import SelfAttention
from sslax.models.stack import apply_blocks, make_blocks

VIT_SIZES = {  # name -> (hidden_dim, depth, num_heads), from ViT and DeiT (Touvron et al. 2021).
  "vit_tiny": (192, 12, 3),
  "vit_small": (384, 12, 6),
  "vit_base": (768, 12, 12),
  "vit_large": (1024, 24, 16),
}

_xavier = nn.initializers.xavier_uniform()
_dense = partial(nn.Dense, param_dtype=jnp.float32, kernel_init=_xavier,
                 dot_general=dense.dot_general)
_layer_norm = partial(nn.LayerNorm, epsilon=1e-6, param_dtype=jnp.float32)


def patchify(images: Array, patch_size: int) -> Array:
  """[B, H, W, C] -> [B, (H/p)(W/p), p*p*C]: patches in row-major grid order, each flattened in
  (row, column, channel) order, i.e. the order of a [p, p, C, D] conv kernel's input axes."""
  b, h, w, c = images.shape
  p = patch_size
  if h % p or w % p:
    raise ValueError(f"image size {h}x{w} is not divisible by patch_size={p}")
  x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


def sincos_pos_embed(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
  """Fixed 2-D position embeddings [grid_h * grid_w, dim] for a row-major patch grid.

  The first half of each vector encodes the patch's row, the second half its column, each as
  [sin(pos * w_k), cos(pos * w_k)] over the frequencies w_k = 10000^(-k / (dim/4)), k < dim/4
  (the 1-D Transformer encoding of Vaswani et al. 2017, per axis, as in MAE and MoCo v3).
  """
  if dim % 4:
    raise ValueError(f"sin-cos position embeddings need a hidden size divisible by 4, got {dim}")
  omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim // 4))
  rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")

  def one_axis(pos: np.ndarray) -> np.ndarray:
    angles = pos.reshape(-1, 1) * omega
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

  return np.concatenate([one_axis(rows), one_axis(cols)], axis=1).astype(np.float32)


def resize_pos_embed(table: Array, grid_h: int, grid_w: int) -> Array:
  """A learned [N, D] patch position table for another grid: bicubic on its square layout.

  Multi-crop (DINO) trains on global and local views of different sizes with one table, as DINO
  does (Caron et al. 2021, interpolate_pos_encoding); a table of the asked size is returned as is.
  """
  n, dim = table.shape
  if n == grid_h * grid_w:
    return table
  side = math.isqrt(n)
  if side * side != n:
    raise ValueError(f"a learned position table of {n} patches is not a square grid, so it "
                     f"cannot be resized to {grid_h}x{grid_w}; init on square images")
  grid = table.reshape(side, side, dim)
  return jax.image.resize(grid, (grid_h, grid_w, dim), "bicubic").reshape(grid_h * grid_w, dim)


class PatchEmbed(nn.Module):
  """[B, H, W, C] -> [B, N, features]: a stride-p p x p conv, computed as patchify + matmul.

  The matmul form is the same function as the conv but keeps XLA:CPU off its slow conv weight
  gradient. `frozen` stops the gradient of the kernel and bias, so they keep their random init
  (MoCo v3's frozen patch projection).
  """
  patch_size: int
  features: int
  dtype: Dtype = jnp.float32
  frozen: bool = False

  @nn.compact
  def __call__(self, images: Array) -> Array:
    p, c = self.patch_size, images.shape[-1]
    kernel = self.param("kernel", nn.initializers.xavier_uniform(in_axis=(0, 1, 2), out_axis=3),
                        (p, p, c, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    if self.frozen:
      kernel, bias = jax.lax.stop_gradient(kernel), jax.lax.stop_gradient(bias)
    x = patchify(images.astype(self.dtype), p)
    return x @ kernel.reshape(p * p * c, self.features).astype(self.dtype) + bias.astype(self.dtype)


class Mlp(nn.Module):
  """fc1 -> GELU -> fc2, back to the input width.

  GELU's tanh approximation (as in big_vision's ViT): XLA:CPU computes the exact, erf form about
  twice as slowly, which made it half the cost of a small MLP here.
  """
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = nn.gelu(_dense(self.mlp_dim, dtype=self.dtype, name="fc1")(x), approximate=True)
    return _dense(x.shape[-1], dtype=self.dtype, name="fc2")(y)


class Block(nn.Module):
  """Pre-norm Transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    attn = SelfAttention(self.num_heads, dtype=self.dtype, name="attn")
    x = x + attn(_layer_norm(dtype=self.dtype, name="norm1")(x))
    return x + Mlp(self.mlp_dim, self.dtype, name="mlp")(_layer_norm(dtype=self.dtype,
                                                                      name="norm2")(x))


class VisionTransformer(nn.Module):
  """images [B, H, W, C] -> pooled features [B, hidden_dim], for any H, W divisible by p.

  `pos_embed`: "learned" (a parameter sized from the input at init) or "sincos" (fixed, with a
  zero embedding for the CLS token, as in MAE). `pool`: "cls" (the CLS token) or "mean" (mean of
  the patch tokens), both after the final norm. There is no dropout or batch norm, so `train`
  changes nothing; it is accepted for the encoder interface. Params are float32, computation
  runs in `dtype`. `remat` ("none", "full", "dots_saveable") and `scan_layers` choose how the
  depth runs (sslax/models/stack.py); the outputs are the same function of the same weights.
  """
  patch_size: int = 16
  hidden_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_dim: int = 1536
  pos_embed: str = "learned"
  pool: str = "cls"
  dtype: Dtype = jnp.float32
  freeze_patch_embed: bool = False
  remat: str = "none"
  scan_layers: bool = False

  @property
  def num_features(self) -> int:
    return self.hidden_dim

  def setup(self):
    if self.pos_embed not in ("learned", "sincos"):
      raise ValueError(f"pos_embed={self.pos_embed!r}; use 'learned' or 'sincos'")
    if self.pool not in ("cls", "mean"):
      raise ValueError(f"pool={self.pool!r}; use 'cls' or 'mean'")
    self.cls_token = self.param("cls_token", nn.initializers.normal(0.02),
                                (1, 1, self.hidden_dim), jnp.float32)
    self.blocks = make_blocks(lambda name: Block(self.num_heads, self.mlp_dim, self.dtype,
                                                 name=name),
                              self.depth, self.remat, self.scan_layers)
    self.norm = _layer_norm(dtype=self.dtype, name="norm")

  @nn.compact
  def embed(self, images: Array) -> Array:
    """[B, H, W, C] -> patch tokens [B, N, hidden_dim] with their position embeddings."""
    tokens = PatchEmbed(self.patch_size, self.hidden_dim, self.dtype, self.freeze_patch_embed,
                        name="patch_embed")(images)
    grid_h, grid_w = images.shape[1] // self.patch_size, images.shape[2] // self.patch_size
    if self.pos_embed == "sincos":
      pos = jnp.asarray(sincos_pos_embed(grid_h, grid_w, self.hidden_dim))
    else:
      pos = resize_pos_embed(self._learned_pos_embed(grid_h, grid_w)[0, 1:], grid_h, grid_w)
    return tokens + pos.astype(self.dtype)

  def _learned_pos_embed(self, grid_h: int, grid_w: int) -> Array:
    """The [1, 1 + N, D] table, sized by the input that `init` saw, whatever the grid now."""
    if self.has_variable("params", "pos_embed"):
      return self.get_variable("params", "pos_embed")
    return self.param("pos_embed", nn.initializers.truncated_normal(0.02),
                      (1, 1 + grid_h * grid_w, self.hidden_dim), jnp.float32)

  def encode(self, tokens: Array, train: bool) -> Array:
    """[B, n, hidden_dim] tokens (any subset of `embed`'s) -> [B, 1 + n, hidden_dim], CLS first."""
    del train  # Same function in both modes (see the class docstring).
    cls = self.cls_token
    if self.pos_embed == "learned":
      cls = cls + self.get_variable("params", "pos_embed")[:, :1]
    cls = jnp.broadcast_to(cls.astype(self.dtype), (tokens.shape[0], 1, self.hidden_dim))
    x = jnp.concatenate([cls, tokens.astype(self.dtype)], axis=1)
    x = apply_blocks(self.blocks, x, self.depth, self.remat, lambda block, x: block(x))
    return self.norm(x)

  def __call__(self, images: Array, train: bool) -> Array:
    x = self.encode(self.embed(images), train)
    if self.pool == "cls":
      return x[:, 0]
    return jnp.mean(x[:, 1:], axis=1, dtype=jnp.float32).astype(self.dtype)


def make_vit(name: str, cfg: Mapping[str, Any], dtype: Dtype) -> VisionTransformer:
  """A VIT_SIZES model from an encoder config; `hidden_dim`, `depth`, `num_heads` and `mlp_dim`
  (default 4 x hidden_dim) override the size, the other fields default as in the class."""
  hidden_dim, depth, num_heads = VIT_SIZES[name]
  hidden_dim = int(cfg.get("hidden_dim") or hidden_dim)
  return VisionTransformer(
      patch_size=int(cfg.get("patch_size", 16)), hidden_dim=hidden_dim,
      depth=int(cfg.get("depth") or depth), num_heads=int(cfg.get("num_heads") or num_heads),
      mlp_dim=int(cfg.get("mlp_dim") or 4 * hidden_dim), pos_embed=cfg.get("pos_embed", "learned"),
      pool=cfg.get("pool", "cls"), dtype=dtype,
      freeze_patch_embed=bool(cfg.get("freeze_patch_embed", False)),
      remat=cfg.get("remat", "none"), scan_layers=bool(cfg.get("scan_layers", False)))
