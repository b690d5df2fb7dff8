"""Few-shot ridge probe: the closed form against a direct least-squares solve, and its accuracy
on features whose classes are known to be separable."""
import numpy as np
import pytest

from sslax.evals import fewshot


@pytest.mark.parametrize("n,d", [(40, 8), (6, 30)])  # The primal and the dual solve.
def test_ridge_fit_matches_the_stacked_least_squares_solution(n, d):
  rng = np.random.default_rng(n)
  x, y = rng.normal(size=(n, d)), rng.normal(size=(n, 3))
  w, b = fewshot.ridge_fit(x, y, l2=0.7)
  # The same problem, bias unpenalised: centre, then stack sqrt(l2) I under the data.
  xc, yc = x - x.mean(0), y - y.mean(0)
  stacked_x = np.vstack([xc, np.sqrt(0.7) * np.eye(d)])
  stacked_y = np.vstack([yc, np.zeros((d, 3))])
  w_ref = np.linalg.lstsq(stacked_x, stacked_y, rcond=None)[0]
  np.testing.assert_allclose(w, w_ref, atol=1e-10)
  np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ w_ref, atol=1e-10)


def test_fewshot_separates_clusters_and_improves_with_shots():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(5, 16))
  def sample(n):
    y = rng.integers(0, 5, n)
    return centres[y] + 0.6 * rng.normal(size=(n, 16)), y
  train_x, train_y = sample(500)
  test_x, test_y = sample(300)
  scores = fewshot.fewshot_top1(train_x, train_y, test_x, test_y, 5, shots=(1, 25), l2=0.1)
  assert set(scores) == {1, 25}
  assert scores[25] > 0.95 and scores[1] > 0.5 and scores[25] >= scores[1]
  # Labels carry no information about random features: about chance.
  noise = fewshot.fewshot_top1(rng.normal(size=(500, 16)), train_y, rng.normal(size=(300, 16)),
                               test_y, 5, shots=(25,), draws=10)
  assert noise[25] < 0.35
  # Seeded: the same draw gives the same number.
  again = fewshot.fewshot_top1(train_x, train_y, test_x, test_y, 5, shots=(1, 25), l2=0.1)
  assert again == scores
