"""Pretext metrics on held-out data: how well the trained model does its own task on examples
pretraining never saw (MLM accuracy, perplexity, contrastive top-1, reconstruction error).

Text methods define `pretext_metrics(params, model_state, batch)`; for the others the metrics
are those their loss reports (`method.loss`'s metrics and the loss itself), computed with a
fixed random key at the checkpoint's step, on batches of the test split with the method's own
training views.
"""
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax

from sslax import parallel
from sslax.data import pipeline


def loss_metrics(method: Any, extra: Any, step: int, seed: int) -> Callable[..., dict]:
  """(params, model_state, batch) -> {"loss", and the loss's metrics} of an image method."""
  def metrics(params, model_state, batch):
    loss, (values, _, _) = method.loss(params, model_state, extra, batch, jax.random.key(seed),
                                       step)
    return {"loss": loss, **values}
  return metrics


def heldout_pretext_metrics(metrics_fn: Callable[..., dict], params: Any, model_state: Any,
                            records: Sequence[Any], views: Any, batch_size: int, seed: int, mesh,
                            max_batches: int = 200) -> dict[str, float]:
  """`metrics_fn` averaged over a fixed draw of held-out batches (about one example per record,
  at most `max_batches`; batches of equal size, so the mean of batch means)."""
  dataset = pipeline.train_dataset(records, views, batch_size, seed, process_index=0,
                                   process_count=1)
  fn = jax.jit(metrics_fn, out_shardings=parallel.replicated(mesh))
  totals: dict[str, float] = {}
  num_batches = min(max(1, len(records) // batch_size), max_batches)
  for i in range(num_batches):
    row = jax.device_get(fn(params, model_state, parallel.to_global(dataset[i], mesh)))
    for k, v in row.items():
      totals[k] = totals.get(k, 0.0) + float(v) / num_batches
  if "perplexity" in totals:  # exp of the mean loss, not the mean of the batches' exps.
    totals["perplexity"] = math.exp(totals["lm_loss"])
  return totals
