"""BiGAN: the stop-gradient split gives each player its own loss's gradient, losses vs numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.data import pipeline, sources
from sslax.methods import bigan, get_method

EG_GROUPS = ("encoder", "to_latent", "generator")


def _config(update="simultaneous"):
  config = config_lib.load_config(f"{REPO}/configs/bigan_mnist.py:tiny")
  config.bigan.update = update
  return config


@pytest.fixture(scope="module")
def tiny_setup():
  """A batch of 16 digits and the (params, model_state, extra) of a tiny BiGAN.

  The generator's output conv gets random weights: at its zero init no gradient would reach the
  generator's inner layers, and the gradient checks would not cover them.
  """
  method = get_method(_config())
  source = sources.make_source(_config().data, "pretrain")
  batch = jax.tree.map(jnp.asarray, pipeline.train_dataset(source, method.views(), 16, 0)[0])
  params, state, extra = method.init(jax.random.key(0), batch)
  kernel = params["generator"]["output_conv"]["kernel"]
  kernel = 0.3 * np.random.default_rng(0).standard_normal(kernel.shape, dtype=np.float32)
  params = {**params, "generator": {**params["generator"], "output_conv": {"kernel": kernel}}}
  return batch, (params, state, extra)


def _pair_logits(method, params, d_params, state, batch, rng):
  """D's logits of the real pairs (x, E(x)) and of the generated pairs (G(z), z)."""
  x = batch["views"][0]
  z = method.latents(rng, x.shape[0])
  encoded, generated, _ = method.encode_and_generate(params, state, x, z)
  return method.discriminate(d_params, x, encoded), method.discriminate(d_params, generated, z)


def _softplus(x):
  return np.logaddexp(0.0, np.asarray(x, np.float64))


def test_losses_and_accuracies_match_numpy_from_the_logits(tiny_setup):
  batch, (params, state, extra) = tiny_setup
  method = get_method(_config())
  rng = jax.random.key(3)
  _, (metrics, _, _) = jax.jit(method.loss)(params, state, extra, batch, rng, jnp.int32(0))
  real, fake = map(np.asarray, _pair_logits(method, params, params["discriminator"], state,
                                            batch, rng))
  np.testing.assert_allclose(metrics["d_loss"],
                             _softplus(-real).mean() + _softplus(fake).mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["eg_loss"],
                             _softplus(real).mean() + _softplus(-fake).mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["d_real_accuracy"], np.mean(real > 0))
  np.testing.assert_allclose(metrics["d_fake_accuracy"], np.mean(fake < 0))


def test_loss_functions_match_numpy():
  real = np.array([-2.0, 0.0, 3.0, 40.0], np.float32)
  fake = np.array([1.0, -1.5, -30.0], np.float32)
  np.testing.assert_allclose(bigan.d_loss(real, fake),
                             np.mean(np.log1p(np.exp(-real.astype(np.float64))))
                             + np.mean(np.log1p(np.exp(fake.astype(np.float64)))), rtol=1e-6)
  np.testing.assert_allclose(bigan.eg_loss(real, fake), bigan.d_loss(-real, -fake), rtol=1e-6)


@pytest.fixture(scope="module")
def part_gradients(tiny_setup):
  """jax.grad of L_D w.r.t. D with E, G fixed, and of L_EG w.r.t. E, G with D fixed (rng 5)."""
  batch, (params, state, _) = tiny_setup
  method, rng = get_method(_config()), jax.random.key(5)

  def loss_d(d_params):
    return bigan.d_loss(*_pair_logits(method, params, d_params, state, batch, rng))

  def loss_eg(eg_params):
    return bigan.eg_loss(*_pair_logits(method, {**params, **eg_params}, params["discriminator"],
                                       state, batch, rng))

  eg_params = {k: params[k] for k in EG_GROUPS}
  return jax.jit(jax.grad(loss_d))(params["discriminator"]), jax.jit(jax.grad(loss_eg))(eg_params)


def _assert_trees_close(got, expected):
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def _assert_zero(tree):
  for leaf in jax.tree.leaves(tree):
    np.testing.assert_array_equal(leaf, 0.0)


@pytest.mark.parametrize("update,step", [("simultaneous", 0), ("simultaneous", 1),
                                         ("alternating", 0), ("alternating", 1)])
def test_the_total_gradient_is_each_players_own_loss_gradient(tiny_setup, part_gradients,
                                                               update, step):
  batch, (params, state, extra) = tiny_setup
  method = get_method(_config(update))

  def total(p, step):
    return method.loss(p, state, extra, batch, jax.random.key(5), step)[0]

  grads = jax.jit(jax.grad(total))(params, jnp.int32(step))
  grad_d, grad_eg = part_gradients
  for tree in (grad_d, *grad_eg.values()):  # Every network gets a gradient from its part.
    assert any(np.any(leaf != 0) for leaf in jax.tree.leaves(tree))
  d_turn = update == "simultaneous" or step % 2 == 0
  eg_turn = update == "simultaneous" or step % 2 == 1
  if d_turn:
    _assert_trees_close(grads["discriminator"], grad_d)
  else:
    _assert_zero(grads["discriminator"])
  if eg_turn:
    _assert_trees_close({k: grads[k] for k in EG_GROUPS}, grad_eg)
  else:
    _assert_zero({k: grads[k] for k in EG_GROUPS})


def test_without_the_stop_gradients_d_would_also_get_eg_s_gradient(tiny_setup, part_gradients):
  """The split matters: the plain sum L_D + L_EG gives D a different gradient from L_D's."""
  batch, (params, state, _) = tiny_setup
  method = get_method(_config())

  def plain_sum(d_params):
    logits = _pair_logits(method, params, d_params, state, batch, jax.random.key(5))
    return bigan.d_loss(*logits) + bigan.eg_loss(*logits)

  grad_d, _ = part_gradients
  plain = jax.grad(plain_sum)(params["discriminator"])
  assert not np.allclose(plain["output_dense"]["bias"], grad_d["output_dense"]["bias"])


def test_alternating_loss_is_d_s_on_even_and_eg_s_on_odd_steps(tiny_setup):
  batch, (params, state, extra) = tiny_setup
  method = get_method(_config("alternating"))
  loss = jax.jit(method.loss)
  for step in (0, 1, 2, 3):
    value, (metrics, _, _) = loss(params, state, extra, batch, jax.random.key(1), jnp.int32(step))
    np.testing.assert_allclose(value, metrics["eg_loss" if step % 2 else "d_loss"], rtol=1e-6)


def test_latents_are_standard_normal_and_features_the_encoder_trunk(tiny_setup):
  batch, (params, state, _) = tiny_setup
  method = get_method(_config())
  z = np.asarray(method.latents(jax.random.key(0), 4096))
  assert z.shape == (4096, 4)
  assert np.all(np.abs(z.mean(axis=0)) < 0.06) and np.all(np.abs(z.std(axis=0) - 1) < 0.04)
  feats = method.features(params, state, batch["views"][0])
  assert feats.shape == (16, 8)  # The trunk's width, before the map to the 4-d latent.


@pytest.mark.parametrize("latent_bn", [True, False])
def test_latent_bn_standardises_each_latent_dimension_over_the_batch(tiny_setup, latent_bn):
  batch, _ = tiny_setup
  config = _config()
  config.bigan.latent_bn = latent_bn
  method = get_method(config)
  params, state, _ = method.init(jax.random.key(0), batch)
  encoded, _, new_state = method.encode_and_generate(params, state, batch["views"][0],
                                                     jnp.zeros((16, 4)))
  # Variance var / (var + 1e-5): BN's epsilon counts against the tiny model's small variances.
  standardised = (np.allclose(encoded.mean(axis=0), 0.0, atol=1e-5)
                  and np.allclose(encoded.var(axis=0), 1.0, atol=0.02))
  assert standardised == latent_bn
  assert ("batch_stats" in new_state["to_latent"]) == latent_bn


def test_unknown_update_is_rejected():
  with pytest.raises(ValueError, match="bigan.update"):
    get_method(_config("sequential"))


def test_cifar10_recipe_traces_with_a_200_d_latent():
  method = get_method(config_lib.load_config(f"{REPO}/configs/bigan_cifar10.py"))
  batch = {"views": (jnp.zeros((4, 32, 32, 3)),)}
  params, state, extra = jax.eval_shape(method.init, jax.random.key(0), batch)
  loss, _ = jax.eval_shape(method.loss, params, state, extra, batch, jax.random.key(1),
                           jnp.int32(0))
  encoded, generated, _ = jax.eval_shape(method.encode_and_generate, params, state,
                                         batch["views"][0], jnp.zeros((4, 200)))
  assert loss.shape == () and encoded.shape == (4, 200) and generated.shape == (4, 32, 32, 3)
  assert jax.eval_shape(method.features, params, state, batch["views"][0]).shape == (4, 512)


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_eight_devices_match_one(update):
  assert_eight_devices_match_one(_config(update))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, _ = train_and_evaluate(f"{REPO}/configs/bigan_mnist.py:tiny", tmp_path)
  for row in rows:
    assert 0.0 <= row["d_real_accuracy"] <= 1.0 and np.isfinite(row["d_loss"] + row["eg_loss"])
