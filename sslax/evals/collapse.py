"""Collapse monitors: is an embedding using its dimensions, or has it collapsed?

Three numbers on a feature matrix z [n, d]:
- RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
  self-supervised representations by their rank"): exp of the entropy of the normalised singular
  values, a smooth effective rank between 1 (every row on one line) and min(n, d).
- The mean per-dimension std of the L2-normalised rows (Chen & He 2021, SimSiam): about
  1/sqrt(d) for spread-out embeddings, 0 when every row is the same vector.
- The mean L2 norm of the rows, which drifts when a loss lets the scale run away.
An embedding is flagged as collapsed when its RankMe falls below `min_rank_fraction` of the
largest rank it could have.
"""
import numpy as np


def rankme(z: np.ndarray, eps: float = 1e-7) -> float:
  """Effective rank exp(-sum p log p), p = singular values / their sum (+ eps, as the paper)."""
  z = np.asarray(z, np.float64)
  singular = np.linalg.svd(z, compute_uv=False)
  total = singular.sum()
  if total == 0:
    return 0.0
  p = singular / total + eps
  return float(np.exp(-np.sum(p * np.log(p))))


def normalized_std(z: np.ndarray) -> float:
  """Mean over dimensions of the std of the L2-normalised rows."""
  z = np.asarray(z, np.float64)
  unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  return float(unit.std(axis=0).mean())


def collapse_report(z: np.ndarray, min_rank_fraction: float = 0.05) -> dict[str, float | bool]:
  """RankMe, its fraction of min(n, d), normalised std beside 1/sqrt(d), mean norm, and the
  collapse flag (rank fraction below `min_rank_fraction`)."""
  z = np.asarray(z)
  n, d = z.shape
  rank = rankme(z)
  fraction = rank / min(n, d)
  return {"rankme": rank, "rank_fraction": fraction, "normalized_std": normalized_std(z),
          "normalized_std_uniform": 1 / np.sqrt(d),
          "mean_norm": float(np.linalg.norm(z, axis=1).mean()),
          "collapsed": bool(fraction < min_rank_fraction)}
