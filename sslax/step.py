"""The one train step every method shares.

The method supplies a pure loss; this step differentiates it, applies the optimizer, lets the
method update its extras (EMA teachers) and reports norms. It is jitted once with the state
donated, so the old state's buffers are reused and nothing is copied per step.
"""
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from sslax import parallel
from sslax.methods.base import PretextMethod


def make_train_step(method: PretextMethod, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, mesh: Mesh, shardings: Any):
  """A jitted (state, global batch) -> (new state, metrics) on `mesh`."""

  def train_step(state: dict[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    step = state["step"]
    rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)

    def loss_fn(params):
      return method.loss(params, state["model_state"], state["extra"], batch, rng, step)

    (loss, (metrics, model_state, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
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
