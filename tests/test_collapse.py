"""Collapse monitors on features whose rank and spread are known by construction."""
import numpy as np
import pytest

from sslax.evals import collapse


def _orthonormal(rng, n, r):
  q, _ = np.linalg.qr(rng.normal(size=(n, r)))
  return q


@pytest.mark.parametrize("r", [1, 4, 16, 32])
def test_rankme_of_equal_singular_values_is_the_rank(r):
  rng = np.random.default_rng(r)
  z = _orthonormal(rng, 500, r) @ _orthonormal(rng, 64, r).T * 3.0  # r singular values of 3.
  assert collapse.rankme(z) == pytest.approx(r, rel=1e-3)  # eps adds ~1e-4.


def test_rankme_against_the_formula_and_gaussian_features():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 40))  # Rank 8, uneven spectrum.
  s = np.linalg.svd(z, compute_uv=False)
  p = s / s.sum() + 1e-7
  assert collapse.rankme(z) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
  assert 5.0 < collapse.rankme(z) < 8.0 + 1e-3
  assert collapse.rankme(np.zeros((5, 3))) == 0.0


def test_collapsed_embedding_is_flagged_and_a_spread_one_is_not():
  rng = np.random.default_rng(1)
  spread = rng.normal(size=(1000, 32))
  report = collapse.collapse_report(spread)
  assert not report["collapsed"] and report["rank_fraction"] > 0.9
  # Isotropic gaussian rows: the normalised std is close to 1/sqrt(d).
  assert report["normalized_std"] == pytest.approx(1 / np.sqrt(32), rel=0.05)
  assert report["mean_norm"] == pytest.approx(np.sqrt(32), rel=0.05)
  one_direction = np.outer(rng.normal(size=1000) ** 2 + 1, rng.normal(size=32))
  one_direction += 1e-4 * rng.normal(size=one_direction.shape)
  report = collapse.collapse_report(one_direction)
  assert report["collapsed"] and report["rankme"] < 1.1
  assert report["normalized_std"] < 1e-3
