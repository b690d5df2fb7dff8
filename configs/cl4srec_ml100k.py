"""CL4SRec: SASRec plus the contrastive term between two augmented views, on MovieLens-100k.

  python -m sslax.train --config=configs/cl4srec_ml100k.py --workdir=runs/cl4srec
  python -m sslax.evaluate --workdir=runs/cl4srec

Recipe: configs/sasrec_ml100k.py (same data, encoder, optimizer and steps) with lambda =
sasrec.contrastive_weight 0.1 (the paper's best region) times NT-Xent (temperature 0.5) between
the last-position states of two views (each one of crop eta 0.6 / mask gamma 0.3 / reorder beta
0.6, chosen uniformly; Xie et al. 2022), negatives from the whole global batch. `:tiny` for
tests. The rates are mid-range values of those the paper sweeps, not tuned here.

Measured 2026-12-02 on the shared 2-core machine (other jobs running, load 5-12), 800 steps of
128, seeds 0 / 1, test split, ranking over all 1,682 items (sslax/evals/ranking.py):
  HR@10 / NDCG@10          seed 0           seed 1
  SASRec (lambda 0)        0.107 / 0.048    0.120 / 0.051
  CL4SRec (lambda 0.1)     0.077 / 0.036    0.090 / 0.040
  random init              0.005 / 0.003    0.010 / 0.004
  popularity               0.050 / 0.022    (no seed)
History removed ("unseen_" keys): SASRec 0.176 / 0.182 HR@10, CL4SRec 0.121 / 0.135,
popularity 0.084. The contrastive term did not help here: it lowered HR@10 by 0.03 in both
seeds (its training next-item loss ended where SASRec's did, 5.42). Training took 255-262 s
(SASRec) and 484-521 s (CL4SRec) of CPU time; wall time on this loaded machine was 12-19 min,
so re-measure on a quiet one with the commands above.
"""
import ml_collections

from sslax.data import recsys_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return recsys_config.base_config(0.1, arg)
