"""Tests for MAE: the per-image masks, the decoder's unshuffling, the loss against numpy, the
encoder's blindness to hidden patches, 8 devices == 1, and train + evaluate end to end."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method
from sslax.methods.mae import Decoder, random_masking
from sslax.models.vit import sincos_pos_embed

TINY = f"{REPO}/configs/mae_mnist.py:tiny"


@pytest.fixture(scope="module")
def tiny():
  """(config, method, params, images [16, 28, 28, 1]) of the :tiny recipe (7x7 patches: a 4x4
  grid, 4 kept of 16)."""
  config = config_lib.load_config(TINY)
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  images = pipeline.train_dataset(source, method.views(), 16, seed=0)[0]["views"][0]
  params, _, _ = jax.jit(method.init)(jax.random.key(0), {"views": (images,)})
  return config, method, params, jnp.asarray(images)


@pytest.fixture(scope="module")
def reconstruct(tiny):
  """The tiny method's `reconstruct`, compiled once for the tests that share it."""
  return jax.jit(tiny[1].reconstruct)


def test_mask_keeps_the_right_count_and_differs_between_images():
  batch, n, ratio = 32, 49, 0.75
  ids_keep, ids_restore, mask = jax.device_get(random_masking(jax.random.key(3), batch, n, ratio))
  keep = int(n * (1 - ratio))  # 12, as MAE rounds down.
  assert ids_keep.shape == (batch, keep) and ids_restore.shape == mask.shape == (batch, n)
  np.testing.assert_array_equal(mask.sum(axis=1), n - keep)
  for b in range(batch):
    assert len(set(ids_keep[b])) == keep and not mask[b, ids_keep[b]].any()
    np.testing.assert_array_equal(np.sort(ids_restore[b]), np.arange(n))
    np.testing.assert_array_equal(ids_restore[b, ids_keep[b]], np.arange(keep))
  assert len({m.tobytes() for m in mask}) == batch
  other = jax.device_get(random_masking(jax.random.key(4), batch, n, ratio)[2])
  assert not np.array_equal(other, mask)
  with pytest.raises(ValueError, match="keeps 0 of 4"):
    random_masking(jax.random.key(0), 2, 4, 0.9)


def _layer_norm(x):
  return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)


def test_decoder_puts_tokens_back_in_image_order():
  """Without blocks, the decoder's output for patch n is a function of what lands at slot n: the
  embedded visible latent of rank ids_restore[n], or the mask token, plus position n."""
  decoder = Decoder(hidden_dim=8, depth=0, num_heads=2, mlp_dim=8)
  rng = np.random.default_rng(0)
  latent = rng.standard_normal((2, 1 + 2, 4)).astype(np.float32)  # CLS + 2 kept of 6 patches.
  ids_restore = np.array([[3, 0, 5, 1, 2, 4], [0, 2, 3, 4, 5, 1]])
  params = jax.jit(decoder.init, static_argnums=(3, 4))(
      jax.random.key(0), latent, ids_restore, (2, 3), 5)["params"]
  pred = jax.jit(decoder.apply, static_argnums=(3, 4))(
      {"params": params}, latent, ids_restore, (2, 3), 5)
  p = jax.tree.map(np.asarray, params)
  embedded = latent @ p["embed"]["kernel"] + p["embed"]["bias"]
  pos = sincos_pos_embed(2, 3, 8)
  for b in range(2):
    for n in range(6):
      rank = ids_restore[b, n]
      token = embedded[b, 1 + rank] if rank < 2 else p["mask_token"][0, 0]
      expected = _layer_norm(token + pos[n]) @ p["pred"]["kernel"] + p["pred"]["bias"]
      np.testing.assert_allclose(pred[b, n], expected, rtol=1e-4, atol=1e-5)


def test_loss_matches_numpy_on_the_models_own_outputs(tiny, reconstruct):
  config, method, params, images = tiny
  rng = jax.random.key(7)
  loss, (metrics, _, _) = jax.jit(method.loss)(params, {}, {}, {"views": (images,)}, rng,
                                               jnp.int32(0))
  pred, target, mask = jax.device_get(reconstruct(params, images, rng))
  x = np.asarray(images)
  # Patch (i, j) of the 4x4 grid, flattened row by row.
  np.testing.assert_array_equal(target[:, 1 * 4 + 2], x[:, 7:14, 14:21].reshape(16, -1))
  assert config.mae.norm_pix
  mean, std = target.mean(-1, keepdims=True), np.sqrt(target.var(-1, keepdims=True) + 1e-6)
  per_patch = ((pred - (target - mean) / std) ** 2).mean(-1)
  np.testing.assert_allclose(loss, (per_patch * mask).sum() / mask.sum(), rtol=1e-5)
  pixel = ((pred * std + mean - target) ** 2).mean(-1)
  np.testing.assert_allclose(metrics["reconstruction_mse"], (pixel * mask).sum() / mask.sum(),
                             rtol=1e-5)
  np.testing.assert_array_equal(mask.sum(1), 12)


def test_encoder_sees_only_the_kept_patches(tiny, reconstruct):
  """Changing the pixels of hidden patches changes the targets but none of the predictions."""
  _, _, params, images = tiny
  rng = jax.random.key(1)
  pred, target, mask = reconstruct(params, images, rng)
  hidden = np.repeat(np.repeat(np.asarray(mask).reshape(16, 4, 4), 7, 1), 7, 2)[..., None]
  noisy = images + hidden * np.random.default_rng(0).standard_normal(images.shape, np.float32)
  pred2, target2, mask2 = reconstruct(params, noisy, rng)
  np.testing.assert_array_equal(mask2, mask)
  assert not np.allclose(target2, target)
  np.testing.assert_allclose(pred2, pred, rtol=1e-5, atol=1e-6)


def test_features_encode_every_patch(tiny):
  _, method, params, images = tiny
  feats = jax.jit(method.features)(params, {}, images)
  assert feats.shape == (16, 16) and feats.dtype == jnp.float32
  np.testing.assert_allclose(feats, method.encoder.apply({"params": params["encoder"]}, images,
                                                         train=False), rtol=1e-5, atol=1e-6)
  assert method.feature_levels == ("encoder",)


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(TINY))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, _ = train_and_evaluate(TINY, tmp_path)
  assert all(0 < r["reconstruction_mse"] for r in rows)
