"""Denoising autoencoder: Vincent, Larochelle, Bengio & Manzagol 2008, "Extracting and Composing
Robust Features with Denoising Autoencoders".

Each view is corrupted on device, encoded, and decoded back to the image; the loss is the mean
squared error to the clean view. Undoing the corruption makes the code capture how pixels depend
on each other (strokes, shapes) instead of copying them: the encoder pools globally and the
decoder has no skip connections, so the code is the only path from input to output.

Corruptions (`config.dae.corruption`), drawn from the step's rng so that 8 devices see what one
device sees:
  "gaussian": additive isotropic N(0, noise_std²) noise on the normalised view; every pixel is
    corrupted.
  "mask": the paper's masking noise. Exactly round(mask_fraction · n) of the n pixels of each
    image (or of its mask_block x mask_block blocks) are set to 0, which under the view's
    normalisation is the dataset mean: the value that tells nothing about the image. All channels
    of a pixel share its mask.
With `loss_on_corrupted_only` the MSE averages over corrupted pixels only (the extreme of the
"emphasised" denoising of Vincent et al. 2010); for gaussian noise that is every pixel.
"""
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.decoders import make_decoder

CORRUPTIONS = ("gaussian", "mask")


def random_positions(rng: jax.Array, batch: int, count: int, fraction: float) -> jax.Array:
  """bool [batch, count] with exactly round(fraction · count) True per row, uniformly placed.

  The positions are those of the k smallest of `count` uniforms (ranks via a double argsort, so
  ties cannot change k).
  """
  ranks = jnp.argsort(jnp.argsort(jax.random.uniform(rng, (batch, count)), axis=1), axis=1)
  return ranks < round(fraction * count)


def block_mask(rng: jax.Array, shape: tuple[int, ...], fraction: float,
               block: int) -> jax.Array:
  """float32 [B, H, W, 1], 1 on the masked pixels: `fraction` of each image's block x block
  blocks (blocks cut at the bottom and right edges when the size is not a multiple)."""
  b, h, w, _ = shape
  grid_h, grid_w = -(-h // block), -(-w // block)
  mask = random_positions(rng, b, grid_h * grid_w, fraction).reshape(b, grid_h, grid_w)
  mask = jnp.repeat(jnp.repeat(mask, block, axis=1), block, axis=2)
  return mask[:, :h, :w, None].astype(jnp.float32)


def corrupt(images: jax.Array, rng: jax.Array,
            cfg: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
  """(corrupted images, float32 [B, H, W, 1] mask of the corrupted pixels) for `cfg.corruption`."""
  if cfg["corruption"] == "gaussian":
    # A flat draw: XLA:CPU compiles a rank-4 threefry draw far more slowly (see he_normal_fan_out).
    noise = jax.random.normal(rng, (images.size,), jnp.float32).reshape(images.shape)
    return images + cfg["noise_std"] * noise, jnp.ones((*images.shape[:-1], 1), jnp.float32)
  mask = block_mask(rng, images.shape, cfg["mask_fraction"], cfg.get("mask_block", 1))
  return images * (1.0 - mask).astype(images.dtype), mask


def reconstruction_loss(recon: jax.Array, clean: jax.Array, corrupted: jax.Array,
                        corrupted_only: bool) -> tuple[jax.Array, jax.Array]:
  """(loss, MSE over all pixels): the loss is that MSE, or with `corrupted_only` the MSE over
  the pixels where `corrupted` [B, H, W, 1] is 1."""
  per_pixel = jnp.mean(jnp.square(recon.astype(jnp.float32) - clean.astype(jnp.float32)),
                       axis=-1, keepdims=True)
  mse = jnp.mean(per_pixel)
  if not corrupted_only:
    return mse, mse
  return jnp.sum(per_pixel * corrupted) / jnp.maximum(jnp.sum(corrupted), 1.0), mse


class Method:
  """config.dae.{corruption, noise_std, mask_fraction, mask_block, loss_on_corrupted_only};
  config.model.{encoder, decoder}; config.data.augment."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.corruption = dict(config.dae)
    if self.corruption["corruption"] not in CORRUPTIONS:
      raise ValueError(f"dae.corruption must be one of {CORRUPTIONS}, "
                       f"got {self.corruption['corruption']!r}")
    if not 0.0 <= self.corruption.get("mask_fraction", 0.0) <= 1.0:
      raise ValueError(f"dae.mask_fraction must be in [0, 1], "
                       f"got {self.corruption['mask_fraction']}")
    self.encoder = make_encoder(config.model.encoder)
    self.decoder = make_decoder(config.model.decoder)

  def views(self) -> list[Any]:
    return [self.config.data.augment]

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, dec_rng = jax.random.split(rng)
    x = batch["views"][0]
    encoder_vars = self.encoder.init(enc_rng, x, train=False)
    feats = self.encoder.apply(encoder_vars, x, train=False)
    decoder_vars = self.decoder.init(dec_rng, feats, x.shape[1:], train=False)
    enc_params, enc_state = split_variables(encoder_vars)
    dec_params, dec_state = split_variables(decoder_vars)
    return ({"encoder": enc_params, "decoder": dec_params},
            {"encoder": enc_state, "decoder": dec_state}, {})

  def reconstruct(self, params, model_state, images, train):
    """(decoder(encoder(images)), new model_state)."""
    feats, enc_state = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                                    images, train=train)
    recon, dec_state = apply_module(self.decoder, params["decoder"], model_state["decoder"],
                                    feats, images.shape[1:], train=train)
    return recon, {"encoder": enc_state, "decoder": dec_state}

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    clean = batch["views"][0]
    noisy, corrupted = corrupt(clean, rng, self.corruption)
    recon, new_state = self.reconstruct(params, model_state, noisy, train=True)
    loss, mse = reconstruction_loss(recon, clean, corrupted,
                                    self.corruption.get("loss_on_corrupted_only", False))
    return loss, ({"reconstruction_mse": mse}, new_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    del level  # Only the encoder's pooled features.
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    return feats.astype(jnp.float32)
