"""Speed-ups of sslax.data.image_ops keep its outputs bit for bit: each optimised op against the
implementation it replaced, kept here as the reference."""
import math

import numpy as np
import pytest

from sslax.data import image_ops as ops


def _rotate_fancy_indexing(image: np.ndarray, degrees: float) -> np.ndarray:
  """rotate() as it was before the gathers became one np.take (four fancy-indexing gathers)."""
  h, w, c = image.shape
  dy, dx = ops._centred_grid(h, w)
  cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
  x = np.clip(cos * dx - sin * dy + np.float32((w + 1) / 2), 0, w + 1)
  y = np.clip(sin * dx + cos * dy + np.float32((h + 1) / 2), 0, h + 1)
  x0, y0 = np.floor(x), np.floor(y)
  fx, fy = x - x0, y - y0
  x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
  x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
  planes = np.zeros((c, h + 2, w + 2), np.float32)
  planes[:, 1:-1, 1:-1] = image.transpose(2, 0, 1)
  planes = planes.reshape(c, -1)
  p00, p01 = planes[:, y0 * (w + 2) + x0], planes[:, y0 * (w + 2) + x1]
  p10, p11 = planes[:, y1 * (w + 2) + x0], planes[:, y1 * (w + 2) + x1]
  top = p00 + fx * (p01 - p00)
  out = top + fy * (p10 + fx * (p11 - p10) - top)
  return np.ascontiguousarray(out.transpose(1, 2, 0))


def _convolve_axis_uncached(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
  """_convolve_axis() as it was before the reflect-padding indices were cached."""
  n, r = image.shape[axis], len(kernel) // 2
  idx = np.abs(np.arange(-r, n + r))
  padded = image.take(np.where(idx < n, idx, 2 * (n - 1) - idx), axis=axis)
  window = [slice(None)] * image.ndim
  out = np.zeros_like(image)
  for i, weight in enumerate(kernel):
    window[axis] = slice(i, i + n)
    out += weight * padded[tuple(window)]
  return out


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1), (17, 23, 3)])
def test_rotate_is_bit_identical_to_the_reference(shape):
  rng = np.random.default_rng(0)
  image = rng.random(shape, dtype=np.float32)
  for degrees in [0.0, 90.0, -180.0, *rng.uniform(-45, 45, 20)]:
    out = ops.rotate(image, degrees)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, _rotate_fancy_indexing(image, degrees))


@pytest.mark.parametrize("size", [3, 5, 7])
def test_blur_is_bit_identical_to_the_reference(size):
  image = np.random.default_rng(1).random((19, 32, 3), dtype=np.float32)
  kernel = ops.gaussian_kernel(0.8, size)
  for axis in (0, 1):
    np.testing.assert_array_equal(ops._convolve_axis(image, kernel, axis),
                                  _convolve_axis_uncached(image, kernel, axis))
