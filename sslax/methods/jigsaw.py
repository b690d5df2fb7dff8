"""Jigsaw puzzles: Noroozi & Favaro 2016, "Unsupervised Learning of Visual Representations by
Solving Jigsaw Puzzles".

Each view is cut into a 3x3 grid of cells and a tile smaller than its cell is taken at a random
position inside every cell, so neighbouring tiles are separated by a random gap and the network
cannot solve the puzzle by matching edges or continuing lines across them (the paper: 64x64 tiles
in the 75x75 cells of a 225x225 crop). The 9 tiles are shuffled by one permutation of a fixed set,
each tile goes through the shared encoder (a siamese network), the 9 features are concatenated in
the shuffled order and an MLP classifies which permutation of the set was applied. With
`normalize_tiles` each tile is standardised on its own (the paper's guard against matching tiles
by their mean and contrast).

The permutation set is chosen greedily for large Hamming distances between its members, since the
paper found that the farther apart the permutations, the harder the task and the better the
features. The paper's Algorithm 1 scores a candidate by its summed distance to the chosen set;
here the score is its minimum distance to the set, with the summed distance breaking ties, which
optimises the set's minimum distance first and is a pure function of (size, seed).

Evaluation features are the mean of the encoder's features of the 9 tiles of the eval view, cut
at the centres of their cells. The encoder only ever sees tiles (small, zero-padded at their
borders, standardised one by one), so tiles are the input it has learned to describe; the whole
image is another distribution (where a last-layer unit saw a tile and zero padding in training,
it sees the surrounding digit, and the batch-norm statistics are the tiles'), so whole-image
features mostly measure how that shift hurts. The mean, unlike a concatenation of the 9
features, gives the probe no 3x3 layout of the digit: a layout helps a random-init encoder as
much as a trained one and says nothing about what was learned. configs/jigsaw_mnist.py reports
all three measurements.
"""
import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead

GRID = 3
NUM_TILES = GRID * GRID


@functools.cache
def _all_permutations() -> np.ndarray:
  """Every permutation of the 9 tiles as columns, [9, 9!] uint8, lexicographic (read-only).

  Position-major, so a Hamming distance to all of them is 9 contiguous row comparisons.
  """
  perms = np.array(list(itertools.permutations(range(NUM_TILES))), np.uint8).T.copy()
  perms.flags.writeable = False
  return perms


def max_hamming_permutations(num_permutations: int, seed: int) -> np.ndarray:
  """[num_permutations, 9] distinct permutations of 0..8 chosen greedily far apart.

  Starts from a permutation drawn with `seed`, then repeatedly adds the candidate whose minimum
  Hamming distance to the chosen ones is largest (ties: largest summed distance, then first in
  lexicographic order). A chosen permutation is at distance 0 from itself, so it never returns.
  """
  candidates = _all_permutations()
  total = candidates.shape[1]
  if not 1 <= num_permutations <= total:
    raise ValueError(f"num_permutations={num_permutations} must lie in [1, {total}]")
  chosen = [int(np.random.default_rng(seed).integers(total))]
  min_dist = np.full(total, NUM_TILES, np.uint8)
  sum_dist = np.zeros(total, np.int32)
  for _ in range(num_permutations - 1):
    newest = candidates[:, chosen[-1]]
    dist = np.add.reduce(candidates != newest[:, None], axis=0, dtype=np.uint8)
    np.minimum(min_dist, dist, out=min_dist)
    sum_dist += dist
    farthest = min_dist == min_dist.max()
    chosen.append(int(np.argmax(np.where(farthest, sum_dist, -1))))
  return candidates[:, chosen].T.astype(np.int32)


def _cell_corners(cell: int) -> jax.Array:
  """[9, 2] (row, col) top-left corners of the grid's cells, in row-major order."""
  grid = jnp.stack(jnp.meshgrid(jnp.arange(GRID), jnp.arange(GRID), indexing="ij"), -1)
  return cell * grid.reshape(NUM_TILES, 2)


def tile_offsets(rng: jax.Array, batch: int, cell: int, tile: int) -> jax.Array:
  """[batch, 9, 2] (row, col) top-left corners: each tile at a uniform position in its cell."""
  return _cell_corners(cell) + jax.random.randint(rng, (batch, NUM_TILES, 2), 0, cell - tile + 1)


def cut_tiles(images: jax.Array, offsets: jax.Array, tile: int) -> jax.Array:
  """images [B, H, W, C], offsets [B, 9, 2] -> tiles [B, 9, tile, tile, C] in row-major order."""
  span = jnp.arange(tile)
  rows = offsets[:, :, 0, None] + span  # [B, 9, tile]
  cols = offsets[:, :, 1, None] + span
  batch = jnp.arange(images.shape[0])[:, None, None, None]
  return images[batch, rows[:, :, :, None], cols[:, :, None, :]]


def shuffle_tiles(tiles: jax.Array, perms: jax.Array) -> jax.Array:
  """tiles [B, 9, ...], perms [B, 9] -> out[b, i] = tiles[b, perms[b, i]]."""
  index = perms.reshape(perms.shape + (1,) * (tiles.ndim - 2))
  return jnp.take_along_axis(tiles, index, axis=1)


def standardize(x: jax.Array, axes: tuple[int, ...], eps: float = 1e-5) -> jax.Array:
  """(x - mean) / sqrt(var + eps) over `axes`: a blank tile becomes zeros, not noise."""
  mean = jnp.mean(x, axis=axes, keepdims=True)
  return (x - mean) / jnp.sqrt(jnp.var(x, axis=axes, keepdims=True) + eps)


class Method:
  """config.jigsaw.{num_permutations, tile_size, normalize_tiles}; config.model.{encoder,
  tile_head, classifier}; config.data.augment (one view, its size a multiple of 3); config.seed
  picks the permutation set."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    cfg = config.jigsaw
    size = config.data.augment["size"]
    if size % GRID:
      raise ValueError(f"jigsaw cuts a {GRID}x{GRID} grid: data.augment.size={size} must be a "
                       f"multiple of {GRID}")
    self.cell = size // GRID
    self.tile = int(cfg.tile_size)
    if not 0 < self.tile <= self.cell:
      raise ValueError(f"jigsaw.tile_size={self.tile} must fit its {self.cell}-pixel cell")
    self.normalize_tiles = bool(cfg.normalize_tiles)
    self.permutations = max_hamming_permutations(int(cfg.num_permutations), int(config.seed))
    self.encoder = make_encoder(config.model.encoder)
    dtype = jnp.dtype(config.model.encoder.get("dtype", "float32"))
    # The paper's fc6: a per-tile layer of the siamese branch, so the puzzle-specific code lives
    # above the encoder that is evaluated.
    self.tile_head = MLPHead(hidden_dims=tuple(config.model.tile_head.hidden_dims),
                             out_dim=config.model.tile_head.out_dim, dtype=dtype)
    self.classifier = MLPHead(hidden_dims=tuple(config.model.classifier.hidden_dims),
                              out_dim=len(self.permutations), dtype=dtype)

  def views(self) -> list[Any]:
    return [self.config.data.augment]

  def _tiles_input(self, tiles: jax.Array) -> jax.Array:
    """[B, 9, T, T, C] -> [9B, T, T, C] encoder input, each tile standardised if configured."""
    tiles = tiles.reshape(-1, *tiles.shape[2:])
    return standardize(tiles, (1, 2, 3)) if self.normalize_tiles else tiles

  def puzzles(self, view: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """view [B, S, S, C] -> (shuffled tiles [B, 9, T, T, C], permutation indices [B])."""
    offset_rng, perm_rng = jax.random.split(rng)
    tiles = cut_tiles(view, tile_offsets(offset_rng, view.shape[0], self.cell, self.tile),
                      self.tile)
    labels = jax.random.randint(perm_rng, (view.shape[0],), 0, len(self.permutations))
    return shuffle_tiles(tiles, jnp.asarray(self.permutations)[labels]), labels

  def logits(self, params, model_state, tiles, train):
    """tiles [B, 9, T, T, C] in puzzle order -> (permutation logits [B, P], new model_state)."""
    new_state = {}
    x = self._tiles_input(tiles)
    for name, module in (("encoder", self.encoder), ("tile_head", self.tile_head)):
      x, new_state[name] = apply_module(module, params[name], model_state[name], x, train=train)
    x = x.reshape(tiles.shape[0], -1)  # The 9 tile codes, concatenated in puzzle order.
    logits, new_state["classifier"] = apply_module(
        self.classifier, params["classifier"], model_state["classifier"], x, train=train)
    return logits.astype(jnp.float32), new_state

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    view = batch["views"][0]
    x = self._tiles_input(
        cut_tiles(view, jnp.zeros((view.shape[0], NUM_TILES, 2), jnp.int32), self.tile))
    params, state = {}, {}
    modules = (("encoder", self.encoder), ("tile_head", self.tile_head),
               ("classifier", self.classifier))
    for (name, module), key in zip(modules, jax.random.split(rng, len(modules)), strict=True):
      if name == "classifier":
        x = x.reshape(view.shape[0], -1)
      variables = module.init(key, x, train=False)
      x = module.apply(variables, x, train=False)
      params[name], state[name] = split_variables(variables)
    return params, state, {}

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    puzzles, labels = self.puzzles(batch["views"][0], rng)
    logits, model_state = self.logits(params, model_state, puzzles, train=True)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    metrics = {"jigsaw_accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == labels)}
    return loss, (metrics, model_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  # The permutation logits answer the puzzle and the tile head codes a tile's place in it; only
  # the encoder is a representation of the image.
  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    if level != "encoder":
      raise ValueError(f"jigsaw has feature levels {self.feature_levels}, not {level!r}")
    n = images.shape[0]
    centred = jnp.broadcast_to(_cell_corners(self.cell) + (self.cell - self.tile) // 2,
                               (n, NUM_TILES, 2))
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                            self._tiles_input(cut_tiles(images, centred, self.tile)),
                            train=False)
    return jnp.mean(feats.reshape(n, NUM_TILES, -1), axis=1, dtype=jnp.float32)
