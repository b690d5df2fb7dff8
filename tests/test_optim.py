"""Optimizer assembly: schedule shape, decay masks, clipping, each named optimizer."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from sslax import optim


def cfg(**kw):
  base = dict(name="adamw", learning_rate=1.0, weight_decay=0.5, warmup_steps=10)
  return ml_collections.ConfigDict({**base, **kw})


def test_schedule_warms_up_linearly_then_follows_a_cosine():
  schedule = optim.learning_rate_schedule(cfg(end_lr_fraction=0.1), total_steps=110,
                                          batch_size=512)
  np.testing.assert_allclose([schedule(0), schedule(5), schedule(10)], [0.0, 0.5, 1.0], atol=1e-6)
  mid = 10 + 50  # Half-way through the decay: 0.1 + 0.9 * (1 + cos(pi/2)) / 2.
  np.testing.assert_allclose(schedule(mid), 0.55, atol=1e-6)
  np.testing.assert_allclose(schedule(110), 0.1, atol=1e-6)


def test_batch_scaling_of_the_peak():
  schedule = optim.learning_rate_schedule(cfg(lr_batch_scaling=True, warmup_steps=0), 100, 512)
  np.testing.assert_allclose(schedule(0), 2.0, atol=1e-6)


def test_weight_decay_skips_biases_and_norm_parameters():
  params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
            "bn": {"scale": jnp.ones(2)}}
  assert optim.decay_mask(params) == {"dense": {"kernel": True, "bias": False},
                                      "bn": {"scale": False}}
  # With zero gradients, only decay moves parameters: the kernel shrinks, the rest stays.
  tx, _ = optim.make_optimizer(cfg(warmup_steps=0), total_steps=10, batch_size=256)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert float(updates["dense"]["kernel"][0, 0]) == pytest.approx(-0.5)
  assert float(jnp.abs(updates["dense"]["bias"]).max()) == 0.0
  assert float(jnp.abs(updates["bn"]["scale"]).max()) == 0.0


@pytest.mark.parametrize("name", ["adamw", "lars", "lamb"])
def test_each_optimizer_reduces_a_quadratic(name):
  tx, _ = optim.make_optimizer(cfg(name=name, learning_rate=0.1, weight_decay=0.0, warmup_steps=0,
                                   trust_coefficient=0.05),
                               total_steps=200, batch_size=256)
  params = {"w": jnp.full((4, 4), 3.0)}
  state = tx.init(params)

  def loss(p):
    return jnp.sum(p["w"] ** 2)

  for _ in range(50):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < 0.5 * 16 * 9


def test_gradient_clipping_bounds_the_update():
  tx, _ = optim.make_optimizer(cfg(name="lars", grad_clip_norm=1.0, warmup_steps=0,
                                   weight_decay=0.0, learning_rate=1.0, trust_coefficient=1.0,
                                   momentum=0.0), 10, 256)
  params = {"b": jnp.zeros(4)}  # A vector: no trust ratio, so the update is -lr * clipped grad.
  updates, _ = tx.update({"b": jnp.full(4, 100.0)}, tx.init(params), params)
  np.testing.assert_allclose(float(optax.tree.norm(updates)), 1.0, rtol=1e-5)


def test_unknown_optimizer_names_the_choices():
  with pytest.raises(ValueError, match="choose adamw, lars or lamb"):
    optim.make_optimizer(cfg(name="sgdw"), 10, 256)


def test_weight_decay_ramps_on_a_cosine_and_is_applied_as_lr_times_wd():
  config = cfg(weight_decay=0.04, weight_decay_end=0.4, warmup_steps=0, learning_rate=0.1)
  wd = optim.weight_decay_schedule(config, total_steps=100)
  np.testing.assert_allclose([wd(0), wd(50), wd(100), wd(200)], [0.04, 0.22, 0.4, 0.4],
                             rtol=1e-6)
  # With a zero gradient AdamW's step is exactly -lr(step) * wd(step) * param.
  tx, schedule = optim.make_optimizer(config, total_steps=100, batch_size=256)
  params = {"w": jnp.full((2, 2), 3.0)}
  state = tx.init(params)
  zero = jax.tree.map(jnp.zeros_like, params)
  for _ in range(51):
    updates, state = tx.update(zero, state, params)
  np.testing.assert_allclose(updates["w"], -schedule(50) * wd(50) * 3.0, rtol=1e-5)
