"""Time-contrastive learning: frames near in time within one clip are positives, every other
clip's frames of the GLOBAL batch are negatives.

The single-view time-contrastive setting of Sermanet et al. 2018 ("Time-Contrastive Networks"),
trained with InfoNCE (van den Oord et al. 2018) as in the temporal positives of CVRL (Qian et
al. 2021): each example is an anchor frame t and a positive t' with 1 <= |t - t'| <=
time_contrastive.max_offset of the same clip, each with its own spatial view. A shared encoder
and an MLP projector embed both; the loss is the symmetric InfoNCE (sslax.losses.info_nce) of
anchors against positives over the whole global batch, so under a sharded jit every other
clip's positive frame, on every device, is a negative (8 devices == 1 tested).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.data.video_examples import NearFrames, VideoData
from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead


def time_contrastive_loss(anchors: jax.Array, positives: jax.Array,
                          temperature: float) -> jax.Array:
  """Symmetric InfoNCE of anchor [B, E] and positive [B, E] embeddings: the mean of both ways."""
  return 0.5 * (losses.info_nce(anchors, positives, temperature)
                + losses.info_nce(positives, anchors, temperature))


class EmbedNet(nn.Module):
  """images [N, H, W, C] -> (features [N, D], projections [N, E])."""
  encoder: nn.Module
  hidden_dim: int
  embed_dim: int

  @nn.compact
  def __call__(self, images: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    feats = self.encoder(images, train=train)
    return feats, MLPHead((self.hidden_dim,), self.embed_dim, name="projector")(feats,
                                                                                train=train)


class Method(VideoData):
  """config.model.encoder; config.time_contrastive.{temperature, max_offset, hidden_dim,
  embed_dim, independent_views}; config.data with config.data.augment."""

  # InfoNCE couples the whole global batch: no plain gradient accumulation.
  batch_coupled = True

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    c = config.time_contrastive
    self.settings = c
    self.model = EmbedNet(make_encoder(config.model.encoder), c.hidden_dim, c.embed_dim)

  def transform(self) -> NearFrames:
    c = self.settings
    return NearFrames(self.config.data.augment, c.max_offset, c.get("independent_views", True))

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    frames = batch["frames"]
    images = frames.reshape(-1, *frames.shape[2:])
    params, state = split_variables(self.model.init(rng, images, train=False))
    return params, state, {}

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng, step
    frames = batch["frames"]  # [B, 2, H, W, C]: anchors, positives.
    b = frames.shape[0]
    images = jnp.concatenate([frames[:, 0], frames[:, 1]])
    (_, z), model_state = apply_module(self.model, params, model_state, images, train=True)
    loss = time_contrastive_loss(z[:b], z[b:], self.settings.temperature)
    return loss, ({"contrastive_top1": losses.contrastive_top1(z[:b], z[b:])}, model_state,
                  extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder", "projector")

  def features(self, params, model_state, images, level="encoder"):
    """Frame features [B, D] ("encoder") or projections [B, E] ("projector"), inference mode."""
    feats, z = self.model.apply({"params": params, **model_state}, images, train=False)
    return (z if level == "projector" else feats).astype(jnp.float32)
