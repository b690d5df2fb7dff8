"""Frame-order prediction: Misra, Zitnick and Hebert 2016, "Shuffle and Learn: Unsupervised
Learning using Temporal Order Verification".

Each example is a tuple of 3 frames of one clip (sslax.data.video_examples.order_tuple): in
order (b, c, d) or reversed (label 1), or with the middle frame replaced by one from outside
the b..d window (label 0). One frame encoder (any `make_encoder` backbone) is shared by the
three frames; their features are concatenated and an MLP classifies the tuple (2 classes, the
paper's softmax cross-entropy). The paper's encoder is CaffeNet on UCF101 frames; here it is
the config's backbone on Moving-MNIST or other clips.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax.data.video_examples import OrderTuples, VideoData
from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead


def order_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mean softmax cross-entropy, accuracy) of tuple logits [B, 2] against labels [B] in {0, 1}."""
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(jnp.argmax(logits, axis=-1) == labels)


class OrderNet(nn.Module):
  """frames [B, n, H, W, C] -> tuple logits [B, 2]: a shared encoder, concatenation, MLP."""
  encoder: nn.Module
  hidden_dim: int

  @nn.compact
  def __call__(self, frames: jax.Array, train: bool) -> jax.Array:
    b, n = frames.shape[:2]
    feats = self.encoder(frames.reshape(b * n, *frames.shape[2:]), train=train)
    return MLPHead((self.hidden_dim,), 2, name="classifier")(feats.reshape(b, -1), train=train)

  def encode(self, images: jax.Array, train: bool) -> jax.Array:
    """Frame features [B, D] of images [B, H, W, C]."""
    return self.encoder(images, train=train)


class Method(VideoData):
  """config.model.encoder; config.frame_order.hidden_dim; config.data (sslax.data.video) with
  config.data.augment (sslax.data.video_examples.spatial_view)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model = OrderNet(make_encoder(config.model.encoder), config.frame_order.hidden_dim)

  def transform(self) -> OrderTuples:
    return OrderTuples(self.config.data.augment)

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    params, state = split_variables(self.model.init(rng, batch["frames"], train=False))
    return params, state, {}

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng, step
    logits, model_state = apply_module(self.model, params, model_state, batch["frames"],
                                       train=True)
    loss, accuracy = order_loss(logits, batch["label"])
    return loss, ({"order_accuracy": accuracy}, model_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    """Frame features [B, D] of images [B, H, W, C], inference mode."""
    del level
    feats = self.model.apply({"params": params, **model_state}, images, train=False,
                             method=OrderNet.encode)
    return feats.astype(jnp.float32)
