"""Gradient accumulation: one optimizer step from `config.grad_accum_steps` micro-batches.

A step's global batch is cut into k micro-batches that are processed one after another by
`jax.lax.scan`, so activations are held for one micro-batch at a time. Two semantics:

- Per-sample losses (MAE, rotation, jigsaw, DAE, BYOL, DINO, BiGAN, BERT, GPT): each micro-batch
  is differentiated on its own and the gradients are averaged, weighted by the method's
  `loss_weight(micro_batch)` (default: its rows; GPT: its labelled tokens). For a loss that is a
  mean over the units the weight counts, this is the full-batch gradient exactly (up to float
  rounding). It is not exact where the model couples the batch: batch norm normalises over each
  micro-batch, and model_state (its running statistics) and extras returned by the loss (DINO's
  centre, BYOL's target statistics) are threaded through the micro-batches, so they see k
  updates per step. Random draws (MAE's masks, dropout) come from `fold_in(rng, j)` for
  micro-batch j: the same distribution, not the same draws as one full-batch pass.
- Batch-coupled losses (SimCLR's NT-Xent, MoCo v3's InfoNCE: the whole global batch are the
  negatives): GradCache (Gao et al. 2021, "Scaling Deep Metric Learning Beyond the GPU Memory
  Limit"). 1) every micro-batch is embedded without keeping activations, gradient-free targets
  (MoCo's momentum keys) are computed in the same pass; 2) the loss and its gradient with
  respect to all embeddings are computed once on the whole global batch; 3) each micro-batch's
  forward is run again under `jax.vjp` and its slice of the embedding gradient is pulled back to
  the parameters, summed. The loss is the full-batch loss and, without batch norm, the gradient
  is the full-batch gradient. A method opts in with `embed`, `embedding_loss` and optionally
  `embed_targets` (see sslax/methods/base.py). A method marked `batch_coupled` without them is
  refused when k > 1 (SimDINO: its coding rate is a log-determinant of the whole batch).

Micro-batch j is rows j, j+k, j+2k, ... of every device's block of the batch, so each micro-batch
stays evenly sharded over the batch axes and splitting it needs no communication (the compiled
step has no all-to-all). Costs: XLA reduces each micro-batch's gradient over the devices inside
the loop, k gradient all-reduces per step instead of one; GradCache runs every forward twice.
The loop is a rolled `scan`, which is what saves the memory (unrolled, XLA:CPU keeps every
micro-batch's activations: 123 MiB of temporaries instead of 31 for SimCLR's MNIST recipe at
batch 1024 over 8 devices). On CPU, XLA's own convolution weight gradient runs about 40x slower
inside a loop (`conv_weight_grad="xla"`, sslax/models/conv.py); the "matmul" one does not.
"""
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sslax import parallel
from sslax.methods.base import PretextMethod

# (params, model_state, extra, batch, rng, step) -> ((loss, (metrics, model_state, extra)), grads)
GradFn = Callable[..., tuple[tuple[jax.Array, tuple[Any, Any, Any]], Any]]


def check_steps(grad_accum_steps: Any) -> None:
  """Raises a one-line error unless grad_accum_steps is a positive integer."""
  if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
    raise ValueError(f"grad_accum_steps must be a positive integer, got {grad_accum_steps!r}")


def check_grad_accum(batch_size: int, grad_accum_steps: int, mesh: Mesh) -> None:
  """Raises a one-line error unless every device's rows split into `grad_accum_steps` equal
  micro-batches (batch_size a multiple of grad_accum_steps x data x fsdp)."""
  check_steps(grad_accum_steps)
  devices = parallel.batch_divisor(mesh)
  divisor = grad_accum_steps * devices
  if batch_size % divisor:
    rows = batch_size // devices  # Per device; batch_size itself is checked to divide.
    fits = max(j for j in range(1, grad_accum_steps + 1) if rows % j == 0) if rows else 1
    raise ValueError(f"batch_size={batch_size} must be a multiple of grad_accum_steps x data x "
                     f"fsdp = {grad_accum_steps} x {devices} = {divisor} so every micro-batch "
                     f"splits over the devices; try batch_size="
                     f"{max(divisor, batch_size // divisor * divisor)} or grad_accum_steps={fits}")


def uses_gradcache(method: PretextMethod) -> bool:
  """Whether the method provides the embedding interface GradCache needs."""
  return hasattr(method, "embed") and hasattr(method, "embedding_loss")


def split_micro_batches(tree: Any, k: int, mesh: Mesh) -> Any:
  """Leaves `[batch, ...]` -> `[k, batch / k, ...]`; micro-batch j is rows j, j+k, ... of each
  device's block, so its rows stay on the device that holds them (no communication)."""
  d = parallel.batch_divisor(mesh)
  sharding = NamedSharding(mesh, P(None, parallel.BATCH_AXES))

  def one(x):
    rows = x.shape[0] // (d * k)
    x = x.reshape(d, rows, k, *x.shape[1:])  # [device, row within the micro-batch, micro-batch]
    x = jnp.moveaxis(x, 2, 0).reshape(k, d * rows, *x.shape[3:])
    return jax.lax.with_sharding_constraint(x, sharding)

  return jax.tree.map(one, tree)


def merge_micro_batches(tree: Any, mesh: Mesh) -> Any:
  """The inverse of `split_micro_batches`: leaves `[k, batch / k, ...]` -> `[batch, ...]` in the
  original row order, again without moving rows between devices."""
  d = parallel.batch_divisor(mesh)

  def one(x):
    k, n = x.shape[:2]
    x = x.reshape(k, d, n // d, *x.shape[2:])
    x = jnp.moveaxis(x, 0, 2).reshape(k * n, *x.shape[3:])
    return jax.lax.with_sharding_constraint(x, parallel.batch_sharding(mesh))

  return jax.tree.map(one, tree)


def loss_weight(method: PretextMethod, batch: Any) -> jax.Array:
  """The method's `loss_weight(batch)` (the units its loss averages over), else the rows."""
  if hasattr(method, "loss_weight"):
    return jnp.asarray(method.loss_weight(batch), jnp.float32)
  return jnp.float32(jax.tree.leaves(batch)[0].shape[0])


def _weighted_mean(values: jax.Array, weights: jax.Array, total: jax.Array) -> jax.Array:
  """sum_j w_j values[j] / total over the leading (micro-batch) axis, in float32."""
  return jnp.tensordot(weights, values.astype(jnp.float32), axes=1) / total


def _add_scaled(acc: Any, grads: Any, scale: jax.Array | float = 1.0) -> Any:
  return jax.tree.map(lambda a, g: a + (scale * g).astype(a.dtype), acc, grads)


def per_sample_grads(method: PretextMethod, k: int, mesh: Mesh) -> GradFn:
  """Weighted average of the k micro-batches' gradients, losses and metrics."""

  def grads_fn(params, model_state, extra, batch, rng, step):
    def body(carry, xs):
      grad_sum, model_state, extra = carry
      j, micro = xs

      def loss_fn(p):
        return method.loss(p, model_state, extra, micro, jax.random.fold_in(rng, j), step)

      (loss, (metrics, model_state, extra)), grads = jax.value_and_grad(
          loss_fn, has_aux=True)(params)
      weight = loss_weight(method, micro)
      return (_add_scaled(grad_sum, grads, weight), model_state, extra), (loss, metrics, weight)

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grad_sum, model_state, extra), (losses, metrics, weights) = jax.lax.scan(
        body, (zeros, model_state, extra), (jnp.arange(k), split_micro_batches(batch, k, mesh)))
    total = jnp.sum(weights)
    total = jnp.where(total > 0, total, 1.0)  # No units at all: zero loss and gradient.
    grads = jax.tree.map(lambda g: (g / total).astype(g.dtype), grad_sum)
    metrics = jax.tree.map(lambda m: _weighted_mean(m, weights, total), metrics)
    return (_weighted_mean(losses, weights, total), (metrics, model_state, extra)), grads

  return grads_fn


def gradcache_grads(method: PretextMethod, k: int, mesh: Mesh) -> GradFn:
  """GradCache: the full-batch loss on cached embeddings, pulled back one micro-batch at a time."""
  embed_targets = getattr(method, "embed_targets", None)

  def grads_fn(params, model_state, extra, batch, rng, step):
    micro = split_micro_batches(batch, k, mesh)
    rngs = jax.vmap(lambda j: jax.random.fold_in(rng, j))(jnp.arange(k))

    def embed(p, state, xs):
      x, r = xs
      return method.embed(p, state, extra, x, r, step)

    # 1) Embeddings of every micro-batch; nothing is differentiated, so no activations are kept.
    #    The gradient-free targets (MoCo's momentum keys) are computed here once.
    def forward(carry, xs):
      state, new_extra = carry
      emb, state = embed(params, state, xs)
      targets = {}
      if embed_targets is not None:
        targets, new_extra = embed_targets(new_extra, xs[0], xs[1], step)
      return (state, new_extra), jax.lax.stop_gradient((emb, targets))

    (_, new_extra), (emb, targets) = jax.lax.scan(forward, (model_state, extra), (micro, rngs))

    # 2) The loss on the whole global batch and its gradient with respect to every embedding.
    (loss, metrics), emb_grads = jax.value_and_grad(
        lambda e: method.embedding_loss(e, merge_micro_batches(targets, mesh), step),
        has_aux=True)(merge_micro_batches(emb, mesh))

    # 3) Each micro-batch's forward again, its embedding gradient pulled back to the parameters.
    def backward(carry, xs):
      grad_sum, state = carry
      inputs, cotangent = xs
      _, pull_back, state = jax.vjp(lambda p: embed(p, state, inputs), params, has_aux=True)
      return (_add_scaled(grad_sum, pull_back(cotangent)[0]), state), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grads, model_state), _ = jax.lax.scan(
        backward, (zeros, model_state),
        ((micro, rngs), split_micro_batches(emb_grads, k, mesh)))
    return (loss, (metrics, model_state, new_extra)), grads

  return grads_fn


def make_grad_fn(method: PretextMethod, grad_accum_steps: int, mesh: Mesh) -> GradFn:
  """The accumulated gradient function for `grad_accum_steps` > 1 micro-batches: GradCache for a
  method with the embedding interface, else per-sample averaging; a batch-coupled method
  without the interface is refused."""
  if uses_gradcache(method):
    return gradcache_grads(method, grad_accum_steps, mesh)
  if getattr(method, "batch_coupled", False):
    raise ValueError(f"{type(method).__module__} couples the whole batch in its loss and has no "
                     "embed/embedding_loss for GradCache; set grad_accum_steps=1")
  return per_sample_grads(method, grad_accum_steps, mesh)
