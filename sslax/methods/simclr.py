"""SimCLR: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations".

Two augmented views of every image go through one encoder and an MLP projection head; NT-Xent
pulls the two projections of an image together against every other projection of the global batch.
Both views are encoded in one call so batch norm sees all 2*batch images together.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead


class Method:
  """config.simclr.temperature; config.model.{encoder, projector}; config.data.augment."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    head = config.model.projector
    self.projector = MLPHead(hidden_dims=tuple(head.hidden_dims), out_dim=head.out_dim,
                             dtype=jnp.dtype(config.model.encoder.get("dtype", "float32")))
    self.temperature = config.simclr.temperature

  def views(self) -> list[Any]:
    return [self.config.data.augment, self.config.data.augment]

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, head_rng = jax.random.split(rng)
    x = batch["views"][0]
    encoder_vars = self.encoder.init(enc_rng, x, train=False)
    feats = self.encoder.apply(encoder_vars, x, train=False)
    projector_vars = self.projector.init(head_rng, feats, train=False)
    enc_params, enc_state = split_variables(encoder_vars)
    head_params, head_state = split_variables(projector_vars)
    params = {"encoder": enc_params, "projector": head_params}
    return params, {"encoder": enc_state, "projector": head_state}, {}

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng, step  # SimCLR's randomness is all in the data augmentation.
    view_a, view_b = batch["views"]
    n = view_a.shape[0]
    feats, enc_state = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                                    jnp.concatenate([view_a, view_b]), train=True)
    z, head_state = apply_module(self.projector, params["projector"], model_state["projector"],
                                 feats, train=True)
    loss = losses.nt_xent(z[:n], z[n:], self.temperature)
    metrics = {"contrastive_top1": losses.contrastive_top1(z[:n], z[n:])}
    return loss, (metrics, {"encoder": enc_state, "projector": head_state}, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder", "projector")

  def features(self, params, model_state, images, level="encoder"):
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    if level == "projector":
      feats, _ = apply_module(self.projector, params["projector"], model_state["projector"],
                              feats, train=False)
    return feats.astype(jnp.float32)
