"""Linear probe: fits what is separable, can memorise, picks its lr on validation, is seeded."""
import numpy as np
import pytest

from sslax.evals import linear

NUM_CLASSES = 10
# One step count everywhere so equal shapes share one compilation.
STEPS = 200


def blobs(rng, n, centers, noise):
  """n points [n, D] around the rows of centers [C, D], with balanced labels [n]."""
  y = np.arange(n) % len(centers)
  return (centers[y] + noise * rng.normal(size=(n, centers.shape[1]))).astype(np.float32), y


@pytest.fixture(scope="module")
def separable():
  rng = np.random.default_rng(0)
  # Centers ~ N(0, 3^2) in 32-D are ~24 apart; noise 1 and an offset/scale that
  # standardisation must undo.
  centers = 3.0 * rng.normal(size=(NUM_CLASSES, 32))
  train_x, train_y = blobs(rng, 300, centers, 1.0)
  test_x, test_y = blobs(rng, 200, centers, 1.0)
  return 50.0 * train_x + 7.0, train_y, 50.0 * test_x + 7.0, test_y


@pytest.fixture(scope="module")
def overlapping():
  rng = np.random.default_rng(1)
  centers = 0.5 * rng.normal(size=(NUM_CLASSES, 32))
  train_x, train_y = blobs(rng, 400, centers, 1.0)
  test_x, test_y = blobs(rng, 200, centers, 1.0)
  return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("batch_size", [None, 32])
def test_separable_blobs_are_classified_perfectly(separable, batch_size):
  result = linear.linear_probe(*separable, NUM_CLASSES, steps=STEPS, batch_size=batch_size)
  assert result["train_top1"] == 1.0
  assert result["test_top1"] == 1.0
  protocol = {k: result[k] for k in ("steps", "learning_rate", "weight_decay", "batch_size",
                                     "optimizer")}
  assert protocol == {"steps": STEPS, "learning_rate": 1e-2, "weight_decay": 1e-4,
                      "batch_size": batch_size, "optimizer": "adamw"}


@pytest.mark.parametrize("optimizer,learning_rate", [("sgd", 0.1), ("lars", 1.0)])
def test_sgd_and_lars_probes_also_separate_the_blobs(separable, optimizer, learning_rate):
  result = linear.linear_probe(*separable, NUM_CLASSES, steps=STEPS, optimizer=optimizer,
                               learning_rate=learning_rate)
  assert result["test_top1"] == 1.0 and result["optimizer"] == optimizer
  with pytest.raises(ValueError, match="use one of"):
    linear.linear_probe(*separable, NUM_CLASSES, steps=STEPS, optimizer="adam")


def test_memorises_random_labels_despite_a_constant_feature():
  rng = np.random.default_rng(2)
  # 10 x 64 weights fit any labelling of 100 random points in practice; test labels are noise.
  # The constant last feature has std 0: without the std floor it would turn into NaNs.
  def features(n):
    return np.concatenate([rng.normal(size=(n, 63)), np.full((n, 1), 3.0)], axis=1)

  train_x, test_x = features(100), features(200)
  train_y, test_y = rng.integers(0, NUM_CLASSES, 100), rng.integers(0, NUM_CLASSES, 200)
  result = linear.linear_probe(train_x, train_y, test_x, test_y, NUM_CLASSES, steps=STEPS,
                               learning_rate=0.1)
  assert result["train_top1"] == 1.0
  assert result["test_top1"] < 0.3


def test_stratified_split():
  labels = np.repeat(np.arange(4), [10, 20, 30, 40])
  train_idx, val_idx = linear.stratified_split(labels, 0.1, seed=0)
  assert np.bincount(labels[val_idx]).tolist() == [1, 2, 3, 4]
  np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(100))
  again = linear.stratified_split(labels, 0.1, seed=0)
  other = linear.stratified_split(labels, 0.1, seed=1)
  np.testing.assert_array_equal(val_idx, again[1])
  assert not np.array_equal(val_idx, other[1])


def test_grid_picks_best_validation_lr(overlapping):
  train_x, train_y, test_x, test_y = overlapping
  lrs = (1e-4, 1e-2, 1.0)
  result = linear.linear_probe_grid(train_x, train_y, test_x, test_y, NUM_CLASSES,
                                    learning_rates=lrs, val_fraction=0.25, steps=STEPS)
  val = result["val_top1"]
  assert list(val) == list(lrs)
  assert len(set(val.values())) > 1, "learning rates should differ for the check to bite"
  assert result["learning_rate"] == lrs[int(np.argmax(list(val.values())))]
  # The vmapped grid trains each lr exactly as a lone probe on the same split would.
  fit_idx, val_idx = linear.stratified_split(train_y, 0.25, seed=0)
  for lr, acc in val.items():
    alone = linear.linear_probe(train_x[fit_idx], train_y[fit_idx], train_x[val_idx],
                                train_y[val_idx], NUM_CLASSES, steps=STEPS, learning_rate=lr)
    assert acc == pytest.approx(alone["test_top1"], abs=1.5 / len(val_idx))
  # The reported test number is the chosen lr retrained on the full training set.
  retrained = linear.linear_probe(train_x, train_y, test_x, test_y, NUM_CLASSES, steps=STEPS,
                                  learning_rate=result["learning_rate"])
  assert result["test_top1"] == retrained["test_top1"]
  assert result["val_fraction"] == 0.25


def test_same_seed_same_result(overlapping):
  train_x, train_y, test_x, test_y = overlapping
  # Minibatch order is the only randomness; 300 samples reuse the [32]-batch compilation.
  args = train_x[:300], train_y[:300], test_x, test_y, NUM_CLASSES
  kwargs = dict(steps=STEPS, batch_size=32, learning_rate=0.1)
  first = linear.linear_probe(*args, seed=3, **kwargs)
  assert first == linear.linear_probe(*args, seed=3, **kwargs)
