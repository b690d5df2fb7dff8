"""BYOL: the loss against numpy on the networks' own outputs, the EMA target, 8 devices == 1."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method

REPO = __file__.rsplit("/tests/", 1)[0]


def setup(config_path, **overrides):
  """(method, params, model_state, extra, batch) at init on a real batch of `config_path`.

  The target's weights are moved off the online ones so a test can tell which network gave what.
  """
  config = config_lib.load_config(config_path, **overrides)
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  batch = pipeline.train_dataset(source, method.views(), config.batch_size, config.seed)[0]
  batch = jax.tree.map(jnp.asarray, batch)
  params, state, extra = method.init(jax.random.key(0), batch)
  extra = {**extra, "params": jax.tree.map(lambda x: 0.9 * x + 0.01, extra["params"])}
  return method, params, state, extra, batch


def apply_train(module, params, state, x):
  """One module in train mode with flax's own apply: the reference for the method's plumbing."""
  out, _ = module.apply({"params": params, **state}, x, train=True, mutable=list(state))
  return np.asarray(out, np.float64)


def predictions_and_targets(method, params, state, extra, batch):
  """Online predictions p and target projections z of both views (rows: view 1, then view 2)."""
  images = jnp.concatenate(batch["views"])

  def project(p, s):
    feats = apply_train(method.encoder, p["encoder"], s["encoder"], images)
    return apply_train(method.projector, p["projector"], s["projector"], feats)

  p = apply_train(method.predictor, params["predictor"], state["predictor"],
                  project(params, state))
  return p, project(extra["params"], extra["state"])


def unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_loss_at_init_matches_numpy():
  method, params, state, extra, batch = setup(f"{REPO}/configs/byol_mnist.py:tiny")
  p, z = predictions_and_targets(method, params, state, extra, batch)
  n = len(p) // 2
  cos_12 = np.sum(unit(p[:n]) * unit(z[n:]), axis=1)
  cos_21 = np.sum(unit(p[n:]) * unit(z[:n]), axis=1)
  expected = np.mean(2 - 2 * cos_12) + np.mean(2 - 2 * cos_21)
  loss, (metrics, _, _) = method.loss(params, state, extra, batch, jax.random.key(1),
                                      jnp.int32(0))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["cosine_similarity"]),
                             np.mean(np.concatenate([cos_12, cos_21])), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(metrics["target_momentum"]),
                             method.config.byol.base_momentum, rtol=1e-7)


def test_the_target_is_no_parameter_and_gets_no_gradient():
  method, params, state, extra, batch = setup(f"{REPO}/configs/byol_mnist.py:tiny")
  assert set(params) == {"encoder", "projector", "predictor"}
  assert jax.tree.structure(extra["params"]) == jax.tree.structure(
      {"encoder": params["encoder"], "projector": params["projector"]})

  def loss_of_target(target):
    return method.loss(params, state, {**extra, "params": target}, batch, jax.random.key(1),
                       jnp.int32(0))[0]

  grads = jax.grad(loss_of_target)(extra["params"])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))
  online_grads = jax.grad(lambda p: method.loss(p, state, extra, batch, jax.random.key(1),
                                                jnp.int32(0))[0])(params)
  assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(online_grads["encoder"]))
  # The projector's output bias is cancelled by the predictor's first batch norm: held, not noise.
  np.testing.assert_array_equal(online_grads["projector"]["output_dense"]["bias"], 0.0)


def test_the_loss_updates_the_target_batch_statistics_from_its_own_forward_pass():
  method, params, state, extra, batch = setup(f"{REPO}/configs/byol_mnist.py:tiny")
  _, (_, online_state, new_extra) = method.loss(params, state, extra, batch, jax.random.key(1),
                                                jnp.int32(0))
  assert jax.tree.structure(new_extra) == jax.tree.structure(extra)
  target_stats = jax.tree.leaves(new_extra["state"])
  online_stats = jax.tree.leaves({k: online_state[k] for k in ("encoder", "projector")})
  for new, old in zip(target_stats, jax.tree.leaves(extra["state"]), strict=True):
    assert not np.allclose(new, old)
  # The target's weights differ from the online ones, so its batch statistics do too.
  assert any(not np.allclose(t, o) for t, o in zip(target_stats, online_stats, strict=True))


def cosine_tau(step, total, base):
  return 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2


@pytest.mark.parametrize("step", [0, 2, 6])
def test_ema_update_follows_the_cosine_schedule(step):
  method, params, state, extra, _ = setup(f"{REPO}/configs/byol_mnist.py:tiny")
  online = jax.tree.map(lambda x: x + 0.5, params)
  tau = cosine_tau(step, method.config.total_steps, method.config.byol.base_momentum)
  new = method.update_extra(online, extra, jnp.int32(step))
  for part in ("encoder", "projector"):
    for t, o, got in zip(jax.tree.leaves(extra["params"][part]), jax.tree.leaves(online[part]),
                         jax.tree.leaves(new["params"][part]), strict=True):
      np.testing.assert_allclose(got, tau * np.asarray(t) + (1 - tau) * np.asarray(o),
                                 rtol=1e-6, atol=1e-7)
  assert new["state"] is extra["state"]


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(f"{REPO}/configs/byol_mnist.py:tiny"))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, results = train_and_evaluate(f"{REPO}/configs/byol_mnist.py:tiny", tmp_path)
  taus = [r["target_momentum"] for r in rows]
  np.testing.assert_allclose(taus, [cosine_tau(s, 4, 0.99) for s in range(4)], rtol=1e-6)
  assert all(-1 <= r["cosine_similarity"] <= 1 for r in rows)
  assert "projector_knn_top1" in results
