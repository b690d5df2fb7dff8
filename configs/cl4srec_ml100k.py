"""CL4SRec: SASRec plus the contrastive term between two augmented views, on MovieLens-100k.

  python -m sslax.train --config=configs/cl4srec_ml100k.py --workdir=runs/cl4srec
  python -m sslax.evaluate --workdir=runs/cl4srec

Recipe: configs/sasrec_ml100k.py (same data, encoder, optimizer and steps) with lambda =
sasrec.contrastive_weight 0.1 (the paper's best region) times NT-Xent (temperature 0.5) between
the last-position states of two views (each one of crop eta 0.6 / mask gamma 0.3 / reorder beta
0.6, chosen uniformly; Xie et al. 2022), negatives from the whole global batch. `:tiny` for
tests.
"""
import ml_collections

from sslax.data import recsys_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return recsys_config.base_config(0.1, arg)
