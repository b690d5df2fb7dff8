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

  Gradient accumulation (config.grad_accum_steps, sslax/accumulate.py) reads two optional
  members: `loss_weight(batch) -> scalar`, the number of units the loss is a mean over (default:
  the rows; GPT: its labelled tokens), which weights each micro-batch so the accumulated gradient
  is the full-batch one; `batch_coupled = True` for a loss that couples the whole batch
  (contrastive negatives, a batch log-determinant), refused with k > 1 micro-batches unless
  the method is also a `GradCacheMethod` (SimCLR, MoCo v3).
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


class GradCacheMethod(PretextMethod, Protocol):
  """A batch-coupled method whose loss is a function of per-example embeddings, so gradient
  accumulation can use GradCache (Gao et al. 2021): embed every micro-batch, the loss and its
  gradient with respect to all embeddings on the global batch, then each micro-batch's vjp.
  `loss` must equal `embedding_loss` of the embeddings (and targets) of the whole batch.

  Optional: `embed_targets(extra, batch, rng, step) -> (targets, new extra)`, the gradient-free
  `[batch, dim]` outputs of a teacher (MoCo's momentum keys), computed once per micro-batch in
  the embedding pass and never re-run; without it the targets are {}.
  """

  def embed(self, params: Any, model_state: Any, extra: Any, batch: Batch, rng: jax.Array,
            step: jax.Array) -> tuple[Any, Any]:
    """(embeddings, new model_state): a pytree of `[batch, dim]` arrays, row i from example i,
    differentiable in `params`; deterministic given its arguments (it is run twice)."""

  def embedding_loss(self, embeddings: Any, targets: Any,
                     step: jax.Array) -> tuple[jax.Array, Metrics]:
    """(scalar loss, metrics) from the embeddings and targets of the whole global batch."""


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
