"""Jigsaw puzzles: the permutation set, tiles and their shuffling, the loss against numpy."""
import itertools

import jax
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.methods import get_method
from sslax.methods.base import apply_module
from sslax.methods.jigsaw import (
  cut_tiles,
  max_hamming_permutations,
  shuffle_tiles,
  tile_offsets,
)

TINY = f"{REPO}/configs/jigsaw_mnist.py:tiny"


def pairwise_hamming(perms):
  return np.sum(perms[:, None, :] != perms[None, :, :], axis=-1)


def min_pairwise_hamming(perms):
  dist = pairwise_hamming(perms)
  return dist[~np.eye(len(perms), dtype=bool)].min()


def inverse(perms):
  return np.argsort(perms, axis=-1)


def numpy_cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -np.mean(log_prob[np.arange(len(labels)), labels])


def tiny_setup(batch_size=4, **jigsaw):
  config = config_lib.load_config(TINY)
  config.jigsaw.update(jigsaw)
  method = get_method(config)
  views = np.random.default_rng(0).normal(size=(batch_size, 30, 30, 1)).astype(np.float32)
  params, state, extra = method.init(jax.random.key(0), {"views": (views[:2],)})
  return method, views, params, state, extra


@pytest.mark.parametrize("size", [1, 2, 30, 100])
def test_permutation_set_is_distinct_valid_and_reproducible(size):
  perms = max_hamming_permutations(size, seed=3)
  assert perms.shape == (size, 9)
  np.testing.assert_array_equal(np.sort(perms, axis=1), np.tile(np.arange(9), (size, 1)))
  assert len({tuple(p) for p in perms}) == size
  np.testing.assert_array_equal(max_hamming_permutations(size, seed=3), perms)
  assert not np.array_equal(max_hamming_permutations(size, seed=4)[0], perms[0])


@pytest.mark.parametrize("size", [10, 30, 100])
def test_permutation_set_is_farther_apart_than_random_sets(size):
  greedy = min_pairwise_hamming(max_hamming_permutations(size, seed=0))
  for seed in range(5):
    rng = np.random.default_rng(seed)
    random_set = np.array([rng.permutation(9) for _ in range(size)])
    assert greedy >= min_pairwise_hamming(random_set)


def test_each_added_permutation_is_the_farthest_from_those_before_it():
  perms = max_hamming_permutations(8, seed=1)
  every = np.array(list(itertools.permutations(range(9))))
  for k in range(1, len(perms)):
    to_chosen = np.sum(every[:, None, :] != perms[None, :k, :], axis=-1)  # [9!, k]
    best_min = to_chosen.min(axis=1).max()
    assert pairwise_hamming(perms[:k + 1])[k, :k].min() == best_min


def test_permutation_set_size_is_checked():
  with pytest.raises(ValueError, match="num_permutations"):
    max_hamming_permutations(0, seed=0)


def test_tiles_are_the_windows_at_their_offsets_and_stay_in_their_cells():
  images = np.random.default_rng(0).normal(size=(3, 15, 15, 2)).astype(np.float32)
  offsets = np.asarray(tile_offsets(jax.random.key(0), 3, cell=5, tile=3))
  tiles = np.asarray(cut_tiles(images, offsets, 3))
  assert tiles.shape == (3, 9, 3, 3, 2)
  for b, t in itertools.product(range(3), range(9)):
    row, col = offsets[b, t]
    assert 5 * (t // 3) <= row <= 5 * (t // 3) + 2 and 5 * (t % 3) <= col <= 5 * (t % 3) + 2
    np.testing.assert_array_equal(tiles[b, t], images[b, row:row + 3, col:col + 3])
  assert len(np.unique(offsets % 5)) > 1  # The gaps between tiles are random.


def test_unshuffling_by_the_inverse_permutation_restores_the_tiles():
  rng = np.random.default_rng(1)
  tiles = rng.normal(size=(4, 9, 2, 2, 1)).astype(np.float32)
  perms = max_hamming_permutations(10, seed=0)[rng.integers(10, size=4)]
  shuffled = np.asarray(shuffle_tiles(tiles, perms))
  for b, i in itertools.product(range(4), range(9)):
    np.testing.assert_array_equal(shuffled[b, i], tiles[b, perms[b, i]])
  np.testing.assert_array_equal(shuffle_tiles(shuffled, inverse(perms)), tiles)


def test_puzzles_are_the_grid_tiles_in_the_order_of_their_permutation():
  # Tiles as large as their cells leave no room for jitter: the grid is known exactly.
  method, views, *_ = tiny_setup(batch_size=5, tile_size=10)
  puzzles, labels = method.puzzles(views, jax.random.key(7))
  grid = views.reshape(5, 3, 10, 3, 10, 1).transpose(0, 1, 3, 2, 4, 5).reshape(5, 9, 10, 10, 1)
  restored = shuffle_tiles(puzzles, inverse(method.permutations[np.asarray(labels)]))
  np.testing.assert_array_equal(restored, grid)
  assert np.all((0 <= labels) & (labels < len(method.permutations)))


def test_loss_is_the_cross_entropy_of_the_classifier_logits():
  method, views, params, state, extra = tiny_setup(batch_size=6)
  rng = jax.random.key(5)
  loss, (metrics, _, _) = method.loss(params, state, extra, {"views": (views,)}, rng,
                                      np.int32(0))
  puzzles, labels = method.puzzles(views, rng)
  logits, _ = method.logits(params, state, puzzles, train=True)
  assert logits.shape == (6, 10)
  np.testing.assert_allclose(float(loss), numpy_cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["jigsaw_accuracy"]),
                             np.mean(np.argmax(logits, axis=1) == labels))


def test_features_are_the_mean_encoding_of_the_centred_tiles():
  method, views, params, state, _ = tiny_setup(normalize_tiles=True)
  # Cells of 10 pixels, tiles of 8: each tile starts 1 pixel into its cell.
  tiles = np.stack([views[:, r + 1:r + 9, c + 1:c + 9] for r in (0, 10, 20) for c in (0, 10, 20)],
                   axis=1).reshape(-1, 8, 8, 1)
  mean = tiles.mean(axis=(1, 2, 3), keepdims=True)
  tiles = (tiles - mean) / np.sqrt(tiles.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
  encoded, _ = apply_module(method.encoder, params["encoder"], state["encoder"], tiles,
                            train=False)
  expected = np.asarray(encoded).reshape(len(views), 9, -1).mean(axis=1)
  np.testing.assert_allclose(method.features(params, state, views), expected, rtol=1e-4,
                             atol=1e-5)
  with pytest.raises(ValueError, match="feature levels"):
    method.features(params, state, views, level="classifier")


def test_normalised_features_ignore_brightness_and_contrast():
  method, views, params, state, _ = tiny_setup(normalize_tiles=True)
  feats = method.features(params, state, views)
  assert feats.shape == (4, 8)
  np.testing.assert_allclose(method.features(params, state, 3.0 * views - 1.0), feats,
                             rtol=1e-4, atol=1e-5)
  method, views, params, state, _ = tiny_setup(normalize_tiles=False)
  assert not np.allclose(method.features(params, state, 3.0 * views - 1.0),
                         method.features(params, state, views), rtol=1e-2)


@pytest.mark.parametrize("field,value,match", [("size", 31, "multiple of 3"),
                                               ("tile_size", 11, "fit")])
def test_bad_geometry_is_rejected(field, value, match):
  config = config_lib.load_config(TINY)
  if field == "size":
    config.data.augment.size = value
  else:
    config.jigsaw.tile_size = value
  with pytest.raises(ValueError, match=match):
    get_method(config)


def test_imagenet_config_has_the_papers_geometry():
  method = get_method(config_lib.load_config(f"{REPO}/configs/jigsaw_imagenet.py"))
  assert (method.cell, method.tile, method.permutations.shape) == (75, 64, (1000, 9))


def test_eight_devices_match_one():
  assert_eight_devices_match_one(config_lib.load_config(TINY))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path):
  rows, _ = train_and_evaluate(TINY, tmp_path)
  assert all(0.0 <= r["jigsaw_accuracy"] <= 1.0 for r in rows)
