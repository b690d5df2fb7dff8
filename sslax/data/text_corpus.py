"""From a text data config to tokenised documents and the Grain transforms of BERT and GPT.

`prepare` reads the configured documents, cleans them (every drop counted in `report`), holds
out whole articles, and trains the tokenizer on the training articles only, saved in the workdir
so that a resumed run and the evaluation reuse exactly the same vocabulary (a tokenizer file
given as `data.tokenizer` is used as is). Records are tiny dicts of indices into the tokenised
corpus, which the transforms hold: a record is one draw of an example, and an example is drawn
anew (sentence pair, mask) every time a record is seen.
"""
import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
import tokenizers
from absl import logging
from jax.experimental import multihost_utils

from sslax.data import sources, text, text_ops, tokenizer

TOKENIZER_FILE = "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Tokenised documents: each a list of sentences, each an int32 array of token ids."""
  train: list[list[np.ndarray]]
  heldout: list[list[np.ndarray]]
  tokenizer: tokenizers.Tokenizer
  report: dict[str, int]


def _tfds_documents(cfg: Mapping[str, Any]) -> list[text.Document]:
  """Every example of a prepared array_record TFDS split as a document (`cfg.name`, optional
  `data_dir`, `split` (default "train"), `text_key` ("text"), `title_key` ("title", if any))."""
  if not cfg.get("name"):
    raise ValueError("data.source='tfds' needs data.name: a TFDS dataset prepared as array_record")
  text_key, title_key = cfg.get("text_key", "text"), cfg.get("title_key", "title")
  source = sources.open_tfds(cfg["name"], cfg.get("split", "train"), cfg.get("data_dir"),
                             text_key)
  docs = []
  for i in range(len(source)):
    example = source[i]
    value = example[text_key]
    title = example.get(title_key, b"")
    docs.append({"id": f"{cfg['name']}:{i}",
                 "title": title.decode("utf-8") if isinstance(title, bytes) else str(title),
                 "text": value.decode("utf-8") if isinstance(value, bytes) else str(value)})
  return docs


def load_documents(cfg: Mapping[str, Any]) -> list[text.Document]:
  """`cfg.source`: "wikipedia_embedded" (gensim's sample), "text_files" (`cfg.path`: a .txt or
  .jsonl file, or a folder of them) or "tfds" (see _tfds_documents)."""
  kind = cfg.get("source")
  if kind == "wikipedia_embedded":
    return text.wikipedia_sample()
  if kind == "text_files":
    if not cfg.get("path"):
      raise ValueError("data.source='text_files' needs data.path: a .txt/.jsonl file or folder")
    return text.read_text_files(cfg["path"])
  if kind == "tfds":
    return _tfds_documents(cfg)
  raise ValueError(f"unknown text data source {kind!r}: use 'wikipedia_embedded', 'text_files' "
                   "or 'tfds'")


def _sentences(tok: tokenizers.Tokenizer, docs: Sequence[text.Document]) -> list[list[np.ndarray]]:
  """Each document as its non-empty tokenised sentences."""
  out = []
  for doc in docs:
    ids = tokenizer.encode(tok, text.split_sentences(doc["text"]))
    out.append([s for s in ids if len(s)])
  return out


def prepare(cfg: Mapping[str, Any], workdir: str, kind: str, seed: int) -> Corpus:
  """Documents -> cleaned -> held-out split by article -> tokenizer -> tokenised sentences.

  `kind` is the tokenizer ("wordpiece" for BERT, "bpe" for GPT); `cfg.vocab_size`,
  `cfg.heldout_fraction` and `cfg.min_chars` size it. Computed once per process for the same
  arguments: evaluation asks for the training and the held-out records and the probe sentences,
  and each would otherwise clean and tokenise the whole corpus again.
  """
  return _prepare(json.dumps(dict(cfg), sort_keys=True, default=str), os.path.abspath(workdir),
                  kind, seed)


@functools.lru_cache(maxsize=4)
def _cleaned(cfg_json: str) -> tuple[list[text.Document], dict[str, int]]:
  """The cleaned documents of a data config, once per process (a run and its evaluation, or
  several runs on one corpus, share them; callers only read them)."""
  cfg = json.loads(cfg_json)
  return text.clean_documents(load_documents(cfg), min_chars=cfg.get("min_chars", 200))


@functools.lru_cache(maxsize=4)
def _prepare(cfg_json: str, workdir: str, kind: str, seed: int) -> Corpus:
  cfg = json.loads(cfg_json)
  docs, counts = _cleaned(cfg_json)
  train_docs, heldout_docs = text.split_documents(docs, cfg.get("heldout_fraction", 0.1), seed)
  path = cfg.get("tokenizer") or os.path.join(workdir, TOKENIZER_FILE)
  if cfg.get("tokenizer") or os.path.exists(path):  # A given file that is missing raises.
    tok = tokenizer.load_tokenizer(path)
  else:
    tok = _train_once([d["text"] for d in train_docs], kind, cfg["vocab_size"], path)
  report = {**counts, "train_articles": len(train_docs), "heldout_articles": len(heldout_docs)}
  return Corpus(_sentences(tok, train_docs), _sentences(tok, heldout_docs), tok, report)


def _train_once(texts: list[str], kind: str, vocab_size: int, path: str) -> Any:
  """Process 0 trains the tokenizer and writes it (atomically); in a multi-host run the other
  processes wait for it and read the file, so every host tokenises with the same vocabulary
  (the workdir is shared, as checkpoints need)."""
  if jax.process_index() == 0:
    tok = tokenizer.train_tokenizer(texts, kind, vocab_size)
    tokenizer.save_tokenizer(tok, path)
    logging.info("trained a %s tokenizer of %d tokens into %s", kind, tok.get_vocab_size(), path)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"sslax tokenizer {path}")
  return tok if jax.process_index() == 0 else tokenizer.load_tokenizer(path)


class RecordList(list):
  """A list of records that also carries the cleaning report the train loop prints."""

  def __init__(self, records: Any = (), report: dict[str, int] | None = None):
    super().__init__(records)
    self.report = report or {}


def nsp_records(docs: Sequence[Sequence[np.ndarray]], max_len: int) -> RecordList:
  """One record per `max_len` tokens of each document (at least one), so that long articles
  are drawn as often as the examples they hold, as BERT's data generation does."""
  records = RecordList()
  for i, doc in enumerate(docs):
    tokens = sum(len(s) for s in doc)
    records.extend({"doc": np.int32(i)} for _ in range(max(1, tokens // max_len)))
  return records


class MlmNspExample(grain.transforms.RandomMap):
  """{"doc": i} -> a BERT example: a sentence pair from document i (NSP) with dynamic masking."""

  def __init__(self, docs: Sequence[Sequence[np.ndarray]], max_len: int, vocab_size: int,
               mask_prob: float, max_predictions: int | None = None):
    self.docs, self.max_len = docs, max_len
    self.vocab_size, self.mask_prob = vocab_size, mask_prob
    self.max_predictions = max_predictions

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    pair = text_ops.nsp_example(self.docs, int(record["doc"]), rng, self.max_len)
    inputs, labels = text_ops.mask_tokens(pair["input_ids"], rng, self.vocab_size, self.mask_prob,
                                          max_predictions=self.max_predictions)
    return {"input_ids": inputs, "token_type_ids": pair["token_type_ids"],
            "attention_mask": pair["attention_mask"], "mlm_labels": labels,
            "next_sentence_label": pair["next_sentence_label"]}


def packed_records(docs: Sequence[Sequence[np.ndarray]], seq_len: int) -> RecordList:
  """GPT's records: the documents joined by [SEP] and cut into chunks of seq_len + 1 tokens."""
  joined = [np.concatenate(doc) if doc else np.zeros(0, np.int32) for doc in docs]
  chunks = text_ops.pack_sequences(joined, seq_len)
  if not len(chunks):
    raise ValueError(f"the corpus holds fewer than {seq_len + 1} tokens: lower data.seq_len")
  return RecordList({"tokens": chunk} for chunk in chunks)


class NextTokenExample(grain.transforms.RandomMap):
  """{"tokens": [L + 1]} -> inputs [L] and next-token targets [L]; nothing random (the packing
  is fixed), a RandomMap only so that the pipeline treats every method alike."""

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    del rng
    tokens = np.asarray(record["tokens"], np.int32)
    return {"input_ids": tokens[:-1], "targets": tokens[1:]}
