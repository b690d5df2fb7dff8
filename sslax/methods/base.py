"""The interface every pretext task implements, and helpers they share.

A method owns its networks and its loss; the shared train step (sslax/step.py) owns gradients,
the optimizer, sharding and NaN checks. Parameters, non-trainable model state (batch-norm
statistics) and method extras (EMA teachers, queues, centres) are separate pytrees so that only
`params` is differentiated and optimised.
"""
from typing import Any, Protocol

import flax.linen as nn
import jax

Batch = dict[str, Any]
Metrics = dict[str, jax.Array]


class PretextMethod(Protocol):
  """What `sslax.methods.<name>.Method(config)` provides.

  A method may also define `data(split, workdir) -> (records, views)` when its records are not
  `config.data`'s images (text: documents tokenised with a tokenizer kept in the workdir).
  """

  def views(self) -> list[Any]:
    """Augmentation specs (see sslax.data.image_ops.augment), one per view the loss needs, or a
    grain RandomMap from a record to an example (sslax.data.pipeline.example_transform)."""

  def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any, Any]:
    """(params, model_state, extra) for a batch of the right shapes."""

  def loss(self, params: Any, model_state: Any, extra: Any, batch: Batch, rng: jax.Array,
           step: jax.Array) -> tuple[jax.Array, tuple[Metrics, Any, Any]]:
    """Pure: (scalar loss, (metrics, new model_state, new extra)) on the global batch."""

  def update_extra(self, params: Any, extra: Any, step: jax.Array) -> Any:
    """Extras that follow the parameters after each update (EMA teachers); identity if none."""

  feature_levels: tuple[str, ...]
  """Levels `features` can return; the first, "encoder", is what evaluation measures."""

  def features(self, params: Any, model_state: Any, images: jax.Array,
               level: str = "encoder") -> jax.Array:
    """Features `[batch, dim]` in inference mode at `level` (e.g. "encoder", "projector")."""


def split_variables(variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
  """Flax variables -> (params, other collections such as batch_stats)."""
  state = {k: v for k, v in variables.items() if k != "params"}
  return variables.get("params", {}), state


def apply_module(module: nn.Module, params: Any, state: dict[str, Any], *args: Any,
                 train: bool, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
  """Applies a linen module functionally; in training, returns its updated state collections."""
  variables = {"params": params, **state}
  if train and state:
    out, new_state = module.apply(variables, *args, train=True, mutable=list(state), **kwargs)
    return out, dict(new_state)
  return module.apply(variables, *args, train=train, **kwargs), state
