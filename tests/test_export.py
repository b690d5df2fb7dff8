"""Feature export and the scikit-learn classifiers of the feature-extraction protocol."""
import os

import numpy as np
import pytest

from sslax.evals import export


def test_export_round_trips_and_leaves_no_temporary_file(tmp_path):
  arrays = {"pretrained_train": np.arange(12, dtype=np.float32).reshape(3, 4),
            "train_labels": np.array([0, 1, 1])}
  path = export.export_features(str(tmp_path / "features.npz"), arrays)
  assert os.listdir(tmp_path) == ["features.npz"]
  with np.load(path) as loaded:
    assert sorted(loaded.files) == sorted(arrays)
    for name, value in arrays.items():
      np.testing.assert_array_equal(loaded[name], value)


@pytest.mark.parametrize("kind", ["logistic", "linear_svm"])
def test_sklearn_classifiers_separate_separable_blobs(kind):
  rng = np.random.default_rng(0)
  centres = 8.0 * np.eye(3, 10)
  y = rng.integers(0, 3, 300)
  x = centres[y] + rng.normal(size=(300, 10))
  assert export.sklearn_top1(x[:200], y[:200], x[200:], y[200:], kind) == 1.0
  # Labels unrelated to the features: about chance.
  assert export.sklearn_top1(x[:200], rng.integers(0, 3, 200), x[200:], y[200:], kind) < 0.6


def test_unknown_classifier_is_a_clear_error():
  with pytest.raises(ValueError, match="linear_svm"):
    export.sklearn_top1(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1], "svm")
