"""Image augmentation ops as pure numpy functions for the input pipeline.

Images are float32 arrays [H, W, C] in [0, 1] with C = 1 (grayscale) or 3 (RGB); the
pixel ops also take a batch [B, H, W, C] with one parameter per image. Random draws
come from an explicit `np.random.Generator`, so the same generator state gives the same
output, and every op returns a new float32 array (inputs are never mutated). A training
view is made in two halves: `draw_view` per record (the crop, which depends on the
image's size, and every random draw) and `finish_views` once per batch (rotation,
colour, blur, noise), because on 32x32 images a numpy call per image and op costs more
in overhead than in arithmetic. Resizing uses small cached interpolation matrices (two
matmuls) instead of per-channel PIL calls, which is several times faster on
CIFAR/MNIST-sized images (dense matrices do lose to PIL on ImageNet-sized inputs).
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


@functools.lru_cache(maxsize=64)
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel offsets from the image centre: dy [H, 1] and dx [1, W], float32, read-only."""
  dy = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2))[:, None]
  dx = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2))[None, :]
  dy.flags.writeable = dx.flags.writeable = False
  return dy, dx


def _per_image(value: Any) -> np.ndarray:
  """A float, or one value per image of a batch [..., H, W, C], as a float32 array that
  broadcasts against it (the ops below take either, so one call serves a whole batch)."""
  value = np.asarray(value, np.float32)
  return value.reshape(value.shape + (1, 1, 1))


def rotate(image: np.ndarray, degrees: Any) -> np.ndarray:
  """Rotate [..., H, W, C] counter-clockwise (as displayed) about the centre; bilinear, zero fill.

  `degrees` is a float or one angle per leading index. Each output pixel samples the input at
  its inversely rotated position. The input gets a zero border and positions are clamped
  onto it, so pixels from outside the image read zeros and the edge fades out bilinearly.
  The border is two pixels wide on the bottom and right, so every pixel has its right and
  lower neighbours (a position clamped onto the last column or row gives them weight 0); each
  pixel's four neighbours are then one 16-byte item of a "quads" array, and the bilinear
  reads of every pixel, channel and image are one `np.take`.
  """
  *lead, h, w, c = image.shape
  n = math.prod(lead)
  angles = np.broadcast_to(np.asarray(degrees, np.float64), lead).reshape(n)
  # math.cos per image (not np.cos) keeps one rounding path for a batch and a single image.
  cos = np.array([math.cos(math.radians(a)) for a in angles], np.float32)[:, None, None]
  sin = np.array([math.sin(math.radians(a)) for a in angles], np.float32)[:, None, None]
  dy, dx = _centred_grid(h, w)
  x = np.clip(cos * dx - sin * dy + np.float32((w + 1) / 2), 0, w + 1)  # Padded coordinates.
  y = np.clip(sin * dx + cos * dy + np.float32((h + 1) / 2), 0, h + 1)
  x0, y0 = np.floor(x), np.floor(y)
  fx, fy = x - x0, y - y0
  row = w + 3
  planes = np.zeros((c, n, h + 3, row), np.float32)  # Channel planes: no trailing axis of C.
  planes[:, :, 1:h + 1, 1:w + 1] = np.moveaxis(image.reshape(n, h, w, c), -1, 0)
  flat = planes.reshape(-1)
  quads = np.empty((flat.size - row - 1, 4), np.float32)  # (p00, p01, p10, p11) per pixel.
  quads[:, 0], quads[:, 1], quads[:, 2], quads[:, 3] = (
      flat[:-row - 1], flat[1:-row], flat[row:-1], flat[row + 1:])
  first = (np.arange(c * n) * ((h + 3) * row)).reshape(c, n, 1, 1)  # Each plane's first pixel.
  index = (y0 * row + x0).astype(np.intp) + first  # [C, n, H, W]
  reads = np.take(quads.view(np.complex128)[:, 0], index).view(np.float32)
  p00, p01, p10, p11 = np.moveaxis(reads.reshape(*index.shape, 4), -1, 0)
  top = p00 + fx * (p01 - p00)
  out = top + fy * (p10 + fx * (p11 - p10) - top)  # [C, n, H, W]
  return np.ascontiguousarray(np.moveaxis(out, 0, -1)).reshape(image.shape)


# -------------------------------------------------------------------------------- colour


def adjust_brightness(image: np.ndarray, factor: Any) -> np.ndarray:
  """Scale intensities by `factor` (a float or one per image), clipped to [0, 1]."""
  return np.clip(image * _per_image(factor), 0.0, 1.0)


def _blend(image: np.ndarray, other: np.ndarray | float, factor: Any) -> np.ndarray:
  """factor * image + (1 - factor) * other, clipped to [0, 1]."""
  f = _per_image(factor)
  return np.clip(f * image + (1 - f) * other, 0.0, 1.0)


def adjust_contrast(image: np.ndarray, factor: Any) -> np.ndarray:
  """Blend each image with its mean grey level (factor 0: flat grey, 1: identity)."""
  return _blend(image, _luma(image).mean(axis=(-3, -2, -1), keepdims=True), factor)


def adjust_saturation(image: np.ndarray, factor: Any) -> np.ndarray:
  """Blend with the grayscale image (factor 0: grayscale, 1: identity); no-op for C = 1."""
  if image.shape[-1] == 1:
    return image.copy()
  return _blend(image, _luma(image), factor)


_HUE_CENTRES = np.array([0, 2, 4], np.float32)  # R, G, B in sixths of a turn.


def adjust_hue(image: np.ndarray, delta: Any) -> np.ndarray:
  """Rotate hue by `delta` turns (in [-0.5, 0.5]; a float or one per image) in HSV space; no-op
  for C = 1.

  A hue shift keeps each pixel's max v and chroma c = max - min, so only the hue h is
  computed (in sixths of a turn) and mapped back with channel = v - c * clip(d - 1, 0, 1),
  d being the circular distance from h to the channel's own hue (0 R, 2 G, 4 B). This
  stays within [min, max] of the pixel, so it needs no clipping. Work is done on
  contiguous [3, ..., H, W] planes: numpy broadcasts over a trailing axis of 3 very slowly.
  """
  if image.shape[-1] == 1:
    return image.copy()
  r, g, b = np.ascontiguousarray(np.moveaxis(image, -1, 0))
  v = np.maximum(np.maximum(r, g), b)
  c = v - np.minimum(np.minimum(r, g), b)
  is_r, is_g = v == r, v == g
  h = np.where(is_r, g - b, np.where(is_g, b - r + 2 * c, r - g + 4 * c))
  h /= np.where(c > 0, c, np.float32(1))  # Greys (c = 0) get hue 0; it has no effect there.
  h += _per_image(6 * np.asarray(delta, np.float64))[..., 0]
  h -= 6 * np.floor(h * np.float32(1 / 6))  # Wrap into [0, 6).
  d = np.abs(h - _HUE_CENTRES.reshape((3,) + (1,) * h.ndim))
  d = np.minimum(d, 6 - d)
  planes = v - c * np.clip(d - 1, 0, 1)
  return np.ascontiguousarray(np.moveaxis(planes, 0, -1))


def grayscale(image: np.ndarray) -> np.ndarray:
  """Luma (0.299 R + 0.587 G + 0.114 B) replicated over the channels; no-op for C = 1."""
  return np.repeat(_luma(image), image.shape[-1], axis=-1)


def solarize(image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
  """Invert (x -> 1 - x) the pixels >= threshold."""
  return np.where(image >= threshold, 1 - image, image)


# ------------------------------------------------------------------------------- filters


def gaussian_kernel(sigma: Any, size: int) -> np.ndarray:
  """Normalised 1-D Gaussian of odd length `size`, float32: [size], or [..., size] for an array
  of sigmas."""
  x = np.arange(size, dtype=np.float32) - size // 2
  sigma = np.asarray(sigma, np.float64)[..., None]
  k = np.exp(-x * x / (2 * sigma * sigma).astype(np.float32))
  return k / k.sum(axis=-1, keepdims=True)


@functools.lru_cache(maxsize=256)
def _reflect_index(n: int, r: int) -> np.ndarray:
  """Indices [n + 2r] of a length-n axis reflect-padded by r (edge not repeated), read-only."""
  idx = np.abs(np.arange(-r, n + r))
  idx = np.where(idx < n, idx, 2 * (n - 1) - idx)
  idx.flags.writeable = False
  return idx


def _convolve_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
  """Correlate `image` [..., H, W, C] along `axis` (an H or W axis) with an odd kernel [K], or one
  kernel per image [..., K], with reflect padding, keeping the shape."""
  n, r = image.shape[axis], kernel.shape[-1] // 2
  padded = image.take(_reflect_index(n, r), axis=axis)
  weights = kernel if kernel.ndim == 1 else kernel[..., None, None, None, :]
  window = [slice(None)] * image.ndim
  out = np.zeros_like(image)
  for i in range(kernel.shape[-1]):
    window[axis] = slice(i, i + n)
    out += weights[..., i] * padded[tuple(window)]
  return out


def blur(image: np.ndarray, sigma: Any, kernel_frac: float = 0.1) -> np.ndarray:
  """Separable Gaussian blur of [..., H, W, C] (sigma a float or one per image); the kernel is
  odd, about kernel_frac of the shorter side and at least 3 taps."""
  h, w = image.shape[-3:-1]
  size = max(3, int(round(kernel_frac * min(h, w))) | 1)
  kernel = gaussian_kernel(sigma, size)
  return _convolve_axis(_convolve_axis(image, kernel, -3), kernel, -2)


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
JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
# Images per batched op call: enough to amortise numpy's per-call cost, few enough that the
# temporaries stay in cache (32x32x3 rotation: 40 us an image at 32, 60-90 at 128).
CHUNK = 32


def _settings(spec: Mapping[str, Any]) -> dict[str, Any]:
  return {key: spec.get(key, default) for key, default in AUGMENT_DEFAULTS.items()}


def _jitter_ranges(s: Mapping[str, Any]) -> list[tuple[int, float, float]]:
  """(index into JITTER_OPS, low, high) of each colour-jitter component with non-zero strength:
  factors uniform in [1 - strength, 1 + strength] (floored at 0), the hue delta in
  [-hue, hue]."""
  ranges = [(0, max(0.0, 1 - s["brightness"]), 1 + s["brightness"]),
            (1, max(0.0, 1 - s["contrast"]), 1 + s["contrast"]),
            (2, max(0.0, 1 - s["saturation"]), 1 + s["saturation"]), (3, -s["hue"], s["hue"])]
  return [(op, low, high) for op, low, high in ranges if high > low]


def draw_view(image: np.ndarray, rng: np.random.Generator,
              spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The per-image half of `augment`: the random resized crop and every later random draw.

  Returns {"view": the crop resized to [size, size, C]} plus one fixed-shape entry per enabled
  op (its coin and parameters; NaN or False where the coin said no), so that the records of a
  batch stack and `finish_views` does the pixel work of the whole batch in a few numpy calls:
  at 32x32 a per-image call costs more in overhead than in arithmetic. An op with probability
  0 draws nothing and has no entry.
  """
  s = _settings(spec)
  view = random_resized_crop(image, rng, spec["size"], s["crop_scale"], s["crop_ratio"])
  drawn = {"view": view}
  if s["rotation_degrees"] > 0 and s["rotation_p"] > 0:
    degrees = s["rotation_degrees"]
    drawn["rotate"] = np.float64(rng.uniform(-degrees, degrees)
                                 if _coin(rng, s["rotation_p"]) else np.nan)
  if s["flip_p"] > 0:
    drawn["flip"] = np.bool_(_coin(rng, s["flip_p"]))
  ranges = _jitter_ranges(s)
  if s["jitter_p"] > 0 and ranges:
    ops, factors = np.full(len(ranges), -1, np.int8), np.zeros(len(ranges))
    if _coin(rng, s["jitter_p"]):  # The components in a random order, each with its factor.
      for slot, i in enumerate(rng.permutation(len(ranges))):
        op, low, high = ranges[i]
        ops[slot], factors[slot] = op, rng.uniform(low, high)
    drawn["jitter_op"], drawn["jitter_factor"] = ops, factors
  if s["grayscale_p"] > 0:
    drawn["grayscale"] = np.bool_(_coin(rng, s["grayscale_p"]))
  if s["blur_p"] > 0:
    drawn["blur_sigma"] = np.float64(rng.uniform(*s["blur_sigma"])
                                     if _coin(rng, s["blur_p"]) else np.nan)
  if s["solarize_p"] > 0:
    drawn["solarize"] = np.bool_(_coin(rng, s["solarize_p"]))
  if s["noise_p"] > 0:
    drawn["noise_on"] = np.bool_(_coin(rng, s["noise_p"]))
    drawn["noise"] = (rng.standard_normal(view.shape, dtype=np.float32) * np.float32(s["noise_std"])
                      if drawn["noise_on"] else np.zeros(view.shape, np.float32))
  return drawn


def finish_views(drawn: Mapping[str, np.ndarray], spec: Mapping[str, Any]) -> np.ndarray:
  """The batched half of `augment`: `draw_view` outputs stacked over a batch -> normalised
  views [B, size, size, C]. Applies, in order, rotation, flip, colour jitter (its components in
  each image's own order), grayscale, blur, solarize and noise to the images whose coin came
  up, each op once for all of them."""
  s = _settings(spec)
  out = np.array(drawn["view"], np.float32)  # A copy: the caller's batch is left as it was.

  def apply(mask: np.ndarray, op, *args) -> None:
    """out[i] = op(out[i], args[i]...) for the images i in `mask`, CHUNK images a call."""
    selected = np.flatnonzero(mask)
    for start in range(0, selected.size, CHUNK):
      idx = selected[start:start + CHUNK]
      out[idx] = op(out[idx], *(a[idx] for a in args))

  if "rotate" in drawn:
    apply(~np.isnan(drawn["rotate"]), rotate, drawn["rotate"])
  if "flip" in drawn:
    apply(drawn["flip"], lambda x: x[:, :, ::-1])
  if "jitter_op" in drawn:
    ops, factors = drawn["jitter_op"], drawn["jitter_factor"]
    for slot in range(ops.shape[1]):
      for op, fn in enumerate(JITTER_OPS):
        apply(ops[:, slot] == op, fn, factors[:, slot])
  if "grayscale" in drawn:
    apply(drawn["grayscale"], grayscale)
  if "blur_sigma" in drawn:
    apply(~np.isnan(drawn["blur_sigma"]), blur, drawn["blur_sigma"])
  if "solarize" in drawn:
    apply(drawn["solarize"], solarize)
  if "noise_on" in drawn:
    apply(drawn["noise_on"], lambda x, noise: np.clip(x + noise, 0.0, 1.0), drawn["noise"])
  return normalize(out, s["mean"], s["std"])


def augment(image: np.ndarray, rng: np.random.Generator, spec: Mapping[str, Any]) -> np.ndarray:
  """One random normalised view [size, size, C] of a float image, as configured by `spec`.

  `spec` is a dict or ConfigDict with a required `size`; other keys default to
  `AUGMENT_DEFAULTS` (SimCLR-style crop, flip and colour; rotation, blur, solarize and
  noise off). Ops with probability 0 are skipped without drawing from `rng`. The training
  pipeline runs the same two halves, `draw_view` per record and `finish_views` per batch.
  """
  drawn = draw_view(image, rng, spec)
  return finish_views({key: np.asarray(value)[None] for key, value in drawn.items()}, spec)[0]


def eval_view(image: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
  """Deterministic evaluation view: resize to spec size, then normalise."""
  mean = spec.get("mean", AUGMENT_DEFAULTS["mean"])
  std = spec.get("std", AUGMENT_DEFAULTS["std"])
  return normalize(resize(image, spec["size"]), mean, std)
