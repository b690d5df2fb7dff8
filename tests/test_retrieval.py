"""Retrieval recall@k against a brute-force count, and its two limits."""
import numpy as np

from sslax.evals import retrieval


def test_recall_matches_a_brute_force_ranking():
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(50, 6))
  keys = queries + 0.8 * rng.normal(size=(50, 6))
  cos = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ \
      (keys / np.linalg.norm(keys, axis=1, keepdims=True)).T
  ranks = [int(np.sum(np.delete(cos[i], i) >= cos[i, i])) for i in range(50)]
  np.testing.assert_array_equal(retrieval.partner_ranks(queries, keys, chunk=7), ranks)
  recall = retrieval.recall_at_k(queries, keys, ks=(1, 5))
  assert recall == {1: np.mean(np.array(ranks) < 1), 5: np.mean(np.array(ranks) < 5)}
  assert 0 < recall[1] < recall[5] < 1


def test_identical_views_are_always_found_and_random_ones_at_chance():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(400, 16))
  assert retrieval.recall_at_k(x, 3.0 * x) == {1: 1.0, 5: 1.0, 10: 1.0}
  chance = retrieval.recall_at_k(x, rng.normal(size=(400, 16)), ks=(10,))[10]
  assert abs(chance - 10 / 400) < 0.03
