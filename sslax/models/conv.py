"""2-D convolutions with a faster weight gradient on XLA:CPU.

XLA:CPU computes a convolution's weight gradient dW as one convolution over the whole batch (the
batch becomes the contracted dimension), which runs at 3-12 GFLOP/s on ResNet-18/CIFAR shapes
while the forward pass and the input gradient dX run at 20-130 (benchmarks/conv_grad.py). Both
ops here keep XLA's forward and dX and replace only dW, through a custom VJP:

- "matmul": dW = patches(x)^T @ dY, one im2col matmul over the whole batch.
- "chunked": XLA's own dW convolution on chunks of images, summed. On a chunk of about 1,024
  output positions (4 images at 32x32, 16 at 8x8) the same op is 3-5x faster per image than on
  a batch of 256 (benchmarks/conv_grad.py); at 4x4 chunking gains nothing.
- "auto" (resnet.py): "chunked" on CPU, XLA's plain convolution on GPU and TPU (fast there).
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


# "chunked": output positions (images x Ho x Wo) per weight-gradient convolution, and the fewest
# images per chunk (more chunks compile longer for little gain).
DW_CHUNK_POSITIONS = 1024
DW_MIN_CHUNK = 4


def _dw_xla(x: Array, dy: Array, w: Array, strides: tuple[int, int], padding: Padding) -> Array:
  """XLA's own weight-gradient convolution."""
  _, weight_vjp = jax.vjp(lambda w: _conv(x, w, strides, padding), w)
  return weight_vjp(dy)[0]


def _dw_matmul(x: Array, dy: Array, w: Array, strides: tuple[int, int],
               padding: Padding) -> Array:
  """dW = patches(x)^T @ dY [kh * kw * Cin, Cout], reshaped to HWIO."""
  dw = patches(x, w.shape[:2], strides, padding).T @ dy.reshape(-1, dy.shape[-1])
  return dw.reshape(w.shape)


def num_chunks(batch: int, chunk: int) -> int:
  """The most chunks of at least `chunk` images that divide `batch` evenly (1 if none)."""
  return max(n for n in range(1, max(1, batch // chunk) + 1) if batch % n == 0)


def _dw_chunked(x: Array, dy: Array, w: Array, strides: tuple[int, int],
                padding: Padding) -> Array:
  """XLA's dW summed over chunks of max(DW_MIN_CHUNK, DW_CHUNK_POSITIONS / (Ho * Wo)) images.

  Chunk j holds images j, j + n, j + 2n... (a strided slice of x viewed as [B / n, n, ...]), so
  a batch sharded over devices stays sharded within each chunk; XLA fuses the slice into the
  transpose its weight-gradient convolution starts with.
  """
  chunk = max(DW_MIN_CHUNK, DW_CHUNK_POSITIONS // (dy.shape[1] * dy.shape[2]))
  n = num_chunks(x.shape[0], chunk)
  xs = x.reshape(-1, n, *x.shape[1:])
  dys = dy.reshape(-1, n, *dy.shape[1:])
  return functools.reduce(jnp.add, [_dw_xla(xs[:, j], dys[:, j], w, strides, padding)
                                    for j in range(n)])


WEIGHT_GRADS = {"matmul": _dw_matmul, "chunked": _dw_chunked}


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x: Array, w: Array, strides: tuple[int, int], padding: Padding,
           weight_grad: str = "matmul") -> Array:
  """NHWC x HWIO convolution, equal to lax.conv_general_dilated, whose dW is computed by
  WEIGHT_GRADS[weight_grad]."""
  return _conv(x, w, strides, padding)


def _conv2d_fwd(x, w, strides, padding, weight_grad):
  return _conv(x, w, strides, padding), (x, w)


def _conv2d_bwd(strides, padding, weight_grad, residuals, dy):
  x, w = residuals
  _, input_vjp = jax.vjp(lambda x: _conv(x, w, strides, padding), x)
  (dx,) = input_vjp(dy)
  dw = WEIGHT_GRADS[weight_grad](x, dy, w, strides, padding)
  return dx, dw.astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class MatmulGradConv(nn.Module):
  """Bias-free conv with nn.Conv's call signature and parameter ("kernel", HWIO); its weight
  gradient is WEIGHT_GRADS[weight_grad]."""
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: int = 0
  kernel_init: Callable = nn.initializers.lecun_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  weight_grad: str = "matmul"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel_size = tuple(self.kernel_size)
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    kernel = self.param("kernel", self.kernel_init, (*kernel_size, x.shape[-1], self.features),
                        self.param_dtype)
    padding = ((self.padding, self.padding), (self.padding, self.padding))
    return conv2d(x.astype(self.dtype), kernel.astype(self.dtype), strides, padding,
                  self.weight_grad)
