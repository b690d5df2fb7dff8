"""MoCo v3: the loss against numpy on the networks' own outputs, the momentum encoder, 8 == 1."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import assert_eight_devices_match_one, train_and_evaluate
from test_byol import cosine_tau, predictions_and_targets, setup, unit

from sslax import config as config_lib

REPO = __file__.rsplit("/tests/", 1)[0]
TINY = f"{REPO}/configs/moco_v3_mnist.py:tiny"


def info_nce_reference(q, k, temperature):
  """Cross-entropy of row i of q·kᵀ/T (unit vectors) against column i, averaged over rows."""
  logits = unit(q) @ unit(k).T / temperature
  log_z = np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), axis=1)) + logits.max(1)
  return np.mean(log_z - np.diagonal(logits))


@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_loss_at_init_matches_numpy(temperature):
  method, params, state, extra, batch = setup(TINY, **{"moco_v3.temperature": temperature})
  q, k = predictions_and_targets(method, params, state, extra, batch)
  n = len(q) // 2
  expected = 2 * temperature * (info_nce_reference(q[:n], k[n:], temperature)
                                + info_nce_reference(q[n:], k[:n], temperature))
  loss, (metrics, _, _) = method.loss(params, state, extra, batch, jax.random.key(1),
                                      jnp.int32(0))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  top1 = [np.mean(np.argmax(unit(a) @ unit(b).T, axis=1) == np.arange(n))
          for a, b in ((q[:n], k[n:]), (q[n:], k[:n]))]
  np.testing.assert_allclose(float(metrics["contrastive_top1"]), np.mean(top1), atol=1e-6)
  np.testing.assert_allclose(float(metrics["target_momentum"]),
                             method.config.moco_v3.base_momentum, rtol=1e-7)


def test_the_projector_ends_in_a_batch_norm_without_affine_parameters():
  method, params, state, _, _ = setup(TINY)
  assert "output_bn" not in params["projector"]
  assert set(state["projector"]["batch_stats"]["output_bn"]) == {"mean", "var"}
  assert "bias" not in params["projector"]["output_dense"]


def test_the_momentum_encoder_is_no_parameter_and_gets_no_gradient():
  method, params, state, extra, batch = setup(TINY)
  assert set(params) == {"encoder", "projector", "predictor"}

  def loss_of_target(target):
    return method.loss(params, state, {**extra, "params": target}, batch, jax.random.key(1),
                       jnp.int32(0))[0]

  grads = jax.grad(loss_of_target)(extra["params"])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("step", [0, 4])
def test_momentum_update_follows_the_cosine_schedule(step):
  method, params, _, extra, _ = setup(TINY)
  online = jax.tree.map(lambda x: x - 0.25, params)
  tau = cosine_tau(step, method.config.total_steps, method.config.moco_v3.base_momentum)
  new = method.update_extra(online, extra, jnp.int32(step))
  expected = jax.tree.map(lambda t, o: tau * np.asarray(t) + (1 - tau) * np.asarray(o),
                          extra["params"], {k: online[k] for k in ("encoder", "projector")})
  for got, want in zip(jax.tree.leaves(new["params"]), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(TINY))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, results = train_and_evaluate(TINY, tmp_path)
  taus = [r["target_momentum"] for r in rows]
  np.testing.assert_allclose(taus, [cosine_tau(s, 4, 0.99) for s in range(4)], rtol=1e-6)
  assert all(0 <= r["contrastive_top1"] <= 1 for r in rows)
  assert "projector_knn_top1" in results
