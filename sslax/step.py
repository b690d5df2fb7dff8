"""The one train step every method shares.

The method supplies a pure loss; this step differentiates it, applies the optimizer, lets the
method update its extras (EMA teachers) and reports norms. It is jitted once with the state
donated, so the old state's buffers are reused and nothing is copied per step. With
`grad_accum_steps` > 1 the gradient is accumulated over micro-batches (sslax/accumulate.py says
which semantics each method gets); the optimizer and the extras still update once per step.
"""
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from sslax import accumulate, parallel
from sslax.methods.base import PretextMethod


def make_train_step(method: PretextMethod, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, mesh: Mesh, shardings: Any,
                    grad_accum_steps: int = 1):
  """A jitted (state, global batch) -> (new state, metrics) on `mesh`.

  `grad_accum_steps` (config.grad_accum_steps): micro-batches per step; 1 differentiates the
  whole batch at once. A bad value or a method that cannot accumulate raises a one-line error.
  """
  accumulate.check_steps(grad_accum_steps)
  accumulated = (accumulate.make_grad_fn(method, grad_accum_steps, mesh)
                 if grad_accum_steps > 1 else None)

  def train_step(state: dict[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    step = state["step"]
    rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)

    if accumulated is None:
      def loss_fn(params):
        return method.loss(params, state["model_state"], state["extra"], batch, rng, step)

      (loss, (metrics, model_state, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state["params"])
    else:
      accumulate.check_grad_accum(jax.tree.leaves(batch)[0].shape[0], grad_accum_steps, mesh)
      (loss, (metrics, model_state, extra)), grads = accumulated(
          state["params"], state["model_state"], state["extra"], batch, rng, step)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {"step": step + 1, "rng": state["rng"], "params": params,
                 "model_state": model_state, "opt_state": opt_state,
                 "extra": method.update_extra(params, extra, step)}
    metrics = {**metrics, "loss": loss, "learning_rate": schedule(step),
               "grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params)}
    return new_state, metrics

  return jax.jit(train_step, in_shardings=(shardings, parallel.batch_sharding(mesh)),
                 out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)
