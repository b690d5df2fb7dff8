"""Subword tokenizers for language pretraining: BERT-style WordPiece and GPT-style byte-level BPE.

Both kinds share five special tokens with fixed ids (`PAD_ID` ... `MASK_ID` = 0 ... 4), so every
model and text op can rely on them whichever tokenizer made the ids. Training runs in Rust on
the HuggingFace `tokenizers` library (an 8,192-token vocabulary on the embedded Wikipedia
sample: 1.3 s WordPiece, 0.5 s BPE, 2 cores) and gives the same vocabulary for the same texts;
tokenizers are saved as the library's single JSON file.
"""
import os
from collections.abc import Iterable, Sequence

import numpy as np
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)
_NUM_BYTES = 256  # Byte-level BPE starts from one token per byte, so nothing is ever unknown.


def _wordpiece(texts: list[str], vocab_size: int) -> tokenizers.Tokenizer:
  """BERT's uncased WordPiece: NFD, lowercase, accents stripped, split on spaces and punctuation.

  The library's trainer numbers the "##x" continuation characters in hash-map order, which
  changes from run to run and, through tie-breaking between equally frequent merges, changes
  the vocabulary itself. Declaring every "##x" up front (as trainer special tokens, which come
  first in the vocabulary, in the given order) makes training deterministic; the result is then
  rebuilt around the trained vocabulary with only the five real special tokens marked special.
  """
  normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
  pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  continuations = set()
  for text in texts:
    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
      continuations.update(word[1:])
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, show_progress=False,
      special_tokens=[*SPECIAL_TOKENS, *("##" + char for char in sorted(continuations))])
  draft = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
  draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
  draft.train_from_iterator(texts, trainer)
  tokenizer = tokenizers.Tokenizer(
      models.WordPiece(draft.get_vocab(with_added_tokens=False), unk_token="[UNK]"))
  tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
  tokenizer.decoder = decoders.WordPiece(prefix="##")
  tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
  return tokenizer


def _byte_level_bpe(texts: list[str], vocab_size: int) -> tokenizers.Tokenizer:
  """GPT-2's byte-level BPE, without a prefix space so that decoding restores the text exactly."""
  if vocab_size < NUM_SPECIAL + _NUM_BYTES:
    raise ValueError(f"byte-level BPE needs vocab_size >= {NUM_SPECIAL + _NUM_BYTES} "
                     f"(special tokens and one token per byte), got {vocab_size}")
  tokenizer = tokenizers.Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                special_tokens=list(SPECIAL_TOKENS),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tokenizer.train_from_iterator(texts, trainer)
  return tokenizer


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int,
                    path: str | None = None) -> tokenizers.Tokenizer:
  """A tokenizer of `kind` ("wordpiece" or "bpe") trained on `texts`, saved as JSON to `path`.

  `vocab_size` counts the special tokens; WordPiece keeps every character it saw even when that
  exceeds `vocab_size`, while byte-level BPE needs at least 261 (5 special + 256 bytes).
  """
  builders = {"wordpiece": _wordpiece, "bpe": _byte_level_bpe}
  if kind not in builders:
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {tuple(builders)}")
  tokenizer = builders[kind](list(texts), vocab_size)
  if [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] != list(range(NUM_SPECIAL)):
    raise RuntimeError(f"special tokens {SPECIAL_TOKENS} did not get ids 0..{NUM_SPECIAL - 1}")
  if path is not None:
    save_tokenizer(tokenizer, path)
  return tokenizer


def save_tokenizer(tokenizer: tokenizers.Tokenizer, path: str) -> None:
  """Writes the JSON to a temporary file and renames it: a run killed mid-write never leaves a
  truncated tokenizer that the next start would load."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  tokenizer.save(tmp)
  os.replace(tmp, path)


def load_tokenizer(path: str) -> tokenizers.Tokenizer:
  """The tokenizer saved at `path` by `train_tokenizer`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no tokenizer at {path!r}: train one with "
                            "sslax.data.tokenizer.train_tokenizer(..., path=...) or set "
                            "config.data.tokenizer to a saved tokenizer JSON")
  return tokenizers.Tokenizer.from_file(path)


def encode(tokenizer: tokenizers.Tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
  """Token ids (int32 [num_tokens]) of each text, without [CLS]/[SEP]: the text ops add those.

  A literal "[MASK]" (or other special token) in the text is encoded as ordinary text, so special
  ids only ever come from the ops; this sets `tokenizer.encode_special_tokens`, which the JSON
  file does not keep.
  """
  tokenizer.encode_special_tokens = True
  encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
  return [np.asarray(encoding.ids, np.int32) for encoding in encodings]


def decode(tokenizer: tokenizers.Tokenizer, ids: Sequence[int] | np.ndarray,
           skip_special_tokens: bool = True) -> str:
  """The text of token ids, special tokens (padding included) dropped unless asked for."""
  return tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
