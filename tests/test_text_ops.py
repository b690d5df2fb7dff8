"""Tests for sslax.data.tokenizer and sslax.data.text_ops: masking statistics, NSP, packing."""
import unicodedata

import numpy as np
import pytest

from sslax.data import text_ops
from sslax.data import tokenizer as tok
from sslax.data.tokenizer import CLS_ID, MASK_ID, NUM_SPECIAL, PAD_ID, SEP_ID

WORDS = ("the a quick brown fox jumps over lazy dog river city museum opened history naïve "
         "café résumé painting painted painter walking walked walks library scientists found "
         "that old new small large early late century during between because").split()


def _corpus(num_sentences: int = 300, seed: int = 0) -> list[str]:
  """Synthetic English-like sentences with capitals, punctuation and accented words."""
  rng = np.random.default_rng(seed)
  sentences = []
  for i in range(num_sentences):
    words = list(rng.choice(WORDS, size=int(rng.integers(4, 12))))
    words[0] = words[0].capitalize()
    sentences.append(" ".join(words) + (f", in {1800 + i % 200}." if i % 3 else "!"))
  return sentences


# ------------------------------------------------------------------------------ tokenizer


@pytest.fixture(scope="module")
def trained():
  corpus = _corpus()
  return {"wordpiece": tok.train_tokenizer(corpus, "wordpiece", 200),
          "bpe": tok.train_tokenizer(corpus, "bpe", 400)}


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_special_ids_are_fixed(trained, kind):
  tokenizer = trained[kind]
  assert [tokenizer.token_to_id(t) for t in tok.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
  assert (tok.PAD_ID, tok.UNK_ID, tok.CLS_ID, tok.SEP_ID, tok.MASK_ID) == (0, 1, 2, 3, 4)
  assert tokenizer.token_to_id("[MASK]") == MASK_ID == 4
  assert tokenizer.get_vocab_size() <= (200 if kind == "wordpiece" else 400)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_encode_adds_no_special_tokens(trained, kind):
  ids = tok.encode(trained[kind], ["The dog walked.", "A [MASK] and [SEP] in raw text"])
  assert all(x.dtype == np.int32 and x.ndim == 1 for x in ids)
  assert ids[0].min() >= NUM_SPECIAL
  assert MASK_ID not in ids[1] and SEP_ID not in ids[1]  # Literal specials are plain text.


def test_bpe_round_trip_is_exact(trained):
  texts = ["The quick brown fox, in 1850.", "  Unseen: naïve 😀 Ωmega\ttabs\nand lines  "]
  for text, ids in zip(texts, tok.encode(trained["bpe"], texts), strict=True):
    assert tok.UNK_ID not in ids
    assert tok.decode(trained["bpe"], ids) == text


def test_wordpiece_round_trip_up_to_case_accents_and_spacing(trained):
  def squash(text: str) -> str:
    stripped = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in stripped if not unicodedata.combining(c) and not c.isspace())

  texts = _corpus(20, seed=1) + ["Naïve painters walked, during the Café history!"]
  for text, ids in zip(texts, tok.encode(trained["wordpiece"], texts), strict=True):
    assert tok.UNK_ID not in ids
    assert squash(tok.decode(trained["wordpiece"], ids)) == squash(text)
  pieces = trained["wordpiece"].encode("paintings", add_special_tokens=False).tokens
  assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_save_load_and_deterministic_training(tmp_path, trained, kind):
  corpus = _corpus()
  path = str(tmp_path / "sub" / f"{kind}.json")
  vocab_size = 200 if kind == "wordpiece" else 400
  first = tok.train_tokenizer(corpus, kind, vocab_size, path=path)
  loaded = tok.load_tokenizer(path)
  texts = _corpus(30, seed=2)
  for a, b in zip(tok.encode(first, texts), tok.encode(loaded, texts), strict=True):
    np.testing.assert_array_equal(a, b)
  # The library's WordPiece trainer alone differs between runs in one process; ours must not.
  for _ in range(3):
    assert tok.train_tokenizer(iter(corpus), kind, vocab_size).to_str() == first.to_str()
  assert first.to_str() == trained[kind].to_str()


def test_tokenizer_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="train_tokenizer.*config.data.tokenizer"):
    tok.load_tokenizer(str(tmp_path / "missing.json"))
  with pytest.raises(ValueError, match="vocab_size >= 261"):
    tok.train_tokenizer(_corpus(10), "bpe", 200)
  with pytest.raises(ValueError, match="unknown tokenizer kind"):
    tok.train_tokenizer(_corpus(10), "unigram", 200)


# -------------------------------------------------------------------------------- masking


def _bert_like(rng: np.random.Generator, length: int, vocab_size: int) -> np.ndarray:
  """[CLS] a [SEP] b [SEP] [PAD]..., with 0 to 30 pads and content ids in [5, vocab_size)."""
  real = length - int(rng.integers(0, 31))
  ids = rng.integers(NUM_SPECIAL, vocab_size, size=length).astype(np.int32)
  ids[0], ids[real // 2], ids[real - 1] = CLS_ID, SEP_ID, SEP_ID
  ids[real:] = PAD_ID
  return ids


def test_mask_statistics():
  vocab_size = 12  # 7 non-special ids: a random replacement keeps the original 1 time in 7.
  data_rng = np.random.default_rng(123)
  counts = dict(maskable=0, selected=0, masked=0, random=0, kept=0)
  random_ids = []
  for i in range(2000):
    ids = _bert_like(data_rng, 128, vocab_size)
    before = ids.copy()
    inputs, labels = text_ops.mask_tokens(ids, np.random.default_rng(i), vocab_size)
    np.testing.assert_array_equal(ids, before)
    assert inputs.dtype == labels.dtype == np.int32
    selected = labels != text_ops.IGNORE_ID
    special = ids < NUM_SPECIAL
    assert not selected[special].any()  # Padding, [CLS] and [SEP] are never selected.
    np.testing.assert_array_equal(labels[selected], ids[selected])
    np.testing.assert_array_equal(inputs[~selected], ids[~selected])
    replaced = selected & (inputs != ids) & (inputs != MASK_ID)
    random_ids.append(inputs[replaced])
    counts["maskable"] += int((~special).sum())
    counts["selected"] += int(selected.sum())
    counts["masked"] += int((inputs[selected] == MASK_ID).sum())
    counts["random"] += int(replaced.sum())
    counts["kept"] += int((inputs[selected] == ids[selected]).sum())
  assert counts["masked"] + counts["random"] + counts["kept"] == counts["selected"]
  assert abs(counts["selected"] / counts["maskable"] - 0.15) < 0.005
  same = 1 / (vocab_size - NUM_SPECIAL)  # A random draw equal to the original counts as kept.
  assert abs(counts["masked"] / counts["selected"] - 0.8) < 0.01
  assert abs(counts["random"] / counts["selected"] - 0.1 * (1 - same)) < 0.01
  assert abs(counts["kept"] / counts["selected"] - (0.1 + 0.1 * same)) < 0.01
  random_ids = np.concatenate(random_ids)
  assert random_ids.min() >= NUM_SPECIAL and random_ids.max() < vocab_size
  per_id = np.bincount(random_ids, minlength=vocab_size)[NUM_SPECIAL:]
  assert np.all(np.abs(per_id / per_id.mean() - 1) < 0.2)  # Uniform over non-special ids.


def test_masking_is_dynamic_and_seeded():
  ids = _bert_like(np.random.default_rng(0), 128, 1000)
  a_inputs, a_labels = text_ops.mask_tokens(ids, np.random.default_rng(1), 1000)
  b_inputs, b_labels = text_ops.mask_tokens(ids, np.random.default_rng(1), 1000)
  c_inputs, c_labels = text_ops.mask_tokens(ids, np.random.default_rng(2), 1000)
  np.testing.assert_array_equal(a_inputs, b_inputs)
  np.testing.assert_array_equal(a_labels, b_labels)
  assert not np.array_equal(a_labels, c_labels) and not np.array_equal(a_inputs, c_inputs)


def test_max_predictions_caps_the_selection_uniformly():
  ids = _bert_like(np.random.default_rng(0), 128, 1000)
  hits = np.zeros(len(ids))
  for seed in range(500):
    inputs, labels = text_ops.mask_tokens(ids, np.random.default_rng(seed), 1000,
                                          mask_prob=0.5, max_predictions=10)
    selected = labels != text_ops.IGNORE_ID
    assert selected.sum() == 10  # About 60 drawn, 10 kept.
    np.testing.assert_array_equal(inputs[~selected], ids[~selected])  # Dropped ones untouched.
    hits += selected
  maskable = ids >= NUM_SPECIAL
  assert hits[~maskable].sum() == 0
  rate = hits[maskable] / 500  # Each maskable token is kept 10 / num_maskable of the time.
  np.testing.assert_allclose(rate.mean(), 10 / maskable.sum(), rtol=1e-6)
  assert np.all(np.abs(rate / rate.mean() - 1) < 0.6)
  uncapped = text_ops.mask_tokens(ids, np.random.default_rng(3), 1000)
  capped = text_ops.mask_tokens(ids, np.random.default_rng(3), 1000, max_predictions=128)
  np.testing.assert_array_equal(uncapped[1], capped[1])  # A cap that does not bind: same draw.


def test_short_sequences_are_masked_at_the_same_rate():
  # No minimum of one selected token: with 2 maskable tokens, 0.85^2 = 72% of draws select none
  # and the selected fraction stays 0.15 (a forced minimum would raise it to about 0.33).
  short = np.array([CLS_ID, 7, 8, SEP_ID, PAD_ID, PAD_ID], np.int32)
  counts = []
  for seed in range(4000):
    _, labels = text_ops.mask_tokens(short, np.random.default_rng(seed), 100)
    assert np.all(labels[[0, 3, 4, 5]] == text_ops.IGNORE_ID)
    counts.append(int((labels != text_ops.IGNORE_ID).sum()))
  counts = np.asarray(counts)
  np.testing.assert_allclose(counts.mean() / 2, 0.15, atol=0.01)
  np.testing.assert_allclose(np.mean(counts == 0), 0.85 ** 2, atol=0.02)
  only_special = np.array([CLS_ID, SEP_ID, PAD_ID], np.int32)
  inputs, labels = text_ops.mask_tokens(only_special, np.random.default_rng(0), 100)
  np.testing.assert_array_equal(inputs, only_special)
  assert np.all(labels == text_ops.IGNORE_ID)
  _, labels = text_ops.mask_tokens(short, np.random.default_rng(0), 100, mask_prob=0.0)
  assert np.all(labels == text_ops.IGNORE_ID)


# ------------------------------------------------------------------------------------ NSP


def _unique_corpus(num_docs: int, sentences: tuple[int, int], lengths: tuple[int, int],
                   seed: int = 0):
  """Documents whose every token id is unique, and a map id -> (doc, sentence, position)."""
  rng = np.random.default_rng(seed)
  docs, where, next_id = [], {}, NUM_SPECIAL
  for d in range(num_docs):
    doc = []
    for s in range(int(rng.integers(*sentences, endpoint=True))):
      n = int(rng.integers(*lengths, endpoint=True))
      doc.append(np.arange(next_id, next_id + n, dtype=np.int32))
      where.update({next_id + p: (d, s, p) for p in range(n)})
      next_id += n
    docs.append(doc)
  return docs, where


def _segments(example: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  ids = example["input_ids"]
  sep = np.flatnonzero(ids == SEP_ID)
  return ids[1:sep[0]], ids[sep[0] + 1:sep[1]]


def test_nsp_hand_example_layout():
  docs = [[np.array([10, 11, 12]), np.array([13, 14])], [np.array([20, 21])]]
  seen = set()
  for seed in range(40):
    ex = text_ops.nsp_example(docs, 0, np.random.default_rng(seed), max_len=10)
    label = int(ex["next_sentence_label"])
    b = [13, 14] if label else [20, 21]
    np.testing.assert_array_equal(ex["input_ids"], [CLS_ID, 10, 11, 12, SEP_ID, *b, SEP_ID, 0, 0])
    np.testing.assert_array_equal(ex["token_type_ids"], [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(ex["attention_mask"], [1] * 8 + [0, 0])
    assert all(v.dtype == np.int32 for v in ex.values()) and ex["next_sentence_label"].shape == ()
    seen.add(label)
  assert seen == {0, 1}


def test_nsp_truncates_the_longer_segment_from_the_end():
  docs = [[np.arange(10, 16), np.array([16, 17])], [np.array([20, 21])]]
  ex = text_ops.nsp_example(docs, 0, np.random.default_rng(0), max_len=8)
  a, b = _segments(ex)
  np.testing.assert_array_equal(a, [10, 11, 12])
  assert len(b) == 2 and ex["attention_mask"].sum() == 8
  docs = [[np.arange(10, 14), np.arange(14, 18)], [np.arange(20, 24)]]
  for seed in range(10):  # 4 + 4 tokens into a budget of 5: B loses the ties.
    a, b = _segments(text_ops.nsp_example(docs, 0, np.random.default_rng(seed), max_len=8))
    np.testing.assert_array_equal(a, [10, 11, 12])
    assert b.tolist() in ([14, 15], [20, 21])


def test_nsp_label_rate_and_segments_come_from_the_right_place():
  docs, where = _unique_corpus(30, sentences=(2, 8), lengths=(1, 20))
  flat = [np.concatenate(doc) for doc in docs]
  starts = [np.cumsum([0] + [len(s) for s in doc]) for doc in docs]
  labels = []
  for i in range(4000):
    doc_index = i % len(docs)
    ex = text_ops.nsp_example(docs, doc_index, np.random.default_rng(i), max_len=64)
    labels.append(int(ex["next_sentence_label"]))
    if i >= 600:
      continue
    a, b = _segments(ex)
    assert len(a) >= 1 and len(b) >= 1 and 3 + len(a) + len(b) == ex["attention_mask"].sum()
    a_doc, a_sent, a_pos = where[int(a[0])]
    b_doc, b_sent, b_pos = where[int(b[0])]
    assert a_doc == doc_index and a_pos == 0 and b_pos == 0  # Segments start sentences.
    assert where[int(a[-1])][1] < len(docs[doc_index]) - 1  # A leaves a sentence to follow.
    np.testing.assert_array_equal(a, flat[a_doc][starts[a_doc][a_sent]:][:len(a)])
    np.testing.assert_array_equal(b, flat[b_doc][starts[b_doc][b_sent]:][:len(b)])
    if labels[-1]:  # A is sentences a_sent..b_sent-1 (maybe cut short), B what follows them.
      assert b_doc == doc_index
      assert 0 < len(a) <= starts[a_doc][b_sent] - starts[a_doc][a_sent]
    else:
      assert b_doc != doc_index
  assert abs(np.mean(labels) - 0.5) < 0.03


def test_nsp_long_sentences_fit():
  docs, _ = _unique_corpus(10, sentences=(1, 4), lengths=(10, 60), seed=1)
  for i in range(300):
    ex = text_ops.nsp_example(docs, i % 10, np.random.default_rng(i), max_len=32)
    a, b = _segments(ex)
    assert ex["input_ids"].shape == (32,) and ex["attention_mask"].sum() == 3 + len(a) + len(b)
    assert len(a) >= 1 and len(b) >= 1
    inputs, labels = text_ops.mask_tokens(ex["input_ids"], np.random.default_rng(i), 10_000)
    assert np.all(labels[ex["input_ids"] < NUM_SPECIAL] == text_ops.IGNORE_ID)


def test_nsp_single_sentence_document_and_errors():
  docs = [[np.array([10, 11])], [np.array([20, 21]), np.array([22])]]
  for seed in range(20):
    ex = text_ops.nsp_example(docs, 0, np.random.default_rng(seed), max_len=12)
    a, b = _segments(ex)
    assert int(ex["next_sentence_label"]) == 0
    np.testing.assert_array_equal(a, [10, 11])
    assert b.min() >= 20
  with pytest.raises(ValueError, match="at least two documents"):
    text_ops.nsp_example(docs[:1], 0, np.random.default_rng(0), max_len=12)
  with pytest.raises(ValueError, match="no room"):
    text_ops.nsp_example(docs, 0, np.random.default_rng(0), max_len=4)


# -------------------------------------------------------------------------------- packing


def test_pack_sequences_reproduces_the_stream():
  rng = np.random.default_rng(0)
  docs = [rng.integers(NUM_SPECIAL, 500, size=int(rng.integers(0, 40))) for _ in range(25)]
  stream = [t for doc in docs for t in [*doc.tolist(), SEP_ID]]
  chunks = text_ops.pack_sequences(docs, seq_len=16)
  assert chunks.dtype == np.int32 and chunks.shape == (len(stream) // 17, 17)
  tail = stream[chunks.size:]
  assert len(tail) < 17
  assert chunks.ravel().tolist() + tail == stream
  np.testing.assert_array_equal(text_ops.pack_sequences(docs, seq_len=16), chunks)
  assert text_ops.pack_sequences(docs[:1], seq_len=1000).shape == (0, 1001)
  assert text_ops.pack_sequences([], seq_len=4).shape == (0, 5)
  np.testing.assert_array_equal(text_ops.pack_sequences([np.array([7, 8])], 2, eos_id=9),
                                [[7, 8, 9]])


def test_pad_to():
  np.testing.assert_array_equal(text_ops.pad_to(np.array([5, 6]), 4), [5, 6, PAD_ID, PAD_ID])
  assert text_ops.pad_to(np.array([5, 6]), 4).dtype == np.int32
  with pytest.raises(ValueError, match="do not fit"):
    text_ops.pad_to(np.arange(5), 4)


def test_pad_batch_cuts_pads_and_masks():
  ids, mask = text_ops.pad_batch([np.array([7, 8, 9]), np.array([5, 6, 7, 8, 9, 10])], 4)
  np.testing.assert_array_equal(ids, [[7, 8, 9, PAD_ID], [5, 6, 7, 8]])
  np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 1, 1, 1]])
