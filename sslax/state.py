"""The train state: a plain dict of pytrees, created directly under its shardings.

{"step": int32, "rng": uint32[2] key data, "params", "model_state" (batch-norm statistics),
 "opt_state", "extra" (EMA teachers, queues, centres)}. Nothing large is materialised unsharded:
the shapes come from `jax.eval_shape`, the shardings from the config's rules, and the arrays from
one `jax.jit` whose outputs are laid out on those shardings.
"""
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from sslax import parallel
from sslax.methods.base import PretextMethod


def _init_state(method: PretextMethod, tx: optax.GradientTransformation, sample: Any,
                seed: int) -> dict[str, Any]:
  init_rng, train_rng = jax.random.split(jax.random.key(seed))
  params, model_state, extra = method.init(init_rng, jax.tree.map(jnp.asarray, sample))
  return {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(train_rng),
          "params": params, "model_state": model_state, "opt_state": tx.init(params),
          "extra": extra}


def state_shardings(method: PretextMethod, tx: optax.GradientTransformation, sample: Any,
                    seed: int, mesh: Mesh, rules: Sequence[tuple[str, Any]]) -> tuple[Any, Any]:
  """(abstract state with shardings, tree of NamedShardings) without computing anything."""
  abstract = jax.eval_shape(lambda: _init_state(method, tx, sample, seed))
  shardings = parallel.param_shardings(abstract, mesh, rules)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
  return abstract, shardings


def create_state(method: PretextMethod, tx: optax.GradientTransformation, sample: Any, seed: int,
                 shardings: Any) -> dict[str, Any]:
  """The initial state, computed straight into its shardings."""
  return jax.jit(lambda: _init_state(method, tx, sample, seed), out_shardings=shardings)()
