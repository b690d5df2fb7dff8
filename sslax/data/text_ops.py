"""Text ops for language pretraining as pure numpy functions: BERT masking and NSP, GPT packing.

Token ids are int32 arrays from `sslax.data.tokenizer`, whose special tokens have the fixed ids
0..4 ([PAD] [UNK] [CLS] [SEP] [MASK]), so "special" below means an id below `NUM_SPECIAL`.
Random ops take an explicit `np.random.Generator`; the pipeline seeds one per record and epoch,
so masks and NSP pairs are drawn anew every time a record is seen (RoBERTa's dynamic masking)
and yet any batch can be rebuilt from (seed, step). Inputs are never mutated.
"""
from collections.abc import Sequence

import numpy as np

from sslax.data.tokenizer import CLS_ID, MASK_ID, NUM_SPECIAL, PAD_ID, SEP_ID

IGNORE_ID = -1  # Label of positions the masked-LM loss skips.


def pad_to(ids: np.ndarray, length: int, pad_id: int = PAD_ID) -> np.ndarray:
  """int32 [length]: `ids` followed by `pad_id`; a longer input is an error, not truncated."""
  ids = np.asarray(ids, np.int32)
  if len(ids) > length:
    raise ValueError(f"{len(ids)} tokens do not fit in length {length}")
  out = np.full(length, pad_id, np.int32)
  out[:len(ids)] = ids
  return out


def pad_batch(sequences: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
  """(ids [n, length] int32, attention_mask [n, length] int32): each sequence cut to `length`
  and padded with PAD_ID; the mask is 1 at real tokens."""
  ids = np.stack([pad_to(np.asarray(s)[:length], length) for s in sequences])
  return ids, (ids != PAD_ID).astype(np.int32)


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, vocab_size: int,
                mask_prob: float = 0.15, mask_id: int = MASK_ID, num_special: int = NUM_SPECIAL,
                mask_frac: float = 0.8, random_frac: float = 0.1,
                max_predictions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """BERT's masked-LM corruption of one sequence [L]: (inputs [L], labels [L]), both int32.

  Each token with id >= num_special (so never padding, [CLS], [SEP] or [UNK]) is selected with
  probability `mask_prob`, independently (a Bernoulli draw per token, as in Hugging Face's MLM
  collator; BERT's original script and fairseq instead select a fixed count of about
  mask_prob * L). A sequence may get no selected token: the MLM loss is a mean over the
  selected tokens of the whole batch (sslax.losses.token_cross_entropy), so that costs nothing,
  and forcing one would over-mask short sequences. A selected token becomes `mask_id` with
  probability mask_frac, a token uniform over the non-special ids [num_special, vocab_size) with
  probability random_frac (possibly the original itself), and stays unchanged otherwise. Labels
  hold the original id where selected and IGNORE_ID elsewhere. `max_predictions` caps the
  selected tokens (a uniform subset is kept, as BERT's max_predictions_per_seq does), so that
  the loss can gather a fixed number of positions per sequence (sslax.methods.mlm).
  """
  ids = np.asarray(ids, np.int32)
  if ids.ndim != 1:
    raise ValueError(f"mask_tokens takes one sequence [L], got shape {ids.shape}")
  maskable = ids >= num_special
  selected = maskable & (rng.random(ids.shape) < mask_prob)
  chosen = np.flatnonzero(selected)
  if max_predictions is not None and len(chosen) > max_predictions:
    selected[rng.choice(chosen, len(chosen) - max_predictions, replace=False)] = False
  action = rng.random(ids.shape)
  to_mask = selected & (action < mask_frac)
  to_random = selected & (action >= mask_frac) & (action < mask_frac + random_frac)
  inputs = np.where(to_mask, np.int32(mask_id), ids)
  inputs[to_random] = rng.integers(num_special, vocab_size, size=int(to_random.sum()))
  labels = np.where(selected, ids, np.int32(IGNORE_ID))
  return inputs, labels


def _sentences_until(doc: Sequence[np.ndarray], start: int, target: int, stop: int) -> int:
  """End (exclusive) of the run of sentences from `start` that first reaches `target` tokens.

  The run holds at least one sentence and never goes past `stop`.
  """
  end, total = start + 1, len(doc[start])
  while end < stop and total < target:
    total += len(doc[end])
    end += 1
  return end


def nsp_example(docs: Sequence[Sequence[np.ndarray]], doc_index: int, rng: np.random.Generator,
                max_len: int) -> dict[str, np.ndarray]:
  """One next-sentence-prediction pair `[CLS] A [SEP] B [SEP]` from document `doc_index`.

  Documents are lists of tokenised sentences (int arrays without special tokens). Segment A is
  the consecutive sentences from a random start until it holds about half of the max_len - 3
  token budget, always leaving a following sentence. With probability 0.5, B is the sentences
  that really follow (next_sentence_label 1); otherwise it is a run of sentences from a random
  start in another, uniformly chosen document (label 0). A document of one sentence always
  gets label 0. B runs until the pair fills the budget; then the longer segment (B on ties)
  loses tokens from its end until the pair fits, as in BERT. Returns int32 `input_ids`,
  `token_type_ids` (0 for [CLS] A [SEP] and padding, 1 for B [SEP]) and `attention_mask`
  (1 on real tokens), all [max_len], and the scalar `next_sentence_label`.
  """
  if len(docs) < 2:
    raise ValueError("next-sentence prediction needs at least two documents (label 0 pairs "
                     f"take B from another document); got {len(docs)}")
  if max_len < 5:
    raise ValueError(f"max_len={max_len} leaves no room for [CLS] A [SEP] B [SEP]")
  doc = docs[doc_index]
  if not doc:
    raise ValueError(f"document {doc_index} has no sentences")
  budget = max_len - 3
  start = int(rng.integers(len(doc) - 1)) if len(doc) > 1 else 0
  a_end = _sentences_until(doc, start, budget // 2, stop=max(len(doc) - 1, 1))
  a = np.concatenate(doc[start:a_end])
  is_next = len(doc) > 1 and rng.random() < 0.5
  if is_next:
    b_doc, b_start = doc, a_end
  else:
    other = int(rng.integers(len(docs) - 1))
    other += other >= doc_index
    b_doc = docs[other]
    if not b_doc:
      raise ValueError(f"document {other} has no sentences")
    b_start = int(rng.integers(len(b_doc)))
  b_end = _sentences_until(b_doc, b_start, budget - len(a), stop=len(b_doc))
  b = np.concatenate(b_doc[b_start:b_end])
  len_a, len_b = len(a), len(b)
  while len_a + len_b > budget:
    if len_a > len_b:
      len_a -= 1
    else:
      len_b -= 1
  tokens = np.concatenate([[CLS_ID], a[:len_a], [SEP_ID], b[:len_b], [SEP_ID]])
  segment_b = np.concatenate([np.zeros(len_a + 2, np.int32), np.ones(len_b + 1, np.int32)])
  return {
      "input_ids": pad_to(tokens, max_len),
      "token_type_ids": pad_to(segment_b, max_len, 0),
      "attention_mask": pad_to(np.ones(len(tokens), np.int32), max_len, 0),
      "next_sentence_label": np.asarray(int(is_next), np.int32),
  }


def pack_sequences(docs_ids: Sequence[np.ndarray], seq_len: int,
                   eos_id: int = SEP_ID) -> np.ndarray:
  """GPT-style packing: int32 [num_chunks, seq_len + 1] windows of the joined documents.

  Every document, the last included, is followed by `eos_id`: the shared special tokens have no
  end-of-text token, so [SEP] plays that part and marks where an unrelated document begins
  inside a chunk. The stream is cut into non-overlapping chunks of seq_len + 1 tokens, so
  inputs = chunk[:-1] and targets = chunk[1:]; the last partial chunk is dropped.
  """
  eos = np.asarray([eos_id], np.int32)
  pieces = [part for ids in docs_ids for part in (np.asarray(ids, np.int32), eos)]
  stream = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
  num_chunks = len(stream) // (seq_len + 1)
  return stream[:num_chunks * (seq_len + 1)].reshape(num_chunks, seq_len + 1)
