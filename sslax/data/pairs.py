"""Image-text pair sources for CLIP, their tokenizer, and the record -> example transform.

A pair source is a sequence of records `{"image": uint8 [H, W, C], "captions": tuple of str,
"label": int32}`: one image with one or more candidate captions (COCO has five an image; the
embedded digits have one per caption template), and a class label (-1 if unknown) that only
evaluation reads. Training draws one caption per example and epoch with the record's generator.
Sources:
- `mnist_embedded`: the embedded MNIST digits, each captioned from its label in every template
  of DIGIT_TEMPLATES, with the digit written as a word or a numeral ("a handwritten 7", "a photo
  of the digit seven").
- `folder`: images under `path` with a caption file beside each (`x.jpg` + `x.txt`, one caption
  a line); class subfolders give labels, as for image folders.
- `pairs_file`: a JSONL (`{"image": path, "caption": str or [str], "label": name}`) or TSV
  (`path<TAB>caption[<TAB>label]`) file; relative paths are relative to the file.
- `tfds`: a prepared array_record TFDS dataset with an image and a text feature.
Corrupt or missing images, missing and empty captions and malformed lines are dropped when the
source is built, counted in `report` and logged; an image that fails to decode later is skipped
at read time (the next readable pair is returned) and logged.
"""
import functools
import io
import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np
import tokenizers
from absl import logging
from PIL import Image

from sslax.data import image_ops, sources, text_corpus, text_ops, tokenizer

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Caption templates of the embedded digits; "{}" is the digit as a word or a numeral.
DIGIT_TEMPLATES = ("a photo of the digit {}.", "a handwritten {}.", "the number {}.",
                   "an image of a {}.", "a {} written by hand.",
                   "a black and white picture of the digit {}.", "a blurry {}.")
# Zero-shot prompts of the digits: phrasings the captions never use, from the same words.
DIGIT_PROMPTS = ("a photo of the number {}.", "a picture of a handwritten {}.",
                 "the digit {} written by hand.")
# Zero-shot prompts for other data: a few of CLIP's ImageNet prompt ensemble (Radford et al.
# 2021, which averages 80 such templates).
GENERIC_PROMPTS = ("a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.",
                   "a photo of the small {}.", "a cropped photo of a {}.", "art of the {}.")


# What the image sources catch when PIL fails on a file, and how they decode one.
_DECODE_ERRORS = sources._DECODE_ERRORS


def _pair(image: np.ndarray, captions: Sequence[str], label: Any) -> dict[str, Any]:
  image = np.asarray(image, np.uint8)
  return {"image": image[..., None] if image.ndim == 2 else image,
          "captions": tuple(captions), "label": np.int32(label)}


class MnistCaptions:
  """The embedded digits of `split` ("train": 4,000, "test": 1,000), each captioned in every
  template x {word, numeral} of its label."""

  def __init__(self, split: str, templates: Sequence[str] = DIGIT_TEMPLATES):
    self.images = sources.mnist_embedded()[split]
    self.templates = tuple(templates)
    self.class_names = DIGIT_NAMES
    self.default_prompts = DIGIT_PROMPTS
    self.report = {"pairs": len(self.images)}

  def captions(self, label: int) -> tuple[str, ...]:
    return tuple(t.format(name) for t in self.templates
                 for name in (DIGIT_NAMES[label], str(label)))

  def texts(self) -> list[str]:
    """Every candidate caption of every record (the tokenizer's training text)."""
    return [c for label in self.images.labels for c in self.captions(int(label))]

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self.images[index]
    return _pair(record["image"], self.captions(int(record["label"])), record["label"])


def _readable(path: pathlib.Path) -> bool:
  """Whether PIL can open and verify the image at `path` (logged when not)."""
  try:
    with Image.open(path) as image:
      image.verify()
  except _DECODE_ERRORS as e:
    logging.warning("Dropping corrupt image %s: %s", path, e)
    return False
  return True


class _FilePairs:
  """Pairs of image files and captions, checked once; decoded on read, skipping bad files."""

  report: dict[str, int]

  def _keep(self, path: pathlib.Path, captions: Sequence[str], label: int, verify: bool) -> None:
    captions = [c.strip() for c in captions if c.strip()]
    if not path.is_file():
      logging.warning("Dropping pair: image %s does not exist", path)
      self.report["missing_image"] += 1
    elif not captions:
      logging.warning("Dropping pair: the caption of %s is empty", path)
      self.report["empty_caption"] += 1
    elif verify and not _readable(path):
      self.report["corrupt_image"] += 1
    else:
      self.paths.append(str(path))
      self.all_captions.append(tuple(captions))
      self.labels.append(label)

  def _finish(self, where: Any) -> None:
    self.report["kept"] = len(self.paths)
    logging.info("Image-text pairs %s: %s", where,
                 ", ".join(f"{k}={v}" for k, v in self.report.items()))
    if not self.paths:
      raise ValueError(f"No usable image-text pairs in {where} ({self.report}): check the "
                       "image paths and captions.")

  def texts(self) -> list[str]:
    return [c for captions in self.all_captions for c in captions]

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> dict[str, Any]:
    n = len(self.paths)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} pairs")
    for offset in range(n):
      i = (index + offset) % n
      try:
        image = sources._decode(self.paths[i], self.channels)
      except _DECODE_ERRORS as e:
        logging.warning("Skipping unreadable image %s (%s); returning the next pair.",
                        self.paths[i], e)
        continue
      return _pair(image, self.all_captions[i], self.labels[i])
    raise RuntimeError(f"None of the {n} images of these pairs can be decoded any more.")


def _label_ids(names: Sequence[str], classes: Sequence[str] | None) -> tuple[tuple, list[int]]:
  """(class names, int label per name): `classes` given (a held-out split uses the training
  split's), else the sorted names seen; "" and names outside `classes` are -1."""
  classes = tuple(classes) if classes is not None else tuple(sorted(set(names) - {""}))
  index = {name: i for i, name in enumerate(classes)}
  return classes, [index.get(name, sources.UNLABELLED) for name in names]


class FolderPairs(_FilePairs):
  """PNG/JPEG images under `root` (recursively) with a caption file beside each (`x.jpg` and
  `x.txt`, every non-empty line a caption). If every first-level entry is a folder, the folder
  names are the classes (or `classes`, given for a held-out split)."""

  def __init__(self, root: str | os.PathLike, channels: int = 3, verify: bool = True,
               classes: Sequence[str] | None = None):
    root = pathlib.Path(root)
    if not root.is_dir():
      raise FileNotFoundError(f"Pair folder {root} does not exist: point data.path at a folder "
                              "of images with a caption .txt beside each.")
    self.channels = channels
    found, candidates = sources._list_images(root)
    self.class_names, labels = _label_ids(
        [found[label] if label >= 0 else "" for _, label in candidates], classes or found or None)
    self.default_prompts = GENERIC_PROMPTS
    self.report = {"found": len(candidates), "missing_caption": 0, "empty_caption": 0,
                   "missing_image": 0, "corrupt_image": 0}
    self.paths, self.all_captions, self.labels = [], [], []
    for (path, _), label in zip(candidates, labels, strict=True):
      caption_file = path.with_suffix(".txt")
      if not caption_file.is_file():
        logging.warning("Dropping image %s: no caption file %s", path, caption_file.name)
        self.report["missing_caption"] += 1
        continue
      text = caption_file.read_text(encoding="utf-8", errors="replace")
      self._keep(path, text.splitlines(), label, verify)
    self._finish(root)


def _parse_line(line: str, suffix: str, keys: Mapping[str, str]) -> tuple[str, list[str], str]:
  """(image path, captions, label name) of one JSONL/TSV line; ValueError if malformed."""
  if suffix == ".jsonl":
    row = json.loads(line)
    if not isinstance(row, dict) or not isinstance(row.get(keys["image"]), str):
      raise ValueError("not an object with a string image path")
    captions = row.get(keys["caption"], "")
    captions = [captions] if isinstance(captions, str) else captions
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
      raise ValueError("the caption is neither a string nor a list of strings")
    return row[keys["image"]], captions, str(row.get(keys["label"], ""))
  fields = line.rstrip("\n").split("\t")
  if len(fields) not in (2, 3):
    raise ValueError(f"{len(fields)} tab-separated fields, expected path, caption[, label]")
  return fields[0], [fields[1]], fields[2] if len(fields) == 3 else ""


class FilePairs(_FilePairs):
  """Pairs listed in a .jsonl or .tsv file (see the module docstring). A TSV header line
  (first field "image" or "path") is skipped; malformed lines are counted and logged."""

  def __init__(self, path: str | os.PathLike, channels: int = 3, verify: bool = True,
               classes: Sequence[str] | None = None, image_key: str = "image",
               caption_key: str = "caption", label_key: str = "label"):
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".tsv"):
      raise ValueError(f"data.path={str(path)!r} must be a .jsonl or .tsv file of image-text "
                       "pairs (or use data.source='folder').")
    if not path.is_file():
      raise FileNotFoundError(f"Pair file {path} does not exist: fix data.path.")
    self.channels = channels
    self.default_prompts = GENERIC_PROMPTS
    self.report = {"lines": 0, "malformed": 0, "empty_caption": 0, "missing_image": 0,
                   "corrupt_image": 0}
    keys = {"image": image_key, "caption": caption_key, "label": label_key}
    rows = []
    with path.open(encoding="utf-8", errors="replace") as lines:
      for number, line in enumerate(lines, start=1):
        if not line.strip() or (suffix == ".tsv" and number == 1
                                and line.split("\t")[0].strip().lower() in ("image", "path")):
          continue
        self.report["lines"] += 1
        try:
          rows.append(_parse_line(line, suffix, keys))
        except ValueError as e:  # json.JSONDecodeError is a ValueError.
          logging.warning("Skipping malformed line %d of %s: %s", number, path, e)
          self.report["malformed"] += 1
    self.class_names, labels = _label_ids([label for _, _, label in rows], classes)
    self.paths, self.all_captions, self.labels = [], [], []
    for (image, captions, _), label in zip(rows, labels, strict=True):
      self._keep(path.parent / image, captions, label, verify)
    self._finish(path)


def _text(value: Any) -> list[str]:
  """A TFDS text feature (bytes, str, or a sequence of them) as a list of str."""
  if isinstance(value, bytes | str):
    value = [value]
  return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
          for v in value]


class TfdsPairs:
  """A prepared array_record TFDS split with an image feature `image_key` and a text feature
  `text_key` (a string or a sequence of strings, e.g. COCO's five captions); `label_key`, if a
  ClassLabel feature, gives labels and class names. Images are read undecoded and decoded with
  PIL, so a corrupt one is skipped like a corrupt file; empty captions are dropped up front."""

  def __init__(self, name: str, split: str, data_dir: str | None = None,
               image_key: str = "image", text_key: str = "caption", label_key: str = "label",
               channels: int = 3):
    import tensorflow_datasets as tfds  # Imported here: it takes about a second.

    self.name, self.split, self.channels = name, split, channels
    sources.open_tfds(name, split, data_dir, image_key)  # The checks and one-line errors.
    builder = tfds.builder(name, data_dir=data_dir)
    if text_key not in builder.info.features:
      raise ValueError(f"TFDS dataset {name!r} has no text feature {text_key!r}: set "
                       f"data.text_key to one of {sorted(builder.info.features)}.")
    self.image_key, self.text_key, self.label_key = image_key, text_key, label_key
    self._source = builder.as_data_source(split=split,
                                          decoders={image_key: tfds.decode.SkipDecoding()})
    features = builder.info.features
    label = features[label_key] if label_key in features else None
    self.class_names = tuple(label.names) if hasattr(label, "names") else ()
    self.default_prompts = GENERIC_PROMPTS
    self.indices, self.all_captions, empty = [], [], 0
    for i in range(len(self._source)):
      captions = [c.strip() for c in _text(self._source[i][text_key]) if c.strip()]
      if captions:
        self.indices.append(i)
        self.all_captions.append(tuple(captions))
      else:
        empty += 1
    if empty:
      logging.warning("Dropped %d pairs of %s/%s with an empty caption", empty, name, split)
    self.report = {"pairs": len(self._source), "empty_caption": empty, "kept": len(self.indices)}
    if not self.indices:
      raise ValueError(f"TFDS dataset {name!r} split {split!r} has no non-empty "
                       f"{text_key!r} captions.")

  def texts(self) -> list[str]:
    return [c for captions in self.all_captions for c in captions]

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, Any]:
    n = len(self.indices)
    for offset in range(n):
      i = (index + offset) % n
      example = self._source[self.indices[i]]
      try:
        with Image.open(io.BytesIO(example[self.image_key])) as image:
          array = np.asarray(image.convert(sources._PIL_MODES[self.channels]))
      except _DECODE_ERRORS as e:
        logging.warning("Skipping unreadable image %d of %s/%s (%s)", self.indices[i],
                        self.name, self.split, e)
        continue
      return _pair(array, self.all_captions[i], example.get(self.label_key, sources.UNLABELLED))
    raise RuntimeError(f"None of the {n} images of {self.name}/{self.split} can be decoded.")


def make_pair_source(cfg: Mapping[str, Any], split: str,
                     classes: Sequence[str] | None = None) -> Any:
  """The pairs of `split` ("pretrain" or "heldout") from a data config.

  `cfg.source`: "mnist_embedded" (pretrain: the 4,000 train digits, heldout: the 1,000 test
  digits; optional `caption_templates`), "folder" or "pairs_file" (`cfg.path`, held out
  `cfg.heldout_path`; optional `channels`, `verify_images`, and for files `image_key`,
  `caption_key`, `label_key`) or "tfds" (`cfg.name`, `cfg.split` / `cfg.heldout_split`,
  optional `data_dir`, `image_key`, `text_key`, `label_key`). `classes`: the class names a
  held-out split maps its labels to (the training split's).
  """
  kind = cfg.get("source")
  if split not in ("pretrain", "heldout"):
    raise ValueError(f"pair split {split!r}: use 'pretrain' or 'heldout'")
  heldout = split == "heldout"
  if kind == "mnist_embedded":
    return MnistCaptions("test" if heldout else "train",
                         cfg.get("caption_templates") or DIGIT_TEMPLATES)
  channels = int(cfg.get("channels", 3))
  if kind in ("folder", "pairs_file"):
    field = "heldout_path" if heldout else "path"
    path = sources._required(cfg, field)
    verify = bool(cfg.get("verify_images", True))
    if kind == "folder":
      return FolderPairs(path, channels, verify, classes)
    return FilePairs(path, channels, verify, classes,
                     **{k: cfg[k] for k in ("image_key", "caption_key", "label_key") if k in cfg})
  if kind == "tfds":
    split_name = cfg.get("heldout_split", "test") if heldout else cfg.get("split", "train")
    return TfdsPairs(sources._required(cfg, "name"), split_name, cfg.get("data_dir"),
                     channels=channels,
                     **{k: cfg[k] for k in ("image_key", "text_key", "label_key") if k in cfg})
  raise ValueError(f"Unknown pair source {kind!r}: set data.source to one of 'mnist_embedded', "
                   "'folder', 'pairs_file', 'tfds'.")


def caption_tokenizer(cfg: Mapping[str, Any], pretrain: Any, workdir: str) -> tokenizers.Tokenizer:
  """`cfg.tokenizer` if given, else the WordPiece tokenizer of `cfg.vocab_size` tokens trained
  on the training captions into `workdir` (reused by resumed runs and evaluation)."""
  path = cfg.get("tokenizer") or os.path.join(workdir, text_corpus.TOKENIZER_FILE)
  if cfg.get("tokenizer") or os.path.exists(path):  # A given file that is missing raises.
    return tokenizer.load_tokenizer(path)
  return text_corpus._train_once(pretrain.texts(), "wordpiece", cfg["vocab_size"], path)


def tokenize_captions(tok: tokenizers.Tokenizer, captions: Sequence[str],
                      seq_len: int) -> dict[str, np.ndarray]:
  """{"input_ids", "attention_mask"}: int32 [n, seq_len], `[CLS] caption [SEP]` cut to fit and
  padded; the last real token is always [SEP] (the EOS a CLIP text tower may pool)."""
  ids = [[tokenizer.CLS_ID, *t[:seq_len - 2], tokenizer.SEP_ID]
         for t in tokenizer.encode(tok, captions)]
  input_ids, mask = text_ops.pad_batch(ids, seq_len)
  return {"input_ids": input_ids, "attention_mask": mask}


class ClipExample(grain.transforms.RandomMap):
  """A pair record -> {"image": an augmented view, "input_ids", "attention_mask": [seq_len]}:
  one of the record's captions drawn with the record's generator (anew each epoch)."""

  def __init__(self, augment: Mapping[str, Any], tok: tokenizers.Tokenizer, seq_len: int):
    self.augment, self.tok, self.seq_len = dict(augment), tok, seq_len

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    caption = record["captions"][rng.integers(len(record["captions"]))]
    tokens = tokenize_captions(self.tok, [caption], self.seq_len)
    image = image_ops.augment(image_ops.to_float(record["image"]), rng, self.augment)
    return {"image": image, **{k: v[0] for k, v in tokens.items()}}


def spread_indices(total: int, count: int) -> np.ndarray:
  """min(count, total) indices evenly spread over range(total) (index i * total // count):
  sources sorted by class (the embedded digits) still give every class."""
  if count >= total:
    return np.arange(total)
  return np.arange(count) * total // count


def eval_pairs(source: Any, spec: Mapping[str, Any], count: int, seed: int
               ) -> tuple[np.ndarray, list[str], np.ndarray]:
  """(evaluation views [n, ...], one caption each, labels [n]) of `count` pairs spread over
  the source; the caption is drawn with a generator seeded by (seed, index), fixed for a run."""
  images, captions, labels = [], [], []
  for i in spread_indices(len(source), count):
    i = int(i)
    record = source[i]
    rng = np.random.default_rng([seed, i])
    captions.append(record["captions"][rng.integers(len(record["captions"]))])
    images.append(image_ops.eval_view(image_ops.to_float(record["image"]), spec))
    labels.append(int(record["label"]))
  return np.stack(images), captions, np.asarray(labels, np.int32)


@functools.lru_cache(maxsize=8)
def cached_pair_source(cfg_json: str, split: str, classes: tuple[str, ...] | None) -> Any:
  """make_pair_source of a JSON-encoded config, built once per process (a folder or file source
  checks every image, and training and evaluation each ask for the splits more than once)."""
  return make_pair_source(json.loads(cfg_json), split, classes)
