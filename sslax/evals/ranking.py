"""Leave-one-out next-item ranking (methods with `ranking_eval`: SASRec / CL4SRec).

Each user's held-out item (the last interaction for test, the second to last for validation,
sslax.data.interactions) is ranked against ALL N items (the padding id and the mask token are
not items, so never ranked) by the model's next-item scores after the user's earlier items
(the last `data.max_len` of them). Reported: HR@k (the target in the top k) and NDCG@k
(1 / log2(rank + 2) when rank < k, rank 0-based), the mean over users, k in `ranking_ks`.

Two protocols, both reported: "all items" ranks every item, as RecBole's full-sort evaluation
of sequential models does (recbole/trainer/trainer.py masks only item 0; its
FullSortEvalDataLoader gives sequential models no history index); "unseen" (keys with
`unseen_`) first removes the items the user already interacted with, except the target, as the
CL4SRec follow-ups' public code does (CoSeRec, ICLRec zero the training items' scores). In
MovieLens every (user, movie) is rated once, so the target is never among them and "unseen" is
the easier protocol. Ties count against the target (rank = the number of other items scoring at
least as high), so a constant scorer gets HR 0, not a lucky draw.

Baselines: the run's initial weights (random init), and popularity (items scored by their
number of interactions in the training sequences).
"""
import functools
from typing import Any

import jax
import numpy as np

from sslax import parallel
from sslax.data import interactions

EVAL_KEYS = {"ranking_ks": [5, 10, 20], "batch_size": 256}


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """scores [U, N] float, targets [U] 0-based columns -> [U] 0-based ranks: the number of
  other items whose score is at least the target's (ties against the target)."""
  picked = np.take_along_axis(scores, targets[:, None], axis=1)
  return (scores >= picked).sum(1) - 1


def hit_ndcg(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
  """Mean HR@k and NDCG@k over users from 0-based ranks [U]."""
  out = {}
  for k in ks:
    hit = ranks < k
    out[f"hr@{k}"] = float(hit.mean())
    out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
  return out


def mask_history(scores: np.ndarray, histories: list[np.ndarray],
                 targets: np.ndarray) -> np.ndarray:
  """Scores with every history item (1-based ids) but the target set to -inf."""
  out = scores.copy()
  for row, (items, target) in enumerate(zip(histories, targets, strict=True)):
    seen = np.asarray(items, np.int64) - 1
    out[row, seen[seen != target]] = -np.inf
  return out


@functools.lru_cache(maxsize=4)
def _jitted_scores(method, mesh):
  return jax.jit(method.scores, out_shardings=parallel.replicated(mesh))


def model_scores(method, params, inputs: np.ndarray, batch_size: int, mesh) -> np.ndarray:
  """Next-item scores [U, N] of left-padded sequences [U, L] in fixed-size sharded chunks."""
  step = parallel.batch_divisor(mesh)
  batch_size = -(-batch_size // step) * step
  fn = _jitted_scores(method, mesh)
  out = []
  for i in range(0, len(inputs), batch_size):
    chunk = inputs[i:i + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), chunk.shape[1]),
                                             chunk.dtype)])
    x = jax.device_put(padded, parallel.batch_sharding(mesh))
    out.append(np.asarray(fn(params, x))[:len(chunk)])
  return np.concatenate(out)


def heldout_cases(split: interactions.Split, which: str) -> tuple[list[np.ndarray], np.ndarray]:
  """(histories: 1-based item arrays, targets [U] 1-based) of the users with a held-out item;
  the test history includes the validation item."""
  users = np.flatnonzero(split.test > 0)
  if which == "valid":
    return [split.train[u] for u in users], split.valid[users]
  return [np.append(split.train[u], split.valid[u]) for u in users], split.test[users]


def popularity_scores(split: interactions.Split) -> np.ndarray:
  """[N] interaction counts of items 1..N in the training sequences."""
  counts = np.bincount(np.concatenate(split.train), minlength=split.num_items + 1)
  return counts[1:].astype(np.float32)


def rank_all(scores: np.ndarray, histories: list[np.ndarray], targets: np.ndarray,
             ks: list[int]) -> dict[str, float]:
  """Both protocols' metrics: "hr@k", ... (all items) and "unseen_hr@k", ... (history masked)."""
  columns = targets.astype(np.int64) - 1
  out = hit_ndcg(target_ranks(scores, columns), ks)
  masked = mask_history(scores, histories, columns)
  out.update({f"unseen_{k}": v for k, v in hit_ndcg(target_ranks(masked, columns), ks).items()})
  return out


def evaluate_ranking(method, config, cfg: dict[str, Any], step: int, trained, initial,
                     mesh) -> dict[str, Any]:
  """Validation and test metrics of the trained model, its initial weights and popularity:
  keys "{prefix}{split}_{[unseen_]}{hr|ndcg}@k", prefix "", "random_init_", "popularity_"."""
  cfg = {**EVAL_KEYS, **cfg}
  ks = [int(k) for k in cfg["ranking_ks"]]
  split = method.split
  results: dict[str, Any] = {"step": int(step), "protocol": cfg, "users": int((split.test > 0)
                                                                             .sum()),
                             "items": split.num_items, "data": split.report}
  popularity = popularity_scores(split)
  for which in ("valid", "test"):
    histories, targets = heldout_cases(split, which)
    inputs = np.stack([interactions.left_pad(h, method.max_len) for h in histories])
    candidates = {"": trained, "random_init_": initial}
    for prefix, state in candidates.items():
      scores = model_scores(method, state["params"], inputs, cfg["batch_size"], mesh)
      metrics = rank_all(scores, histories, targets, ks)
      results.update({f"{prefix}{which}_{k}": v for k, v in metrics.items()})
    scores = np.broadcast_to(popularity, (len(targets), split.num_items))
    metrics = rank_all(scores, histories, targets, ks)
    results.update({f"popularity_{which}_{k}": v for k, v in metrics.items()})
  return results


def results_table(results: dict[str, Any]) -> str:
  """A Markdown table: test HR/NDCG at every k, both protocols, for the three scorers."""
  ks = results["protocol"]["ranking_ks"]
  cols = [f"{p}{m}@{k}" for p in ("", "unseen_") for k in ks for m in ("hr", "ndcg")]
  lines = [f"step {results['step']}: leave-one-out test, {results['users']} users ranked "
           f"over all {results['items']} items (unseen_: history removed); {results['data']}",
           "| scorer | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for name, p in (("trained", ""), ("random init", "random_init_"),
                  ("popularity", "popularity_")):
    lines.append(f"| {name} | " + " | ".join(f"{results[f'{p}test_{c}']:.4f}" for c in cols)
                 + " |")
  return "\n".join(lines)
