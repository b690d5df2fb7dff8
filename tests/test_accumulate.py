"""Gradient accumulation: micro-batches stay on their devices, per-sample losses weighted by their
units and GradCache for contrastive losses give the full-batch gradient, k=1 is the plain step."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from method_harness import REPO

from sslax import accumulate, parallel
from sslax import config as config_lib
from sslax import state as state_lib
from sslax.methods import get_method
from sslax.step import make_train_step

# A ViT and heads without batch norm: nothing couples the examples of a micro-batch but the loss.
TINY_VIT = dict(name="vit_tiny", patch_size=7, hidden_dim=16, depth=1, num_heads=2, mlp_dim=32,
                dtype="float32")
SGD = optax.sgd(1.0)  # One step moves the parameters by minus the gradient.


def _mesh():
  return parallel.make_mesh({"data": -1})


def _steps(method, batch, ks, tx=SGD):
  """(initial params, [(state, metrics, compiled HLO text) after one step with k micro-batches
  for k in ks]) on the 8 devices, every step from the same initial state."""
  mesh = _mesh()
  sample = jax.tree.map(lambda x: x[:2], batch)
  _, shardings = state_lib.state_shardings(method, tx, sample, 0, mesh, ())
  state = state_lib.create_state(method, tx, sample, 0, shardings)
  params = jax.device_get(state["params"])
  results = []
  global_batch = parallel.to_global(batch, mesh)
  for k in ks:
    step = make_train_step(method, tx, lambda s: 1.0, mesh, shardings, k).lower(
        state, global_batch).compile()
    new_state, metrics = step(jax.tree.map(jnp.copy, state), global_batch)
    results.append((*jax.device_get((new_state, metrics)), step.as_text()))
  return params, results


def _assert_same_step(method, batch, k):
  """One accumulated step moves parameters and extras as the full-batch step does."""
  start, [(full, full_metrics, full_hlo), (accumulated, metrics, hlo)] = _steps(
      method, batch, (1, k))
  # Micro-batches are cut from each device's own rows: no all-to-all beyond the loss's own
  # (NT-Xent's concatenation of the two views' sharded projections has some).
  assert hlo.count(" all-to-all(") <= full_hlo.count(" all-to-all(")
  np.testing.assert_allclose(metrics["loss"], full_metrics["loss"], rtol=1e-6)
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), full["params"], start)
  assert max(jax.tree.leaves(moved)) > 1e-3  # The comparison below compares real gradients.
  for name in ("params", "extra"):
    for a, b in zip(jax.tree.leaves(accumulated[name]), jax.tree.leaves(full[name]),
                    strict=True):
      # Gradients summed in another order (micro-batches, -O0's vectorisation: tests/conftest.py,
      # and the ViT's folded attention backward) differ by float32 ulps; SGD(1) moves params by
      # them: up to 8e-6 seen for MoCo v3's ViT, against moves above 1e-3 (asserted above).
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  return metrics, full_metrics


def _views(batch, num_views=2, size=28, seed=0):
  rng = np.random.default_rng(seed)
  return {"views": tuple(rng.normal(size=(batch, size, size, 1)).astype(np.float32)
                         for _ in range(num_views))}


def test_micro_batches_stay_on_their_devices_and_merge_back():
  mesh = _mesh()
  k, rows = 2, 3
  x = np.arange(8 * k * rows * 2, dtype=np.float32).reshape(8 * k * rows, 2)
  split = jax.jit(lambda b: accumulate.split_micro_batches(b, k, mesh))
  global_x = parallel.to_global(x, mesh)
  hlo = split.lower(global_x).compile().as_text()
  for collective in ("all-to-all", "all-gather", "collective-permute", "all-reduce"):
    assert collective not in hlo
  out = split(global_x)
  assert out.shape == (k, 8 * rows, 2)
  blocks = x.reshape(8, k * rows, 2)
  for shard in out.addressable_shards:  # Device i's rows j, j+k, ... of its own block.
    device = list(mesh.devices.flat).index(shard.device)
    np.testing.assert_array_equal(shard.data, np.moveaxis(
        blocks[device].reshape(rows, k, 2), 1, 0))
  merged = jax.jit(lambda m: accumulate.merge_micro_batches(m, mesh))(out)
  np.testing.assert_array_equal(merged, x)


def test_bad_settings_fail_with_one_line_naming_the_keys():
  mesh = _mesh()
  with pytest.raises(ValueError, match="batch_size=16 must be a multiple of grad_accum_steps x "
                     "data x fsdp = 4 x 8 = 32 .*try batch_size=32 or grad_accum_steps=2$"):
    accumulate.check_grad_accum(16, 4, mesh)
  accumulate.check_grad_accum(32, 4, mesh)
  with pytest.raises(ValueError, match="grad_accum_steps must be a positive integer"):
    accumulate.check_grad_accum(32, 0, mesh)
  config = config_lib.load_config(f"{REPO}/configs/simdino_mnist.py:tiny")
  with pytest.raises(ValueError, match="couples the whole batch.*set grad_accum_steps=1"):
    make_train_step(get_method(config), SGD, lambda s: 1.0, mesh, None, 2)
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny")
  method = get_method(config)
  with pytest.raises(ValueError, match="batch_size=16 must be a multiple") as error:
    _steps(method, _views(16), (4,))
  assert "\n" not in str(error.value)


def _reference_step(method, tx, schedule, mesh, shardings):
  """The train step before accumulation existed, as sslax/step.py had it."""

  def train_step(state, batch):
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


def test_one_micro_batch_is_the_step_as_it_was():
  """grad_accum_steps=1 lowers to the same program as the step before accumulation existed."""
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny")
  method, mesh, tx = get_method(config), _mesh(), optax.adamw(1e-3)
  batch = parallel.to_global(_views(16), mesh)
  abstract, shardings = state_lib.state_shardings(
      method, tx, jax.tree.map(lambda x: x[:2], _views(2)), 0, mesh, ())
  schedule = optax.constant_schedule(1e-3)
  ours = make_train_step(method, tx, schedule, mesh, shardings, 1).lower(abstract, batch)
  before = _reference_step(method, tx, schedule, mesh, shardings).lower(abstract, batch)
  assert ours.as_text() == before.as_text()
  accumulated = make_train_step(method, tx, schedule, mesh, shardings, 2).lower(abstract, batch)
  assert accumulated.as_text() != before.as_text()


@pytest.mark.slow
def test_token_loss_weighted_by_labelled_tokens_equals_the_full_batch():
  config = config_lib.load_config(f"{REPO}/configs/gpt_wiki.py:tiny")
  config.model.text = {**config.model.text, "dropout_rate": 0.0, "depth": 1}
  method = get_method(config)
  rng = np.random.default_rng(0)
  batch_size, length, k = 32, 8, 2
  ids = rng.integers(5, config.data.vocab_size, (batch_size, length + 1)).astype(np.int32)
  # Row r keeps r % 8 + 1 targets: micro-batch j (rows j, j+k, ... per device) gets
  # unequal numbers of labelled tokens, so an unweighted mean of micro-batch losses is wrong.
  keep = np.arange(length)[None] < (np.arange(batch_size) % 8 + 1)[:, None]
  targets = np.where(keep, ids[:, 1:], -1).astype(np.int32)
  counts = keep.reshape(8, -1, k, length).sum(axis=(0, 1, 3))
  assert counts[0] != counts[1], counts
  _assert_same_step(method, {"input_ids": ids[:, :-1], "targets": targets}, k)


@pytest.mark.slow
def test_gradcache_simclr_equals_the_full_batch_step():
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny")
  config.model.encoder = TINY_VIT
  config.model.projector = dict(hidden_dims=(16,), out_dim=8, use_bn=False)
  metrics, full = _assert_same_step(get_method(config), _views(32), 4)
  assert metrics["contrastive_top1"] == full["contrastive_top1"]


@pytest.mark.slow
def test_gradcache_moco_v3_equals_the_full_batch_step_and_updates_the_teacher_once():
  config = config_lib.load_config(f"{REPO}/configs/moco_v3_mnist.py:tiny")
  config.model.encoder = TINY_VIT
  config.model.projector = dict(hidden_dims=(), out_dim=8, last_bn=False)
  config.model.predictor = dict(hidden_dims=(), out_dim=8, last_bn=False)
  method = get_method(config)
  _assert_same_step(method, _views(16), 2)
