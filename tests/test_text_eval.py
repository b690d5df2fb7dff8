"""The held-out article probe and its bag-of-tokens baseline, on hand-made token sentences."""
import numpy as np
import pytest

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
