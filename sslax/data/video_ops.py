"""Video augmentations: pure numpy functions of a clip and an explicit `np.random.Generator`.

Clips are float32 [T, H, W, C] in [0, 1] (`to_float`). Spatial ops draw their parameters once
per clip and apply them to every frame (the same crop box, jitter factors and flip), so motion
between frames is the only thing that changes along time, as video SSL recipes require
(Qian et al. 2021, CVRL: "temporally consistent" augmentation).
"""
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sslax.data import image_ops


def to_float(clip: np.ndarray) -> np.ndarray:
  """uint8 [T, H, W, C] -> float32 [T, H, W, C] in [0, 1]."""
  return np.asarray(clip, np.float32) / np.float32(255)


def frame_stride(clip: np.ndarray, rng: np.random.Generator,
                 strides: Sequence[int] = (1,), length: int | None = None) -> np.ndarray:
  """Every s-th frame (frame-rate change by 1/s), s drawn from `strides` among those that leave
  at least `length` frames (the smallest stride if none does)."""
  fits = [s for s in strides if length is None or (len(clip) - 1) // s + 1 >= length]
  stride = int(rng.choice(fits)) if fits else min(strides)
  return clip[::stride]


def temporal_crop(clip: np.ndarray, rng: np.random.Generator, length: int) -> np.ndarray:
  """`length` consecutive frames from a uniform start; an error if the clip is shorter."""
  if length > len(clip):
    raise ValueError(f"temporal_crop of {length} frames from a {len(clip)}-frame clip: lower "
                     "the clip length or the stride")
  start = int(rng.integers(0, len(clip) - length + 1))
  return clip[start:start + length]


def resize_clip(clip: np.ndarray, size: int) -> np.ndarray:
  """Every frame resized bilinearly to [size, size] -> [T, size, size, C]."""
  return np.stack([image_ops.resize(frame, size) for frame in clip])


def spatiotemporal_crop(clip: np.ndarray, rng: np.random.Generator, size: int,
                        scale: Sequence[float] = (0.3, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """One random box (image_ops.sample_crop_box) cut from every frame, resized to `size`."""
  top, left, h, w = image_ops.sample_crop_box(clip.shape[1], clip.shape[2], rng, scale, ratio)
  return resize_clip(clip[:, top:top + h, left:left + w], size)


def color_jitter_params(rng: np.random.Generator, brightness: float, contrast: float,
                        saturation: float, hue: float) -> tuple[float, float, float, float]:
  """(brightness, contrast, saturation factors, hue shift) drawn once for a whole clip."""
  return (float(rng.uniform(1 - brightness, 1 + brightness)),
          float(rng.uniform(1 - contrast, 1 + contrast)),
          float(rng.uniform(1 - saturation, 1 + saturation)), float(rng.uniform(-hue, hue)))


def apply_color_jitter(clip: np.ndarray, params: Sequence[float]) -> np.ndarray:
  """The same jitter on every frame; contrast blends with the CLIP's mean grey level, so a
  frame's result does not depend on what else is in that frame."""
  b, c, s, h = params
  clip = image_ops.adjust_brightness(clip, b)
  grey = np.float32(np.mean(clip if clip.shape[-1] == 1 else clip @ image_ops.LUMA))
  clip = np.clip(np.float32(c) * clip + (1 - np.float32(c)) * grey, 0.0, 1.0)
  if clip.shape[-1] == 3:  # Per-pixel ops: the frames go through as one batch.
    clip = image_ops.adjust_hue(image_ops.adjust_saturation(clip, s), h)
  return clip.astype(np.float32)


def color_jitter(clip: np.ndarray, rng: np.random.Generator, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 0.8) -> np.ndarray:
  """With probability p, one jitter (`color_jitter_params`) applied to every frame."""
  if p <= 0 or rng.uniform() >= p:
    return clip
  return apply_color_jitter(clip, color_jitter_params(rng, brightness, contrast, saturation, hue))


def flip(clip: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
  """Every frame mirrored left-right, or none, with probability p."""
  return clip[:, :, ::-1].copy() if p > 0 and rng.uniform() < p else clip


CLIP_DEFAULTS: dict[str, Any] = dict(
    strides=(1,), crop_scale=(0.3, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5, jitter_p=0.8,
    brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, mean=(0.5,), std=(0.5,))


def augment_clip(clip: np.ndarray, rng: np.random.Generator, spec: Mapping[str, Any],
                 length: int) -> np.ndarray:
  """A random normalised view [length, size, size, C] of a float clip: stride (frame rate),
  temporal crop, spatio-temporal crop, consistent colour jitter, flip; `spec` needs `size`,
  other keys default to CLIP_DEFAULTS."""
  s = {key: spec.get(key, default) for key, default in CLIP_DEFAULTS.items()}
  clip = temporal_crop(frame_stride(clip, rng, s["strides"], length), rng, length)
  clip = spatiotemporal_crop(clip, rng, spec["size"], s["crop_scale"], s["crop_ratio"])
  clip = color_jitter(clip, rng, s["brightness"], s["contrast"], s["saturation"], s["hue"],
                      s["jitter_p"])
  clip = flip(clip, rng, s["flip_p"])
  return image_ops.normalize(clip, s["mean"], s["std"])


def eval_clip(clip: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
  """Deterministic evaluation view: every frame resized to spec size, normalised."""
  s = {key: spec.get(key, CLIP_DEFAULTS[key]) for key in ("mean", "std")}
  return image_ops.normalize(resize_clip(clip, spec["size"]), s["mean"], s["std"])
