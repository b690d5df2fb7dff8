"""RotNet: Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting
Image Rotations".

Every image of the batch is shown at all four rotations (0, 90, 180 and 270 degrees), so one step
sees 4*batch images, as in the paper, where feeding all four rotations together beat sampling one
per image. A classifier on the encoder features predicts which rotation it sees: to do so the
encoder has to recognise what the object is and which way up it stands. The rotations are exact
(jnp.rot90 on square views, on device), so no interpolation or border artefact gives them away.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead

NUM_ROTATIONS = 4


def rotate_all(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[B, H, W, C] square images -> (the 4*B rotated images, their labels k in 0..3).

  Block k of the output is `jnp.rot90(images, k, axes=(1, 2))` (k quarter turns
  counter-clockwise) and carries label k.
  """
  if images.shape[1] != images.shape[2]:
    raise ValueError(f"rotation needs square views, got {images.shape[1]}x{images.shape[2]}")
  rotated = jnp.concatenate([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])
  labels = jnp.repeat(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), images.shape[0])
  return rotated, labels


class Method:
  """config.model.{encoder, classifier}; config.data.augment (one view)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    # hidden_dims=() is the paper's linear classifier on the last block's pooled features.
    self.classifier = MLPHead(hidden_dims=tuple(config.model.classifier.hidden_dims),
                              out_dim=NUM_ROTATIONS,
                              dtype=jnp.dtype(config.model.encoder.get("dtype", "float32")))

  def views(self) -> list[Any]:
    return [self.config.data.augment]

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, head_rng = jax.random.split(rng)
    x = batch["views"][0]
    encoder_vars = self.encoder.init(enc_rng, x, train=False)
    feats = self.encoder.apply(encoder_vars, x, train=False)
    classifier_vars = self.classifier.init(head_rng, feats, train=False)
    enc_params, enc_state = split_variables(encoder_vars)
    head_params, head_state = split_variables(classifier_vars)
    params = {"encoder": enc_params, "classifier": head_params}
    return params, {"encoder": enc_state, "classifier": head_state}, {}

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng, step  # All four rotations of every image: nothing to draw.
    images, labels = rotate_all(batch["views"][0])
    feats, enc_state = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                                    images, train=True)
    logits, head_state = apply_module(self.classifier, params["classifier"],
                                      model_state["classifier"], feats, train=True)
    logits = logits.astype(jnp.float32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    metrics = {"rotation_accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == labels)}
    return loss, (metrics, {"encoder": enc_state, "classifier": head_state}, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  # The classifier's 4 logits are the pretext answer, not a representation: only the encoder.
  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    if level != "encoder":
      raise ValueError(f"rotation has feature levels {self.feature_levels}, not {level!r}")
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    return feats.astype(jnp.float32)
