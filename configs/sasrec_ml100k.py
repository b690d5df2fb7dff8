"""SASRec next-item prediction on MovieLens-100k (leave-one-out, full ranking).

  python -m sslax.train --config=configs/sasrec_ml100k.py --workdir=runs/sasrec
  python -m sslax.evaluate --workdir=runs/sasrec

Data: the 100,000 ratings of 943 users on 1,682 movies that the recbole package ships
(sslax.data.interactions; read from the installed package, never copied), each user's ratings in
time order; last item = test, second to last = validation, the rest trains. Recipe:
sslax/methods/sasrec.py with contrastive_weight 0 (Kang and McAuley 2018, scaled to ml-100k:
2 blocks, 64 wide, 1 head, dropout 0.2, sequences of the last 50 items, Adam lr 1e-3, batch
128; full softmax cross-entropy instead of the paper's one sampled negative).
Results: see configs/cl4srec_ml100k.py, which reports both. `:tiny` for tests.
"""
import ml_collections

from sslax.data import recsys_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return recsys_config.base_config(0.0, arg)
