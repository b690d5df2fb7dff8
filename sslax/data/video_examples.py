"""Record -> example transforms of the video pretext tasks, and the data side they share.

Every transform is a grain RandomMap from a clip record (sslax.data.video) to float32 frames
`[n, size, size, C]` (normalised) plus what the loss needs; all randomness comes from the
per-record generator, so a batch is a pure function of (seed, step) like every other pipeline.
"""
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np

from sslax.data import image_ops, video, video_ops


def spatial_view(frames: np.ndarray, rng: np.random.Generator,
                 spec: Mapping[str, Any]) -> np.ndarray:
  """One crop box, jitter and flip for all `frames` (float [n, H, W, C]), normalised."""
  s = {key: spec.get(key, default) for key, default in video_ops.CLIP_DEFAULTS.items()}
  out = video_ops.spatiotemporal_crop(frames, rng, spec["size"], s["crop_scale"], s["crop_ratio"])
  out = video_ops.color_jitter(out, rng, s["brightness"], s["contrast"], s["saturation"],
                               s["hue"], s["jitter_p"])
  return image_ops.normalize(video_ops.flip(out, rng, s["flip_p"]), s["mean"], s["std"])


def order_tuple(num_frames: int, rng: np.random.Generator) -> tuple[list[int], int]:
  """Shuffle and Learn's tuples (Misra et al. 2016): frames a < b < c < d < e drawn from the
  clip; label 1: (b, c, d) or (d, c, b), label 0: (b, a, d) or (b, e, d) or their reverses,
  positives and negatives equally likely. Returns (3 frame indices, label)."""
  a, b, c, d, e = np.sort(rng.choice(num_frames, size=5, replace=False)).tolist()
  label = int(rng.uniform() < 0.5)
  frames = [b, c, d] if label else [b, (a, e)[int(rng.integers(2))], d]
  return (frames[::-1] if rng.uniform() < 0.5 else frames), label


class OrderTuples(grain.transforms.RandomMap):
  """clip -> {"frames": [3, size, size, C], "label": int32}: one order_tuple, one view."""

  def __init__(self, spec: Mapping[str, Any]):
    self.spec = dict(spec)

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    clip = video_ops.to_float(record["clip"])
    index, label = order_tuple(len(clip), rng)
    return {"frames": spatial_view(clip[index], rng, self.spec), "label": np.int32(label)}


class NearFrames(grain.transforms.RandomMap):
  """clip -> {"frames": [2, size, size, C]}: an anchor frame t and a positive t' with
  1 <= |t - t'| <= max_offset, each with its own spatial view (`independent_views`) or one."""

  def __init__(self, spec: Mapping[str, Any], max_offset: int, independent_views: bool = True):
    self.spec, self.max_offset, self.independent = dict(spec), max_offset, independent_views

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    clip = video_ops.to_float(record["clip"])
    t = int(rng.integers(len(clip)))
    offsets = [o for o in range(-self.max_offset, self.max_offset + 1)
               if o and 0 <= t + o < len(clip)]
    pair = clip[[t, t + int(rng.choice(offsets))]]
    if self.independent:
      return {"frames": np.concatenate([spatial_view(f[None], rng, self.spec) for f in pair])}
    return {"frames": spatial_view(pair, rng, self.spec)}


class FrameSequence(grain.transforms.RandomMap):
  """clip -> {"frames": [length, size, size, C]}: a frame-rate change (spec `strides`), a
  temporal crop of `length` frames and one spatial view for all of them."""

  def __init__(self, spec: Mapping[str, Any], length: int):
    self.spec, self.length = dict(spec), length

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    clip = video_ops.to_float(record["clip"])
    strides = self.spec.get("strides", video_ops.CLIP_DEFAULTS["strides"])
    clip = video_ops.temporal_crop(video_ops.frame_stride(clip, rng, strides, self.length), rng,
                                   self.length)
    return {"frames": spatial_view(clip, rng, self.spec)}


class VideoData:
  """The data side of a video method, which defines `transform()` (a RandomMap above):
  `data(split, workdir)` from config.data (see sslax.data.video.make_video_source).
  Evaluation (sslax.evals.video) recognises a video method by `video_eval`."""

  video_eval = True

  def data(self, split: str, workdir: str | None) -> tuple[Any, grain.transforms.RandomMap]:
    del workdir
    return video.make_video_source(self.config.data, split), self.transform()

  def synthetic_batch(self, n: int) -> dict[str, np.ndarray]:
    """A batch of `n` examples of the training shapes, from zero clips (no data read)."""
    data = self.config.data
    length = data.get("num_frames", 20) if data.get("source", "moving_mnist") == "moving_mnist" \
        else data.get("clip_len", 16)
    side = data.get("frame_size", 64)
    channels = 1 if data.get("source", "moving_mnist") == "moving_mnist" else 3
    record = {"clip": np.zeros((length, side, side, channels), np.uint8)}
    example = self.transform().random_map(record, np.random.default_rng(0))
    return {k: np.stack([v] * n) for k, v in example.items()}
