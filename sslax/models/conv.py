"""A 2-D convolution whose weight gradient is one matmul, for XLA:CPU.

On CPU, XLA's weight-gradient convolution runs at 2-8 GFLOP/s while its forward pass and input
gradient run at 30-70 (benchmarks/conv_grad.py). This op keeps XLA's forward and input gradient
and computes dW = patches(x)^T @ dY instead. It is opt-in per encoder
(`conv_weight_grad="matmul"`); GPU and TPU keep XLA's own convolution, which is fast there.
"""
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Array, Dtype

Padding = tuple[tuple[int, int], tuple[int, int]]
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: Array, w: Array, strides: tuple[int, int], padding: Padding) -> Array:
  return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DIMENSIONS)


def patches(x: Array, kernel_size: tuple[int, int], strides: tuple[int, int],
            padding: Padding) -> Array:
  """im2col: x [B, H, W, C] -> [B * Ho * Wo, kh * kw * C], taps in HWIO order."""
  (top, bottom), (left, right) = padding
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  kh, kw = kernel_size
  out_h = (padded.shape[1] - kh) // strides[0] + 1
  out_w = (padded.shape[2] - kw) // strides[1] + 1
  taps = [padded[:, i:i + strides[0] * (out_h - 1) + 1:strides[0],
                 j:j + strides[1] * (out_w - 1) + 1:strides[1]]
          for i in range(kh) for j in range(kw)]
  return jnp.concatenate(taps, axis=-1).reshape(-1, kh * kw * x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: Array, w: Array, strides: tuple[int, int], padding: Padding) -> Array:
  """NHWC x HWIO convolution, equal to lax.conv_general_dilated, with a matmul weight gradient."""
  return _conv(x, w, strides, padding)


def _conv2d_fwd(x, w, strides, padding):
  return _conv(x, w, strides, padding), (x, w)


def _conv2d_bwd(strides, padding, residuals, dy):
  x, w = residuals
  _, input_vjp = jax.vjp(lambda x: _conv(x, w, strides, padding), x)
  (dx,) = input_vjp(dy)
  dw = patches(x, w.shape[:2], strides, padding).T @ dy.reshape(-1, dy.shape[-1])
  return dx, dw.reshape(w.shape).astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class MatmulGradConv(nn.Module):
  """Bias-free conv with nn.Conv's call signature and parameter ("kernel", HWIO)."""
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: int = 0
  kernel_init: Callable = nn.initializers.lecun_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel_size = tuple(self.kernel_size)
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    kernel = self.param("kernel", self.kernel_init, (*kernel_size, x.shape[-1], self.features),
                        self.param_dtype)
    padding = ((self.padding, self.padding), (self.padding, self.padding))
    return conv2d(x.astype(self.dtype), kernel.astype(self.dtype), strides, padding)
