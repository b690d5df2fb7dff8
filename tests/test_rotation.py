"""RotNet: exact rotations and labels, the loss against numpy, batch-order invariance, devices."""
import jax
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.methods import get_method
from sslax.methods.base import apply_module
from sslax.methods.rotation import rotate_all

TINY = f"{REPO}/configs/rotation_mnist.py:tiny"


def numpy_cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -np.mean(log_prob[np.arange(len(labels)), labels])


def tiny_setup(batch_size=6):
  config = config_lib.load_config(TINY)
  method = get_method(config)
  images = np.random.default_rng(0).normal(size=(batch_size, 28, 28, 1)).astype(np.float32)
  params, state, extra = method.init(jax.random.key(0), {"views": (images[:2],)})
  return method, images, params, state, extra


def test_four_rotations_are_quarter_turns_with_their_labels():
  images = np.random.default_rng(1).normal(size=(3, 5, 5, 2)).astype(np.float32)
  rotated, labels = rotate_all(images)
  assert rotated.shape == (12, 5, 5, 2)
  np.testing.assert_array_equal(labels, np.repeat(np.arange(4), 3))
  for k in range(4):
    np.testing.assert_array_equal(rotated[3 * k:3 * (k + 1)], np.rot90(images, k, axes=(1, 2)))
  # Label 1 is a quarter turn counter-clockwise: the top-right pixel goes to the top-left.
  dot = np.zeros((1, 5, 5, 1), np.float32)
  dot[0, 0, 4, 0] = 1.0
  np.testing.assert_array_equal(np.argwhere(np.asarray(rotate_all(dot)[0][1, ..., 0])), [[0, 0]])


def test_non_square_views_are_rejected():
  with pytest.raises(ValueError, match="square"):
    rotate_all(np.zeros((2, 4, 6, 1), np.float32))


def test_loss_is_the_cross_entropy_of_the_classifier_logits():
  method, images, params, state, extra = tiny_setup()
  loss, (metrics, new_state, _) = method.loss(params, state, extra, {"views": (images,)},
                                              jax.random.key(1), np.int32(0))
  rotated = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])
  labels = np.repeat(np.arange(4), len(images))
  feats, _ = apply_module(method.encoder, params["encoder"], state["encoder"], rotated,
                          train=True)
  logits, _ = apply_module(method.classifier, params["classifier"], state["classifier"], feats,
                           train=True)
  assert logits.shape == (4 * len(images), 4)
  np.testing.assert_allclose(float(loss), numpy_cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["rotation_accuracy"]),
                             np.mean(np.argmax(logits, axis=1) == labels))
  # Training mode moved the batch-norm statistics.
  assert not np.allclose(jax.tree.leaves(new_state)[0], jax.tree.leaves(state)[0])


def test_loss_does_not_depend_on_the_order_of_the_batch():
  method, images, params, state, extra = tiny_setup()
  order = np.random.default_rng(2).permutation(len(images))

  def loss_and_state(x):
    loss, (_, new_state, _) = method.loss(params, state, extra, {"views": (x,)},
                                          jax.random.key(3), np.int32(0))
    return float(loss), new_state

  loss, new_state = loss_and_state(images)
  shuffled_loss, shuffled_state = loss_and_state(images[order])
  np.testing.assert_allclose(shuffled_loss, loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(shuffled_state), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_features_are_the_encoder_output_and_other_levels_are_rejected():
  method, images, params, state, _ = tiny_setup()
  feats = method.features(params, state, images)
  expected, _ = apply_module(method.encoder, params["encoder"], state["encoder"], images,
                             train=False)
  np.testing.assert_array_equal(feats, expected)
  with pytest.raises(ValueError, match="feature levels"):
    method.features(params, state, images, level="classifier")


def test_cifar10_config_builds_a_four_way_resnet18():
  method = get_method(config_lib.load_config(f"{REPO}/configs/rotation_cifar10.py"))
  views = np.zeros((2, 32, 32, 3), np.float32)
  params, _, _ = method.init(jax.random.key(0), {"views": (views,)})
  assert params["classifier"]["output_dense"]["kernel"].shape == (512, 4)


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(TINY))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, _ = train_and_evaluate(TINY, tmp_path)
  assert all(0.0 <= r["rotation_accuracy"] <= 1.0 for r in rows)
