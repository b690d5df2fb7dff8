"""Image augmentation ops as pure numpy functions for the input pipeline.

Images are float32 arrays [H, W, C] in [0, 1] with C = 1 (grayscale) or 3 (RGB).
Random ops take an explicit `np.random.Generator`, so the same generator state
gives the same output, and every op returns a new float32 array (inputs are never
mutated). Ops are vectorised over pixels and channels because the pipeline runs
them per image at thousands of images per second; resizing uses small cached
interpolation matrices (two matmuls) instead of per-channel PIL calls, which is
several times faster on CIFAR/MNIST-sized images (dense matrices do lose to PIL on
ImageNet-sized inputs).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _coin(rng: np.random.Generator, p: float) -> bool:
  """True with probability p; draws nothing when p <= 0 or p >= 1 (so p=0 ops are free)."""
  if p <= 0.0:
    return False
  if p >= 1.0:
    return True
  return bool(rng.random() < p)


def _luma(image: np.ndarray) -> np.ndarray:
  """Grayscale [H, W, 1] of an [H, W, C] image (the image itself when C = 1)."""
  if image.shape[-1] == 1:
    return image
  return (image @ LUMA)[..., None]


def to_float(image_uint8: np.ndarray) -> np.ndarray:
  """uint8 [H, W] or [H, W, C] -> float32 [H, W, C] in [0, 1]."""
  image = np.asarray(image_uint8, np.float32) / np.float32(255)
  return image[..., None] if image.ndim == 2 else image


# ----------------------------------------------------------------------------- geometry


@functools.lru_cache(maxsize=2048)
def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] bilinear (triangle-filter) resampling weights, antialiased when shrinking.

  Output pixel i is centred at source position (i + 0.5) * n_in / n_out (pixel-edge
  coordinates); the triangle widens by the shrink factor so downsampling averages
  rather than aliases, and rows are renormalised where the filter leaves the image.
  Cached read-only: crops of a given dataset only produce a few hundred distinct sizes.
  """
  scale = n_in / n_out
  support = max(scale, 1.0)
  centres = (np.arange(n_out) + 0.5) * scale
  dist = (np.arange(n_in) + 0.5)[None, :] - centres[:, None]
  weights = np.maximum(0.0, 1.0 - np.abs(dist) / support)
  weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
  weights.flags.writeable = False
  return weights


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize [H, W, C] -> [size, size, C] (deterministic; aspect ratio not kept)."""
  h, w, c = image.shape
  rows = _interp_matrix(h, size) @ image.reshape(h, w * c)  # [size, W*C]
  return np.matmul(_interp_matrix(w, size), rows.reshape(size, w, c))  # [size, size, C]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Central [size, size, C] window of an image at least `size` on each side."""
  h, w, _ = image.shape
  if size > h or size > w:
    raise ValueError(f"center_crop size {size} exceeds image {h}x{w}")
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size].copy()


def sample_crop_box(h: int, w: int, rng: np.random.Generator,
                    scale: Sequence[float] = (0.08, 1.0),
                    ratio: Sequence[float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """(top, left, height, width) of a random crop inside an h x w image.

  Area fraction is uniform in `scale` and aspect ratio (width / height) log-uniform in
  `ratio`; up to 10 samples are tried before falling back to the largest central crop
  whose aspect ratio is clamped into `ratio`.
  """
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    area = h * w * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    cw = round(math.sqrt(area * aspect))
    ch = round(math.sqrt(area / aspect))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return top, left, ch, cw
  aspect = min(max(w / h, ratio[0]), ratio[1])
  if w / h > aspect:  # Too wide: keep the height.
    ch, cw = h, max(1, round(h * aspect))
  else:
    ch, cw = max(1, round(w / aspect)), w
  return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, size: int,
                        scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """Random crop (see `sample_crop_box`) resized bilinearly to [size, size, C]."""
  top, left, ch, cw = sample_crop_box(image.shape[0], image.shape[1], rng, scale, ratio)
  return resize(image[top:top + ch, left:left + cw], size)


def horizontal_flip(image: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
  """Mirror left-right with probability p."""
  return image[:, ::-1].copy() if _coin(rng, p) else image.copy()


@functools.lru_cache(maxsize=64)
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel offsets from the image centre: dy [H, 1] and dx [1, W], float32, read-only."""
  dy = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2))[:, None]
  dx = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2))[None, :]
  dy.flags.writeable = dx.flags.writeable = False
  return dy, dx


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
  """Rotate counter-clockwise (as displayed) about the centre; bilinear, zero fill.

  Each output pixel samples the input at its inversely rotated position. The input
  gets a 1-pixel zero border and positions are clamped onto it, so pixels from outside
  the image read zeros and the edge fades out bilinearly. Sampling is done on flat
  [C, (H+2) * (W+2)] planes so the gathers and weights broadcast over channels cheaply; the four
  corners are one `np.take` (3x faster than fancy indexing at 32x32).
  """
  h, w, c = image.shape
  dy, dx = _centred_grid(h, w)
  cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
  x = np.clip(cos * dx - sin * dy + np.float32((w + 1) / 2), 0, w + 1)  # In padded coordinates.
  y = np.clip(sin * dx + cos * dy + np.float32((h + 1) / 2), 0, h + 1)
  x0, y0 = np.floor(x), np.floor(y)
  fx, fy = x - x0, y - y0
  x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
  x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
  planes = np.zeros((c, h + 2, w + 2), np.float32)
  planes[:, 1:-1, 1:-1] = image.transpose(2, 0, 1)
  row0, row1 = y0 * (w + 2), y1 * (w + 2)
  corners = np.stack([row0 + x0, row0 + x1, row1 + x0, row1 + x1])  # [4, H, W] flat indices.
  p00, p01, p10, p11 = np.take(planes.reshape(c, -1), corners, axis=1).swapaxes(0, 1)
  top = p00 + fx * (p01 - p00)
  out = top + fy * (p10 + fx * (p11 - p10) - top)
  return np.ascontiguousarray(out.transpose(1, 2, 0))


def random_rotation(image: np.ndarray, rng: np.random.Generator, degrees: float = 15.0,
                    p: float = 1.0) -> np.ndarray:
  """With probability p, rotate by an angle uniform in [-degrees, degrees] (see `rotate`)."""
  if not _coin(rng, p):
    return image.copy()
  return rotate(image, rng.uniform(-degrees, degrees))


# -------------------------------------------------------------------------------- colour


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
  """Scale intensities by `factor`, clipped to [0, 1]."""
  return np.clip(image * np.float32(factor), 0.0, 1.0)


def _blend(image: np.ndarray, other: np.ndarray | float, factor: float) -> np.ndarray:
  """factor * image + (1 - factor) * other, clipped to [0, 1]."""
  f = np.float32(factor)
  return np.clip(f * image + (1 - f) * other, 0.0, 1.0)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
  """Blend with the mean grey level (factor 0: flat grey, 1: identity)."""
  return _blend(image, np.float32(_luma(image).mean()), factor)


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
  """Blend with the grayscale image (factor 0: grayscale, 1: identity); no-op for C = 1."""
  if image.shape[-1] == 1:
    return image.copy()
  return _blend(image, _luma(image), factor)


_HUE_CENTRES = np.array([0, 2, 4], np.float32)[:, None, None]  # R, G, B in sixths of a turn.


def adjust_hue(image: np.ndarray, delta: float) -> np.ndarray:
  """Rotate hue by `delta` turns (in [-0.5, 0.5]) in HSV space; no-op for C = 1.

  A hue shift keeps each pixel's max v and chroma c = max - min, so only the hue h is
  computed (in sixths of a turn) and mapped back with channel = v - c * clip(d - 1, 0, 1),
  d being the circular distance from h to the channel's own hue (0 R, 2 G, 4 B). This
  stays within [min, max] of the pixel, so it needs no clipping. Work is done on
  contiguous [3, H, W] planes: numpy broadcasts over a trailing axis of 3 very slowly.
  """
  if image.shape[-1] == 1:
    return image.copy()
  r, g, b = np.ascontiguousarray(image.transpose(2, 0, 1))
  v = np.maximum(np.maximum(r, g), b)
  c = v - np.minimum(np.minimum(r, g), b)
  is_r, is_g = v == r, v == g
  h = np.where(is_r, g - b, np.where(is_g, b - r + 2 * c, r - g + 4 * c))
  h /= np.where(c > 0, c, np.float32(1))  # Greys (c = 0) get hue 0; it has no effect there.
  h += np.float32(6 * delta)
  h -= 6 * np.floor(h * np.float32(1 / 6))  # Wrap into [0, 6).
  d = np.abs(h - _HUE_CENTRES)
  d = np.minimum(d, 6 - d)
  planes = v - c * np.clip(d - 1, 0, 1)
  return np.ascontiguousarray(planes.transpose(1, 2, 0))


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 0.8) -> np.ndarray:
  """With probability p, apply brightness/contrast/saturation/hue adjustments in random order.

  Factors are uniform in [1 - s, 1 + s] (floored at 0) and the hue delta in [-hue, hue];
  a component with strength 0 is skipped.
  """
  ranges = [(adjust_brightness, max(0.0, 1 - brightness), 1 + brightness),
            (adjust_contrast, max(0.0, 1 - contrast), 1 + contrast),
            (adjust_saturation, max(0.0, 1 - saturation), 1 + saturation),
            (adjust_hue, -hue, hue)]
  ops = [(fn, low, high) for fn, low, high in ranges if high > low]  # Strength 0: skipped.
  if not ops or not _coin(rng, p):
    return image.copy()
  out = image
  for i in rng.permutation(len(ops)):
    fn, low, high = ops[i]
    out = fn(out, rng.uniform(low, high))
  return out


def grayscale(image: np.ndarray) -> np.ndarray:
  """Luma (0.299 R + 0.587 G + 0.114 B) replicated over the channels; no-op for C = 1."""
  return np.repeat(_luma(image), image.shape[-1], axis=-1)


def random_grayscale(image: np.ndarray, rng: np.random.Generator, p: float = 0.2) -> np.ndarray:
  """Convert to grayscale (see `grayscale`) with probability p."""
  return grayscale(image) if _coin(rng, p) else image.copy()


# ------------------------------------------------------------------------------- filters


def gaussian_kernel(sigma: float, size: int) -> np.ndarray:
  """Normalised 1-D Gaussian of odd length `size`, float32."""
  x = np.arange(size, dtype=np.float32) - size // 2
  k = np.exp(-x * x / np.float32(2 * sigma * sigma))
  return k / k.sum()


@functools.lru_cache(maxsize=256)
def _reflect_index(n: int, r: int) -> np.ndarray:
  """Indices [n + 2r] of a length-n axis reflect-padded by r (edge not repeated), read-only."""
  idx = np.abs(np.arange(-r, n + r))
  idx = np.where(idx < n, idx, 2 * (n - 1) - idx)
  idx.flags.writeable = False
  return idx


def _convolve_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
  """Correlate along `axis` (0 or 1) with an odd kernel and reflect padding, keeping the shape."""
  n, r = image.shape[axis], len(kernel) // 2
  padded = image.take(_reflect_index(n, r), axis=axis)
  window = [slice(None)] * image.ndim
  out = np.zeros_like(image)
  for i, weight in enumerate(kernel):
    window[axis] = slice(i, i + n)
    out += weight * padded[tuple(window)]
  return out


def gaussian_blur(image: np.ndarray, rng: np.random.Generator,
                  sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5,
                  kernel_frac: float = 0.1) -> np.ndarray:
  """With probability p, separable Gaussian blur with sigma uniform in `sigma`.

  The kernel is odd, about kernel_frac of the shorter side and at least 3 taps.
  """
  if not _coin(rng, p):
    return image.copy()
  size = max(3, int(round(kernel_frac * min(image.shape[:2]))) | 1)
  kernel = gaussian_kernel(rng.uniform(sigma[0], sigma[1]), size)
  return _convolve_axis(_convolve_axis(image, kernel, 0), kernel, 1)


def solarize(image: np.ndarray, rng: np.random.Generator, p: float = 0.2,
             threshold: float = 0.5) -> np.ndarray:
  """With probability p, invert (x -> 1 - x) the pixels >= threshold."""
  if not _coin(rng, p):
    return image.copy()
  return np.where(image >= threshold, 1 - image, image)


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, std: float = 0.05,
                   p: float = 0.5) -> np.ndarray:
  """With probability p, add N(0, std^2) noise per pixel and channel, clipped to [0, 1]."""
  if not _coin(rng, p):
    return image.copy()
  noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
  return np.clip(image + noise, 0.0, 1.0)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """Per-channel (x - mean) / std; mean and std have length C or 1 (broadcast)."""
  c = image.shape[-1]
  mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
  if mean.shape not in ((1,), (c,)) or std.shape not in ((1,), (c,)):
    raise ValueError(f"mean/std lengths {mean.shape}/{std.shape} do not match {c} channels")
  return (image - mean) / std


# -------------------------------------------------------------------------------- views


AUGMENT_DEFAULTS: dict[str, Any] = dict(
    crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), rotation_degrees=0.0, rotation_p=1.0,
    flip_p=0.5, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
    grayscale_p=0.2, blur_p=0.0, blur_sigma=(0.1, 2.0), solarize_p=0.0, noise_p=0.0,
    noise_std=0.05, mean=(0.5,), std=(0.5,))


def augment(image: np.ndarray, rng: np.random.Generator, spec: Mapping[str, Any]) -> np.ndarray:
  """One random normalised view [size, size, C] of a float image, as configured by `spec`.

  `spec` is a dict or ConfigDict with a required `size`; other keys default to
  `AUGMENT_DEFAULTS` (SimCLR-style crop, flip and colour; rotation, blur, solarize and
  noise off). Ops with probability 0 are skipped without drawing from `rng`.
  """
  s = {key: spec.get(key, default) for key, default in AUGMENT_DEFAULTS.items()}
  view = random_resized_crop(image, rng, spec["size"], s["crop_scale"], s["crop_ratio"])
  if s["rotation_degrees"] > 0 and s["rotation_p"] > 0:
    view = random_rotation(view, rng, s["rotation_degrees"], s["rotation_p"])
  if s["flip_p"] > 0:
    view = horizontal_flip(view, rng, s["flip_p"])
  if s["jitter_p"] > 0:
    view = color_jitter(view, rng, s["brightness"], s["contrast"], s["saturation"], s["hue"],
                        s["jitter_p"])
  if s["grayscale_p"] > 0:
    view = random_grayscale(view, rng, s["grayscale_p"])
  if s["blur_p"] > 0:
    view = gaussian_blur(view, rng, s["blur_sigma"], s["blur_p"])
  if s["solarize_p"] > 0:
    view = solarize(view, rng, s["solarize_p"])
  if s["noise_p"] > 0:
    view = gaussian_noise(view, rng, s["noise_std"], s["noise_p"])
  return normalize(view, s["mean"], s["std"])


def eval_view(image: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
  """Deterministic evaluation view: resize to spec size, then normalise."""
  mean = spec.get("mean", AUGMENT_DEFAULTS["mean"])
  std = spec.get("std", AUGMENT_DEFAULTS["std"])
  return normalize(resize(image, spec["size"]), mean, std)
