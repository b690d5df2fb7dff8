"""MAE: He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners".

Each image's patches are shuffled by a random permutation drawn on device; the ViT encoder sees
only the first (1 - mask_ratio) of them (75% masked in the paper), with their position
embeddings. A light decoder gets the encoded visible tokens plus a shared learned mask token for
every hidden patch, put back in image order with fixed sin-cos positions, and predicts each
patch's pixels. The loss is the mean squared error on the hidden patches only, against targets
normalised per patch (`norm_pix`, the paper's default, which it found to give better features).
Encoding a quarter of the tokens is what makes MAE cheap: the encoder, the large part, costs
about a quarter of a full pass.
"""
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax.typing import Array, Dtype

from sslax import losses
from sslax.models import VisionTransformer, dense, make_encoder
from sslax.models.vit import Block, patchify, sincos_pos_embed

_dense = partial(nn.Dense, param_dtype=jnp.float32,
                 kernel_init=nn.initializers.xavier_uniform(), dot_general=dense.dot_general)


def random_masking(rng: jax.Array, batch: int, num_patches: int,
                   mask_ratio: float) -> tuple[Array, Array, Array]:
  """(ids_keep [B, k], ids_restore [B, N], mask [B, N]) for an independent mask per image.

  Patches are ranked by uniform noise; the k = int(N * (1 - mask_ratio)) lowest are kept.
  ids_restore[b, n] is patch n's rank, so mask = 1 (hidden) exactly where the rank is >= k.
  """
  keep = int(num_patches * (1 - mask_ratio))
  if not 0 < keep < num_patches:
    raise ValueError(f"mask_ratio={mask_ratio} keeps {keep} of {num_patches} patches; "
                     "it must keep at least one and hide at least one")
  ids_shuffle = jnp.argsort(jax.random.uniform(rng, (batch, num_patches)), axis=1)
  ids_restore = jnp.argsort(ids_shuffle, axis=1)
  return ids_shuffle[:, :keep], ids_restore, (ids_restore >= keep).astype(jnp.float32)


def pixel_mse(pred: Array, target: Array, mask: Array, norm_pix: bool) -> Array:
  """Mean squared error in pixel space on hidden patches, for reporting.

  With `norm_pix` the predictions live in per-patch normalised units; they are mapped back with
  each target patch's mean and standard deviation (as MAE's visualisations do), so runs with and
  without `norm_pix` report comparable numbers.
  """
  target = target.astype(jnp.float32)
  pred = pred.astype(jnp.float32)
  if norm_pix:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    pred = pred * jnp.sqrt(jnp.var(target, axis=-1, keepdims=True) + 1e-6) + mean
  return losses.mae_loss(pred, target, mask, norm_pix=False)


class Decoder(nn.Module):
  """Encoded visible tokens -> pixel predictions [B, N, patch_dim] for every patch.

  Module names: `embed` (encoder width -> decoder width), `mask_token`, `block{i}`, `norm`,
  `pred`; the blocks are the ViT's, so the same sharding rules cover them.
  """
  hidden_dim: int
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, latent: Array, ids_restore: Array, grid: tuple[int, int],
               patch_dim: int) -> Array:
    """latent: [B, 1 + k, D_enc], CLS first; ids_restore: [B, N] from `random_masking`."""
    x = _dense(self.hidden_dim, dtype=self.dtype, name="embed")(latent)
    batch, num_patches = ids_restore.shape
    mask_token = self.param("mask_token", nn.initializers.normal(0.02),
                            (1, 1, self.hidden_dim), jnp.float32)
    masked = jnp.broadcast_to(mask_token.astype(self.dtype),
                              (batch, num_patches - (x.shape[1] - 1), self.hidden_dim))
    # Shuffled order (kept first, then hidden) back to image order.
    tokens = jnp.take_along_axis(jnp.concatenate([x[:, 1:], masked], axis=1),
                                 ids_restore[..., None], axis=1)
    tokens = tokens + jnp.asarray(sincos_pos_embed(*grid, self.hidden_dim), self.dtype)
    x = jnp.concatenate([x[:, :1], tokens], axis=1)
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_dim, self.dtype, name=f"block{i}")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name="norm")(x)
    return _dense(patch_dim, dtype=self.dtype, name="pred")(x[:, 1:])


class Method:
  """config.mae.{mask_ratio, norm_pix}; config.model.encoder (a ViT); config.model.decoder
  {hidden_dim, depth, num_heads, mlp_dim (default 4 x hidden_dim)}; config.data.augment."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    if not isinstance(self.encoder, VisionTransformer):
      raise ValueError(f"MAE needs a ViT encoder, got model.encoder.name="
                       f"{config.model.encoder['name']!r}")
    dec = config.model.decoder
    self.decoder = Decoder(hidden_dim=dec["hidden_dim"], depth=dec["depth"],
                           num_heads=dec["num_heads"],
                           mlp_dim=dec.get("mlp_dim") or 4 * dec["hidden_dim"],
                           dtype=self.encoder.dtype)
    self.mask_ratio = config.mae.get("mask_ratio", 0.75)
    self.norm_pix = config.mae.get("norm_pix", True)

  def views(self) -> list[Any]:
    return [self.config.data.augment]

  def _decoder_inputs(self, images: Array) -> tuple[tuple[int, int], int]:
    """(patch grid, pixels per patch) of a batch of images."""
    p = self.encoder.patch_size
    return (images.shape[1] // p, images.shape[2] // p), p * p * images.shape[3]

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, dec_rng, mask_rng = jax.random.split(rng, 3)
    images = batch["views"][0]
    enc_params = self.encoder.init(enc_rng, images, train=False)["params"]
    grid, patch_dim = self._decoder_inputs(images)
    ids_keep, ids_restore, _ = random_masking(mask_rng, images.shape[0], grid[0] * grid[1],
                                              self.mask_ratio)
    latent = jnp.zeros((images.shape[0], 1 + ids_keep.shape[1], self.encoder.hidden_dim))
    dec_params = self.decoder.init(dec_rng, latent, ids_restore, grid, patch_dim)["params"]
    return {"encoder": enc_params, "decoder": dec_params}, {}, {}

  def reconstruct(self, params: Any, images: Array, rng: jax.Array) -> tuple[Array, Array, Array]:
    """(pred, target, mask), each per patch, for one random mask per image drawn from `rng`."""
    grid, patch_dim = self._decoder_inputs(images)
    enc = {"params": params["encoder"]}
    tokens = self.encoder.apply(enc, images, method="embed")
    ids_keep, ids_restore, mask = random_masking(rng, images.shape[0], tokens.shape[1],
                                                 self.mask_ratio)
    visible = jnp.take_along_axis(tokens, ids_keep[..., None], axis=1)
    latent = self.encoder.apply(enc, visible, True, method="encode")
    pred = self.decoder.apply({"params": params["decoder"]}, latent, ids_restore, grid, patch_dim)
    return pred, patchify(images, self.encoder.patch_size), mask

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    pred, target, mask = self.reconstruct(params, batch["views"][0], rng)
    loss = losses.mae_loss(pred, target, mask, self.norm_pix)
    metrics = {"reconstruction_mse": pixel_mse(pred, target, mask, self.norm_pix)}
    return loss, (metrics, model_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    """The encoder on all patches (no mask), pooled as the ViT's `pool` says."""
    del model_state, level
    feats = self.encoder.apply({"params": params["encoder"]}, images, train=False)
    return feats.astype(jnp.float32)
