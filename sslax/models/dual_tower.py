"""CLIP's dual encoder (Radford et al. 2021): an image tower and a text tower, each followed by
a linear projection (no bias) into one embedding space, and the learnable logit scale.

Parameter names: `image_encoder/...` (any `make_encoder` backbone), `text_encoder/...` (a
TextTransformer), `image_projection/kernel` [D_image, E], `text_projection/kernel` [D_text, E],
`logit_scale` (a scalar, log of the inverse temperature; a 0-d array, so never weight-decayed).
"""
import math

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Array, Dtype

from sslax.models.transformer import TextTransformer

TEXT_POOLS = ("eos", "cls", "mean")


def pool_text(hidden: Array, attention_mask: Array, how: str) -> Array:
  """[B, T, D] final states -> [B, D]: the last real token ("eos": the [SEP] that ends every
  caption, which under a causal mask is the only state that has read the whole caption; CLIP
  pools its EOS token), position 0 ("cls") or the mean over real tokens ("mean")."""
  if how == "cls":
    return hidden[:, 0]
  mask = attention_mask.astype(hidden.dtype)
  if how == "mean":
    return jnp.sum(hidden * mask[..., None], 1) / jnp.maximum(mask.sum(1, keepdims=True), 1)
  last = jnp.maximum(attention_mask.astype(jnp.int32).sum(1) - 1, 0)
  return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]


class DualTower(nn.Module):
  """images [B, H, W, C] and captions [B, T] -> (image embeddings [B, E], text embeddings
  [B, E], logit_scale), embeddings not normalised (the loss normalises them)."""
  image_encoder: nn.Module
  text_encoder: TextTransformer
  embed_dim: int = 512
  text_pool: str = "eos"
  init_temperature: float = 0.07
  dtype: Dtype = jnp.float32

  def setup(self):
    if self.text_pool not in TEXT_POOLS:
      raise ValueError(f"clip.text_pool={self.text_pool!r}; use one of {TEXT_POOLS}")
    projection = dict(features=self.embed_dim, use_bias=False, dtype=self.dtype,
                      param_dtype=jnp.float32)
    self.image_projection = nn.Dense(**projection)
    self.text_projection = nn.Dense(**projection)
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(
        math.log(1 / self.init_temperature)), (), jnp.float32)

  def image_features(self, images: Array, train: bool) -> Array:
    """[B, D_image] backbone features (what kNN and linear probes of the image side read)."""
    return self.image_encoder(images, train=train)

  def encode_image(self, images: Array, train: bool) -> Array:
    return self.image_projection(self.image_features(images, train))

  def encode_text(self, input_ids: Array, attention_mask: Array, train: bool) -> Array:
    hidden = self.text_encoder(input_ids, attention_mask, train=train)
    return self.text_projection(pool_text(hidden, attention_mask, self.text_pool))

  def __call__(self, images: Array, input_ids: Array, attention_mask: Array,
               train: bool) -> tuple[Array, Array, Array]:
    return (self.encode_image(images, train), self.encode_text(input_ids, attention_mask, train),
            self.logit_scale)
