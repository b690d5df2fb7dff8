"""Denoising autoencoder: the corruption the config asks for, the loss against numpy, 8 == 1."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.data import pipeline, sources
from sslax.methods import dae, get_method


def _images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_mask_zeroes_exactly_the_configured_fraction_of_pixels_in_every_channel(fraction):
  images = _images((8, 28, 28, 3))
  noisy, mask = dae.corrupt(images, jax.random.key(1),
                            {"corruption": "mask", "mask_fraction": fraction})
  noisy, mask, images = np.asarray(noisy), np.asarray(mask), np.asarray(images)
  assert mask.shape == (8, 28, 28, 1)
  np.testing.assert_array_equal(mask.sum(axis=(1, 2, 3)), round(fraction * 784))
  hidden = np.broadcast_to(mask == 1, images.shape)
  np.testing.assert_array_equal(noisy[hidden], 0.0)
  np.testing.assert_array_equal(noisy[~hidden], images[~hidden])


def test_block_mask_hides_whole_aligned_blocks_at_random_places():
  images = _images((16, 28, 28, 1))
  cfg = {"corruption": "mask", "mask_fraction": 0.3, "mask_block": 4}
  _, mask = dae.corrupt(images, jax.random.key(2), cfg)
  blocks = np.asarray(mask)[..., 0].reshape(16, 7, 4, 7, 4)
  # Each 4x4 block is all masked or all kept, and 15 of the 49 blocks (round(0.3 * 49)) are.
  assert np.all(blocks.min(axis=(2, 4)) == blocks.max(axis=(2, 4)))
  np.testing.assert_array_equal(blocks[:, :, 0, :, 0].sum(axis=(1, 2)), 15)
  assert len({tuple(m.ravel()) for m in blocks[:, :, 0, :, 0]}) == 16  # Per-image positions.
  _, other = dae.corrupt(images, jax.random.key(3), cfg)
  assert not np.array_equal(mask, other)


def test_block_mask_cuts_the_last_blocks_at_the_edge():
  mask = np.asarray(dae.block_mask(jax.random.key(0), (4, 10, 10, 1), 1.0, 4))
  np.testing.assert_array_equal(mask, 1.0)  # 3x3 blocks of 4 cover 12x12, cut to 10x10.


def test_gaussian_noise_has_the_configured_std_and_marks_every_pixel():
  images = _images((16, 28, 28, 1))
  noisy, mask = dae.corrupt(images, jax.random.key(4), {"corruption": "gaussian",
                                                       "noise_std": 0.3})
  noise = np.asarray(noisy - images).ravel()
  # 12,544 draws: the std estimate's standard error is 0.6%, the mean's 0.003.
  assert abs(noise.std() - 0.3) < 0.02 and abs(noise.mean()) < 0.015
  assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05  # Independent per pixel.
  np.testing.assert_array_equal(mask, 1.0)


@pytest.fixture(scope="module")
def tiny_setup():
  """A tiny DAE, its initial state and a batch of 16 digits."""
  config = config_lib.load_config(f"{REPO}/configs/dae_mnist.py:tiny")
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  batch = pipeline.train_dataset(source, method.views(), 16, seed=0)[0]
  batch = jax.tree.map(jnp.asarray, batch)
  params, state, extra = method.init(jax.random.key(0), batch)
  return config, method, batch, params, state, extra


@pytest.mark.parametrize("corruption", [
    {"corruption": "mask", "mask_fraction": 0.4, "mask_block": 2, "loss_on_corrupted_only": False},
    {"corruption": "mask", "mask_fraction": 0.4, "mask_block": 1, "loss_on_corrupted_only": True},
    {"corruption": "gaussian", "noise_std": 0.5},
])
def test_loss_is_the_numpy_mse_of_the_models_own_reconstruction(tiny_setup, corruption):
  config, _, batch, params, state, extra = tiny_setup
  config = config.copy_and_resolve_references()
  config.dae = corruption
  method = get_method(config)
  rng = jax.random.key(7)
  # Random output weights: the zero-initialised output conv would make the reconstruction 0.
  kernel = params["decoder"]["output_conv"]["kernel"]
  kernel = 0.3 * np.random.default_rng(0).standard_normal(kernel.shape, dtype=np.float32)
  params = {**params, "decoder": {**params["decoder"], "output_conv": {"kernel": kernel}}}
  loss, (metrics, new_state, _) = jax.jit(method.loss)(params, state, extra, batch, rng,
                                                      jnp.int32(0))
  clean = np.asarray(batch["views"][0], np.float64)
  noisy, mask = dae.corrupt(batch["views"][0], rng, corruption)
  recon, _ = method.reconstruct(params, state, noisy, train=True)
  squared = (np.asarray(recon, np.float64) - clean) ** 2
  np.testing.assert_allclose(metrics["reconstruction_mse"], squared.mean(), rtol=1e-5)
  if corruption.get("loss_on_corrupted_only"):
    hidden = np.broadcast_to(np.asarray(mask) == 1, squared.shape)
    expected = squared[hidden].mean()
    assert not np.isclose(expected, squared.mean(), rtol=1e-3)  # The two modes differ here.
  else:
    expected = squared.mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # Training mode updated the batch-norm statistics of both networks.
  for part in ("encoder", "decoder"):
    assert not np.allclose(jax.tree.leaves(new_state[part])[0], jax.tree.leaves(state[part])[0])


def test_features_are_the_encoders_pooled_output_of_the_clean_image(tiny_setup):
  _, method, batch, params, state, _ = tiny_setup
  feats = method.features(params, state, batch["views"][0])
  expected = method.encoder.apply({"params": params["encoder"], **state["encoder"]},
                                  batch["views"][0], train=False)
  assert feats.shape == (16, 8)
  np.testing.assert_allclose(feats, expected, rtol=1e-6)


def test_unknown_corruption_is_rejected():
  config = config_lib.load_config(f"{REPO}/configs/dae_mnist.py:tiny")
  config.dae.corruption = "salt"
  with pytest.raises(ValueError, match="dae.corruption"):
    get_method(config)


def test_cifar10_recipe_traces_with_resnet18_features():
  method = get_method(config_lib.load_config(f"{REPO}/configs/dae_cifar10.py"))
  batch = {"views": (jnp.zeros((4, 32, 32, 3)),)}
  params, state, extra = jax.eval_shape(method.init, jax.random.key(0), batch)
  loss, _ = jax.eval_shape(method.loss, params, state, extra, batch, jax.random.key(1),
                           jnp.int32(0))
  recon, _ = jax.eval_shape(functools.partial(method.reconstruct, train=True), params, state,
                            batch["views"][0])
  assert loss.shape == () and recon.shape == (4, 32, 32, 3)
  assert jax.eval_shape(method.features, params, state, batch["views"][0]).shape == (4, 512)


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(f"{REPO}/configs/dae_mnist.py:tiny"))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, _ = train_and_evaluate(f"{REPO}/configs/dae_mnist.py:tiny", tmp_path)
  assert all(0.0 < r["reconstruction_mse"] for r in rows)
