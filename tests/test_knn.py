"""Weighted k-NN evaluation against a direct numpy implementation and hand-checked cases."""
import numpy as np
import pytest

from sslax.evals import knn

NUM_CLASSES = 5


def reference_predict(train, labels, test, num_classes, k, temperature):
  """Per test sample: cosine similarities, argsort, exp(sim / T) votes from the k nearest."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  preds = []
  for q in test.astype(np.float64):
    sims = train @ q
    votes = np.zeros(num_classes)
    for j in np.argsort(-sims)[:k]:
      votes[labels[j]] += np.exp(sims[j] / temperature)
    preds.append(np.argmax(votes))
  return np.array(preds)


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  # Labels follow a noisy linear rule so neighbours carry information and k and T matter.
  train = rng.normal(size=(60, 8)).astype(np.float32)
  test = rng.normal(size=(37, 8)).astype(np.float32)
  proj = rng.normal(size=(8, NUM_CLASSES))
  train_labels = np.argmax(train @ proj + rng.normal(size=(60, NUM_CLASSES)), axis=1)
  test_labels = np.argmax(test @ proj, axis=1)
  return train, train_labels, test, test_labels


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (20, 0.5), (60, 0.07),
                                           (500, 1.0)])
def test_matches_numpy_reference(data, k, temperature):
  train, train_labels, test, _ = data
  # 37 test samples in chunks of 16: the last chunk is padded; k=500 > N=60 is clamped.
  preds = knn.knn_predict(train, train_labels, test, NUM_CLASSES, k=k,
                          temperature=temperature, batch_size=16)
  expected = reference_predict(train, train_labels, test, NUM_CLASSES, min(k, 60),
                               temperature)
  assert preds.shape == (37,)
  np.testing.assert_array_equal(preds, expected)


def test_hand_made_example():
  # Query at ~80 degrees: nearest is the lone class-1 point (cos 0.98); the two class-0
  # points have cos 0.20 and 0.29.
  train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], np.float32)
  labels = np.array([0, 0, 1])
  query = np.array([[0.2, 1.0]], np.float32)

  def predict(k, temperature):
    return int(knn.knn_predict(train, labels, query, 2, k=k, temperature=temperature)[0])

  assert predict(1, 0.07) == 1
  assert predict(3, 100.0) == 0  # near-uniform weights: the 2-vs-1 majority wins
  assert predict(3, 0.01) == 1  # sharp weights: the nearest dominates (exp(98) stays finite)


def test_invariant_to_feature_scale(data):
  train, train_labels, test, _ = data
  rng = np.random.default_rng(1)
  scaled_train = train * rng.uniform(0.01, 100.0, size=(len(train), 1)).astype(np.float32)
  base = knn.knn_predict(train, train_labels, test, NUM_CLASSES, k=10)
  scaled = knn.knn_predict(scaled_train, train_labels, 7.0 * test, NUM_CLASSES, k=10)
  np.testing.assert_array_equal(base, scaled)


def test_top1_and_sweep_equal_individual_calls(data):
  train, train_labels, test, test_labels = data
  ks, temperatures = (1, 5, 20, 100), (0.07, 0.5)
  sweep = knn.knn_sweep(train, train_labels, test, test_labels, NUM_CLASSES, ks=ks,
                        temperatures=temperatures, batch_size=16)
  assert set(sweep) == {(k, t) for k in ks for t in temperatures}
  for (k, t), top1 in sweep.items():
    expected = np.mean(reference_predict(train, train_labels, test, NUM_CLASSES, min(k, 60),
                                         t) == test_labels)
    assert top1 == expected
    assert top1 == knn.knn_top1(train, train_labels, test, test_labels, NUM_CLASSES, k=k,
                                temperature=t, batch_size=16)
  # The informative labels make neighbours useful, so the test means something.
  assert max(sweep.values()) > 2 / NUM_CLASSES


def test_rejects_out_of_range_labels(data):
  train, train_labels, test, _ = data
  with pytest.raises(ValueError, match="labels"):
    knn.knn_predict(train, train_labels + NUM_CLASSES, test, NUM_CLASSES)
