"""Interaction logs -> per-user item sequences -> a leave-one-out split -> training examples.

A log is rows of (user, item, time[, rating]) in a CSV/TSV file; columns are named (a header
line; RecBole's atomic headers such as `user_id:token` match by the part before the colon) or
given by index. Lines that do not parse (too few fields, a non-numeric time) are skipped,
counted and logged. The embedded default is MovieLens-100k (Harper and Konstan 2015) as the
`recbole` package ships it (`recbole/dataset_example/ml-100k/ml-100k.inter`), read from the
installed package by path: its licence allows research use and forbids redistribution, so it is
never copied here, and recbole itself (which needs torch) is never imported.

Each user's interactions are sorted by time (ties keep file order: a stable sort), item ids are
remapped to 1..N in order of first appearance after filtering (0 is padding, N + 1 the mask
token of the augmentations), and the split is leave-one-out as in SASRec (Kang and McAuley
2018): the last item is the test target, the second to last the validation target, the rest is
the training sequence. Users with fewer than 3 interactions keep them all for training.
"""
import csv
import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from absl import logging

from sslax.data import sequence_ops

ML100K_PATH = ("dataset_example", "ml-100k", "ml-100k.inter")


@dataclasses.dataclass
class Log:
  """Parsed rows, file order: users/items (original tokens), times (float), ratings or None."""
  users: list[str]
  items: list[str]
  times: np.ndarray
  ratings: np.ndarray | None
  skipped: int = 0


@dataclasses.dataclass
class Split:
  """Leave-one-out sequences, items 1..num_items; `valid`/`test` are 0 for train-only users."""
  train: list[np.ndarray]
  valid: np.ndarray
  test: np.ndarray
  num_items: int
  item_tokens: list[str]  # item id i (1-based) -> its token in the log: item_tokens[i - 1].
  report: str = ""


def movielens_100k_path() -> str:
  """The ml-100k atomic file of the installed recbole package (found, never imported)."""
  spec = importlib.util.find_spec("recbole")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("MovieLens-100k is read from the recbole package: "
                            "pip install --no-deps recbole")
  path = os.path.join(spec.submodule_search_locations[0], *ML100K_PATH)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: reinstall with pip install --no-deps recbole")
  return path


def _column(header: list[str] | None, key: str | int) -> int:
  """A column's index from its name (atomic `name:type` headers match `name`) or its index."""
  if isinstance(key, int):
    return key
  if header is None:
    raise ValueError(f"column {key!r} given by name but the file has no header: "
                     "set data.header=True or give column indices")
  names = [h.split(":", 1)[0].strip() for h in header]
  if key not in names:
    raise ValueError(f"column {key!r} not in the header {names}: set data.columns")
  return names.index(key)


def read_log(path: str, user: str | int = "user_id", item: str | int = "item_id",
             time: str | int = "timestamp", rating: str | int | None = None,
             delimiter: str | None = None, header: bool = True) -> Log:
  """Reads a CSV/TSV log (`delimiter` None: tab for .tsv/.inter files, else comma)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"interaction file {path} not found: set data.path")
  if delimiter is None:
    delimiter = "\t" if path.endswith((".tsv", ".inter")) else ","
  users, items, times, ratings, skipped = [], [], [], [], 0
  with open(path, newline="") as f:
    rows = csv.reader(f, delimiter=delimiter)
    names = next(rows, None) if header else None
    columns = [_column(names, key) for key in (user, item, time)]
    rating_column = None if rating is None else _column(names, rating)
    width = max(columns + [rating_column or 0]) + 1
    for row in rows:
      try:
        if len(row) < width or not row[columns[0]].strip() or not row[columns[1]].strip():
          raise ValueError(row)
        t = float(row[columns[2]])
        r = None if rating_column is None else float(row[rating_column])
      except ValueError:
        skipped += 1
        continue
      users.append(row[columns[0]].strip())
      items.append(row[columns[1]].strip())
      times.append(t)
      ratings.append(r)
  if skipped:
    logging.warning("%s: skipped %d malformed lines", path, skipped)
  if not users:
    raise ValueError(f"{path}: no parseable interactions ({skipped} malformed lines)")
  return Log(users, items, np.asarray(times, np.float64),
             None if rating is None else np.asarray(ratings, np.float32), skipped)


def _filter(log: Log, min_user: int, min_item: int) -> np.ndarray:
  """Rows kept after dropping users and items with too few interactions, repeated until stable
  (k-core filtering: dropping items can push users under the limit)."""
  keep = np.ones(len(log.users), bool)
  users, items = np.asarray(log.users), np.asarray(log.items)
  while True:
    before = keep.sum()
    for column, minimum in ((items, min_item), (users, min_user)):
      if minimum > 1:
        values, counts = np.unique(column[keep], return_counts=True)
        keep &= np.isin(column, values[counts >= minimum])
    if keep.sum() == before:
      return keep


def leave_one_out(log: Log, min_user: int = 1, min_item: int = 1) -> Split:
  """Per-user chronological sequences (stable ties), items remapped to 1..N, the last item of
  each user the test target and the second to last the validation target."""
  keep = _filter(log, min_user, min_item)
  rows = np.flatnonzero(keep)
  if not len(rows):
    raise ValueError(f"no interactions left after min_user={min_user}, min_item={min_item}")
  order = rows[np.argsort(log.times[rows], kind="stable")]
  item_ids: dict[str, int] = {}
  sequences: dict[str, list[int]] = {}
  for r in order:
    item = item_ids.setdefault(log.items[r], len(item_ids) + 1)
    sequences.setdefault(log.users[r], []).append(item)
  train, valid, test = [], [], []
  for seq in sequences.values():
    split = len(seq) >= 3
    train.append(np.asarray(seq[:-2] if split else seq, np.int32))
    valid.append(seq[-2] if split else 0)
    test.append(seq[-1] if split else 0)
  report = (f"{len(log.users)} rows, {log.skipped} malformed lines skipped, {len(rows)} kept "
            f"(min {min_user} a user, {min_item} an item): {len(sequences)} users, "
            f"{len(item_ids)} items")
  return Split(train, np.asarray(valid, np.int32), np.asarray(test, np.int32), len(item_ids),
               list(item_ids), report)


def load_split(data: Any) -> Split:
  """The split config.data describes: source "ml100k_embedded" or "file" (data.path,
  data.columns = dict(user, item, time[, rating]), data.delimiter, data.header), with
  data.min_user_interactions / data.min_item_interactions."""
  source = data.get("source", "ml100k_embedded")
  if source == "ml100k_embedded":
    log = read_log(movielens_100k_path(), "user_id", "item_id", "timestamp", "rating")
  elif source == "file":
    columns = dict(data.get("columns", {}))
    log = read_log(data.path, columns.get("user", "user_id"), columns.get("item", "item_id"),
                   columns.get("time", "timestamp"), columns.get("rating"),
                   data.get("delimiter") or None, bool(data.get("header", True)))
  else:
    raise ValueError(f"data.source={source!r}; use 'ml100k_embedded' or 'file' (data.path)")
  return leave_one_out(log, int(data.get("min_user_interactions", 1)),
                       int(data.get("min_item_interactions", 1)))


def left_pad(items: np.ndarray, length: int) -> np.ndarray:
  """The last `length` items, zeros (padding) in front: [length] int32."""
  items = np.asarray(items, np.int32)[-length:]
  return np.concatenate([np.zeros(length - len(items), np.int32), items])


class NextItemExample(grain.transforms.RandomMap):
  """{"items": [n] train sequence} -> {"input_ids": [L], "targets": [L]}: the last L + 1 items,
  left padded, each position's target the next item (0 at padding); with `augment` also
  "view_a" and "view_b" [L], two CL4SRec views of the input (sequence_ops.random_view)."""

  def __init__(self, max_len: int, mask_id: int, augment: dict[str, float] | None = None):
    self.max_len, self.mask_id, self.augment = max_len, mask_id, augment

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    window = np.asarray(record["items"], np.int32)[-(self.max_len + 1):]
    inputs = window[:-1]
    out = {"input_ids": left_pad(inputs, self.max_len),
           "targets": left_pad(window[1:], self.max_len)}
    if self.augment is not None:
      for key in ("view_a", "view_b"):
        view = sequence_ops.random_view(inputs, rng, self.mask_id, **self.augment)
        out[key] = left_pad(view, self.max_len)
    return out


def train_records(split: Split) -> Sequence[dict[str, np.ndarray]]:
  """One record per user with at least 2 training items (one input and its next item)."""
  return [{"items": seq} for seq in split.train if len(seq) >= 2]
