"""Evaluation data and metrics of the language methods, on articles pretraining never saw.

Pretext metrics (MLM/NSP accuracy, perplexity) are measured on examples drawn from the held-out
articles. The probe task is built from the same held-out articles: which article a sentence
comes from. Each article's sentences are split between probe-train and probe-test (every
`test_every`-th sentence is a test sentence), so the classes are fixed, neither side was seen in
pretraining, and a sentence's neighbours in its article are what the features have to relate it
to. The class prior (majority class) and a bag-of-tokens baseline come with it.

A labelled set of one's own replaces that task: `eval.probe_data = {"train": "a.tsv",
"test": "b.jsonl"}` (test optional), read by `read_labelled`.
"""
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sslax.data import tokenizer


def article_probe(docs: Sequence[Sequence[np.ndarray]], min_tokens: int = 8,
                  test_every: int = 5) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray],
                                                np.ndarray]:
  """(train sentences, labels, test sentences, labels): the label is the article's index.

  Sentences shorter than `min_tokens` (headings left over, list items) are dropped; an article
  with fewer than `test_every` such sentences is left out, so every class has test sentences.
  """
  train_x, train_y, test_x, test_y = [], [], [], []
  label = 0
  for doc in docs:
    sentences = [s for s in doc if len(s) >= min_tokens]
    if len(sentences) < test_every:
      continue
    for i, s in enumerate(sentences):
      (test_x if i % test_every == test_every - 1 else train_x).append(s)
      (test_y if i % test_every == test_every - 1 else train_y).append(label)
    label += 1
  if label < 2:
    raise ValueError(f"the held-out articles give {label} probe class(es); raise "
                     "data.heldout_fraction so that at least two articles are held out")
  return train_x, np.asarray(train_y, np.int32), test_x, np.asarray(test_y, np.int32)


def bag_of_tokens(sentences: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
  """[n, vocab_size] token counts of each sentence, L2-normalised: the features a probe gets
  without any model (the raw-pixel baseline of text)."""
  counts = np.zeros((len(sentences), vocab_size), np.float32)
  for i, s in enumerate(sentences):
    np.add.at(counts[i], np.asarray(s, np.int64), 1.0)
  return counts / np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12)


def read_labelled(path: str) -> tuple[list[str], list[str]]:
  """(texts, labels) of a .tsv file (`text<TAB>label` per line; a first line `text<TAB>label`
  is a header) or a .jsonl file (objects with "text" and "label"). Labels are read as strings,
  so 1 and "1" are one class. A malformed line is an error naming the file and line."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise FileNotFoundError(f"{file} not found: eval.probe_data needs a .tsv or .jsonl file of "
                            "(text, label) examples")
  suffix = file.suffix.lower()
  if suffix not in (".tsv", ".jsonl"):
    raise ValueError(f"{file}: use a .tsv (text<TAB>label) or .jsonl (text and label) file")
  texts, labels = [], []
  with file.open(encoding="utf-8") as lines:
    for number, line in enumerate(lines, start=1):
      line = line.rstrip("\n")
      if not line.strip():
        continue
      if suffix == ".tsv":
        text, sep, label = line.rpartition("\t")
        if number == 1 and (text, label) == ("text", "label"):
          continue
        ok = bool(sep and text.strip() and label.strip())
      else:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          record = None
        ok = isinstance(record, dict) and isinstance(record.get("text"), str) and \
            record.get("label") is not None
        text, label = (record["text"], record["label"]) if ok else ("", "")
      if not ok:
        raise ValueError(f"{file}:{number}: expected " + (
            "text<TAB>label" if suffix == ".tsv" else 'a JSON object with "text" and "label"'))
      texts.append(text)
      labels.append(str(label).strip())
  if not texts:
    raise ValueError(f"{file} holds no examples")
  return texts, labels


def labelled_probe(tok: Any, train_path: str, test_path: str | None = None,
                   test_every: int = 5) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray],
                                                 np.ndarray, list[str]]:
  """(train token ids, labels, test token ids, labels, class names) of a labelled set.

  Classes are the sorted label strings of the train file; a test label not among them is an
  error. Without a test file, every `test_every`-th example of each class is a test example.
  """
  texts, names = read_labelled(train_path)
  classes = sorted(set(names))
  if len(classes) < 2:
    raise ValueError(f"{train_path} has {len(classes)} class(es); a probe needs at least two")
  index = {c: i for i, c in enumerate(classes)}
  labels = np.asarray([index[n] for n in names], np.int32)
  if test_path:
    test_texts, test_names = read_labelled(test_path)
    unknown = sorted(set(test_names) - set(classes))
    if unknown:
      raise ValueError(f"{test_path} has labels the train file lacks: {unknown[:5]}")
    test_labels = np.asarray([index[n] for n in test_names], np.int32)
  else:
    seen = np.zeros(len(classes), np.int64)
    test_mask = np.zeros(len(labels), bool)
    for i, y in enumerate(labels):
      seen[y] += 1
      test_mask[i] = seen[y] % test_every == 0
    test_texts = [t for t, m in zip(texts, test_mask, strict=True) if m]
    texts = [t for t, m in zip(texts, test_mask, strict=True) if not m]
    test_labels, labels = labels[test_mask], labels[~test_mask]
  if not len(test_labels):
    raise ValueError(f"{train_path}: too few examples to hold out a test set; give a test file")
  encode = tokenizer.encode
  return encode(tok, texts), labels, encode(tok, test_texts), test_labels, classes
