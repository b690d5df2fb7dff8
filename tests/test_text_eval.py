"""The text probes (held-out articles, labelled TSV/JSONL sets), the bag-of-tokens baseline and
the fine-tuning probe, on hand-made data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import evaluate, parallel
from sslax.evals import finetune
from sslax.evals import text as text_eval


def _doc(first_token, lengths):
  """Sentences of the given lengths, each with its own token ids."""
  return [np.arange(first_token + 100 * j, first_token + 100 * j + n, dtype=np.int32)
          for j, n in enumerate(lengths)]


def test_article_probe_splits_every_article_and_drops_short_sentences():
  docs = [_doc(10, [8] * 10), _doc(20, [9, 3, 9, 9, 9, 9]), _doc(30, [8] * 4), _doc(40, [8] * 5)]
  train_x, train_y, test_x, test_y = text_eval.article_probe(docs, min_tokens=8, test_every=5)
  # Article 1 loses its 3-token sentence (5 left), article 2 has only 4 and is left out, so
  # article 3 becomes class 2; every 5th kept sentence of an article is a test sentence.
  np.testing.assert_array_equal(test_y, [0, 0, 1, 2])
  np.testing.assert_array_equal(np.bincount(train_y), [8, 4, 4])
  assert all(len(s) >= 8 for s in train_x + test_x)
  np.testing.assert_array_equal(test_x[0], docs[0][4])
  np.testing.assert_array_equal(test_x[2], docs[1][5])
  seen = {tuple(s) for s in train_x}
  assert not any(tuple(s) in seen for s in test_x)


def test_article_probe_needs_two_classes():
  with pytest.raises(ValueError, match="heldout_fraction"):
    text_eval.article_probe([_doc(10, [8] * 10), _doc(20, [2] * 10)])


def test_bag_of_tokens_counts_and_normalises():
  bags = text_eval.bag_of_tokens([np.array([5, 5, 7]), np.array([6])], vocab_size=9)
  np.testing.assert_allclose(bags[0], np.array([0, 0, 0, 0, 0, 2, 0, 1, 0]) / np.sqrt(5))
  np.testing.assert_allclose(bags[1], np.eye(9)[6])


# ------------------------------------------------------------------- labelled sets, fine-tuning


class _WordTokenizer:
  """A stand-in for a `tokenizers.Tokenizer`: one id per distinct word."""

  def __init__(self):
    self.ids = {}
    self.encode_special_tokens = False

  def encode_batch(self, texts, add_special_tokens):
    del add_special_tokens
    return [type("E", (), {"ids": [self.ids.setdefault(w, 5 + len(self.ids))
                                   for w in t.split()]})() for t in texts]


def test_read_labelled_tsv_and_jsonl(tmp_path):
  (tmp_path / "a.tsv").write_text("text\tlabel\nthe cat sat\tanimal\nno\ttab here\tplace\n\n")
  assert text_eval.read_labelled(str(tmp_path / "a.tsv")) == (
      ["the cat sat", "no\ttab here"], ["animal", "place"])  # The last tab splits.
  (tmp_path / "b.jsonl").write_text('{"text": "x y", "label": 1}\n{"text": "z", "label": "1"}\n')
  assert text_eval.read_labelled(str(tmp_path / "b.jsonl")) == (["x y", "z"], ["1", "1"])
  (tmp_path / "bad.jsonl").write_text('{"text": "x", "label": 0}\n{"text": "y"}\n')
  with pytest.raises(ValueError, match="bad.jsonl:2"):
    text_eval.read_labelled(str(tmp_path / "bad.jsonl"))
  (tmp_path / "bad.tsv").write_text("no label here\n")
  with pytest.raises(ValueError, match="bad.tsv:1: expected text<TAB>label"):
    text_eval.read_labelled(str(tmp_path / "bad.tsv"))
  with pytest.raises(FileNotFoundError, match="probe_data"):
    text_eval.read_labelled(str(tmp_path / "missing.tsv"))
  (tmp_path / "b.csv").write_text("x,1\n")
  with pytest.raises(ValueError, match="use a .tsv"):
    text_eval.read_labelled(str(tmp_path / "b.csv"))


def test_labelled_probe_holds_out_every_fifth_example_of_each_class(tmp_path):
  rows = [(f"a{i} word", "pos") for i in range(10)] + [(f"b{i} word", "neg") for i in range(5)]
  (tmp_path / "train.tsv").write_text("".join(f"{t}\t{y}\n" for t, y in rows))
  train_s, train_y, test_s, test_y, classes = text_eval.labelled_probe(
      _WordTokenizer(), str(tmp_path / "train.tsv"))
  assert classes == ["neg", "pos"]
  np.testing.assert_array_equal(test_y, [1, 1, 0])  # pos #5 and #10, neg #5.
  np.testing.assert_array_equal(np.bincount(train_y), [4, 8])
  assert len(train_s) == 12 and all(len(s) == 2 for s in train_s + test_s)
  (tmp_path / "test.tsv").write_text("c word\tpos\nd word\tother\n")
  with pytest.raises(ValueError, match="other"):
    text_eval.labelled_probe(_WordTokenizer(), str(tmp_path / "train.tsv"),
                             str(tmp_path / "test.tsv"))
  (tmp_path / "test.tsv").write_text("c word\tpos\n")
  *_, test_y, _ = text_eval.labelled_probe(_WordTokenizer(), str(tmp_path / "train.tsv"),
                                           str(tmp_path / "test.tsv"))
  np.testing.assert_array_equal(test_y, [1])


def test_finetuning_moves_the_encoder_where_a_frozen_probe_cannot():
  # The label is the sign of x[0]; the initial encoder only sees x[1], so a probe on its frozen
  # features is at chance, while fine-tuning learns to read x[0].
  rng = np.random.default_rng(0)
  x = rng.normal(size=(600, 2)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  params = {"w": jnp.asarray([[0.0, 0.0], [1.0, 0.5]])}

  def features(p, batch):
    return batch["x"] @ p["w"]

  mesh = parallel.make_mesh({"data": -1})
  frozen = finetune.finetune(features, params, {"x": x[:400]}, y[:400], {"x": x[400:]}, y[400:],
                             2, mesh, steps=200, learning_rate=0.0, head_learning_rate=1e-2)
  tuned = finetune.finetune(features, params, {"x": x[:400]}, y[:400], {"x": x[400:]}, y[400:],
                            2, mesh, steps=200, learning_rate=1e-2, head_learning_rate=1e-2)
  head_only = finetune.finetune(features, params, {"x": x[:400]}, y[:400], {"x": x[400:]},
                                y[400:], 2, mesh, steps=200, learning_rate=1e-2,
                                head_learning_rate=1e-2, trainable="^$", label_smoothing=0.1)
  # Mixup on array inputs (images) trains on mixed pairs and still learns the rule.
  mixed = finetune.finetune(lambda p, b: b @ p["w"], params, x[:400], y[:400], x[400:],
                            y[400:], 2, mesh, steps=200, learning_rate=1e-2,
                            head_learning_rate=1e-2, mixup_alpha=0.4)
  assert mixed["test_top1"] > 0.9 and mixed["protocol"]["mixup_alpha"] == 0.4
  with pytest.raises(ValueError, match="token inputs cannot be mixed"):
    finetune.finetune(features, params, {"x": x[:400]}, y[:400], {"x": x[400:]}, y[400:], 2,
                      mesh, steps=2, mixup_alpha=0.4)
  assert frozen["test_top1"] < 0.65 and head_only["test_top1"] < 0.65  # Encoder untouched.
  assert tuned["test_top1"] > 0.95
  assert tuned["protocol"]["steps"] == 200 and tuned["protocol"]["batch_size"] % 8 == 0
  np.testing.assert_array_equal(params["w"], [[0.0, 0.0], [1.0, 0.5]])  # Trained a copy.


def test_eval_overrides_parse_dotted_keys_and_literals():
  assert evaluate.parse_eval_overrides(["finetune_steps=0", "probe_data.train=a b.tsv",
                                        "knn_k=5"]) == {
      "finetune_steps": 0, "probe_data": {"train": "a b.tsv"}, "knn_k": 5}
  with pytest.raises(ValueError, match="KEY one of"):
    evaluate.parse_eval_overrides(["finetune_step=0"])
  with pytest.raises(ValueError, match="KEY=VALUE"):
    evaluate.parse_eval_overrides(["finetune_steps"])


def test_layer_decay_scales_by_block_depth():
  params = {"patch_embed": {"kernel": 0}, "block0": {"mlp": 0}, "block2": {"attn": {"q": 0}},
            "block1": {"mlp": 0}, "norm": {"scale": 0}}
  scales = finetune.layer_scales(params, 0.5)
  assert scales == {"patch_embed": {"kernel": 0.5 ** 4}, "block0": {"mlp": 0.5 ** 3},
                    "block1": {"mlp": 0.25}, "block2": {"attn": {"q": 0.5}},
                    "norm": {"scale": 1.0}}
  assert jax.tree.leaves(finetune.layer_scales(params, 1.0)) == [1.0] * 5
