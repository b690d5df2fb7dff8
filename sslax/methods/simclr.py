"""SimCLR: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations".

Two augmented views of every image go through one encoder and an MLP projection head; NT-Xent
pulls the two projections of an image together against every other projection of the global batch.
Both views are encoded in one call so batch norm sees all 2*batch images together.

Gradient accumulation (config.grad_accum_steps > 1) uses GradCache (sslax/accumulate.py): the
negatives are still the whole global batch and the loss is the full-batch loss; batch norm
(the SmallCNN's and the projector's, `model.projector.use_bn`) normalises each micro-batch, so
the gradient equals the full-batch one only for an encoder and projector without batch norm.
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
  """config.simclr.temperature; config.model.{encoder, projector (hidden_dims, out_dim, use_bn:
  batch norm in the hidden layers, default True)}; config.data.augment."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    head = config.model.projector
    self.projector = MLPHead(hidden_dims=tuple(head.hidden_dims), out_dim=head.out_dim,
                             use_bn=bool(head.get("use_bn", True)),
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

  batch_coupled = True  # NT-Xent's negatives are the whole batch: GradCache accumulates it.

  def embed(self, params, model_state, extra, batch, rng, step):
    """(the projections (z_a, z_b) of the two views, each [batch, out_dim], new model_state)."""
    del extra, rng, step  # SimCLR's randomness is all in the data augmentation.
    view_a, view_b = batch["views"]
    n = view_a.shape[0]
    feats, enc_state = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                                    jnp.concatenate([view_a, view_b]), train=True)
    z, head_state = apply_module(self.projector, params["projector"], model_state["projector"],
                                 feats, train=True)
    return (z[:n], z[n:]), {"encoder": enc_state, "projector": head_state}

  def embedding_loss(self, embeddings, targets, step):
    """NT-Xent and the contrastive top-1 of the projections of the whole global batch."""
    del targets, step
    z_a, z_b = embeddings
    loss = losses.nt_xent(z_a, z_b, self.temperature)
    return loss, {"contrastive_top1": losses.contrastive_top1(z_a, z_b)}

  def loss(self, params, model_state, extra, batch, rng, step):
    embeddings, model_state = self.embed(params, model_state, extra, batch, rng, step)
    loss, metrics = self.embedding_loss(embeddings, {}, step)
    return loss, (metrics, model_state, extra)

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
