"""Frozen features on disk, and the "features + scikit-learn classifier" protocol on top.

`eval.export_features = True` makes evaluation write `features_step{N}.npz` into the workdir:
train/test features and labels for each feature set (pretrained, random init, raw inputs), so
any scikit-learn model can be fitted offline. `eval.sklearn = ["logistic", "linear_svm"]`
fits those two here: features standardised on the train split, then multinomial logistic
regression (lbfgs) or a linear SVM (liblinear, one-vs-rest, squared hinge), C from config.
"""
import os
from typing import Any

import numpy as np


def export_features(path: str, arrays: dict[str, np.ndarray]) -> str:
  """Writes `arrays` (name -> array) to the .npz at `path` through a temporary file, so a
  reader never sees half a file; returns the path."""
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)
  return path


def sklearn_top1(train_x, train_y, test_x, test_y, kind: str, c: float = 1.0,
                 max_iter: int = 1000) -> float:
  """Test top-1 of a scikit-learn `kind` ("logistic" or "linear_svm") on standardised features."""
  # Imported when used: scikit-learn adds a second to every evaluation that does not need it.
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  from sklearn.svm import LinearSVC

  models: dict[str, Any] = {
      "logistic": lambda: LogisticRegression(C=c, max_iter=max_iter),
      "linear_svm": lambda: LinearSVC(C=c, max_iter=max_iter),
  }
  if kind not in models:
    raise ValueError(f"eval.sklearn: unknown classifier {kind!r}; use one of {sorted(models)}")
  model = make_pipeline(StandardScaler(), models[kind]())
  model.fit(np.asarray(train_x, np.float64), np.asarray(train_y))
  return float(np.mean(model.predict(np.asarray(test_x, np.float64)) == np.asarray(test_y)))
