"""Future-frame prediction in representation space: encode the first k frames of a clip and
predict the REPRESENTATIONS (not the pixels) of the next m frames.

The target is an EMA copy of the online encoder and projector, its outputs under stop-gradient
(BYOL's target, Grill et al. 2020; predicting future latents as in CPC, van den Oord et al.
2018, and DPC, Han et al. 2019, but regressed instead of contrasted). Each example is a
sequence of k + m frames (a frame-rate change, a temporal crop and one spatial view for all
frames, sslax.data.video_examples.FrameSequence). The online network embeds each context frame
with a shared encoder (any `make_encoder` backbone) and an MLP projector; an MLP predictor maps
the k concatenated embeddings to m predicted embeddings; the loss is BYOL's normalised MSE,
2 - 2 cos(prediction, target), averaged over the m future frames and the batch
(sslax.losses.byol_loss). The predictor is what prevents the trivial constant solution, as in
BYOL; the EMA momentum follows BYOL's cosine schedule.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.data.video_examples import FrameSequence, VideoData
from sslax.methods import teacher
from sslax.methods.base import apply_module, split_variables
from sslax.methods.time_contrastive import EmbedNet
from sslax.models import make_encoder
from sslax.models.heads import MLPHead


def future_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean of 2 - 2 cos over predicted [B, m, E] and target [B, m, E] embeddings."""
  e = predictions.shape[-1]
  return losses.byol_loss(predictions.reshape(-1, e), targets.reshape(-1, e))


class Predictor(nn.Module):
  """context embeddings [B, k, E] -> predicted future embeddings [B, m, E]."""
  hidden_dim: int
  future: int

  @nn.compact
  def __call__(self, context: jax.Array, train: bool) -> jax.Array:
    b, _, e = context.shape
    out = MLPHead((self.hidden_dim,), self.future * e, name="mlp")(context.reshape(b, -1),
                                                                   train=train)
    return out.reshape(b, self.future, e)


class Method(VideoData):
  """config.model.encoder; config.future_frame.{context, future, hidden_dim, embed_dim,
  base_momentum}; config.data with config.data.augment (and its `strides`)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    c = self.settings = config.future_frame
    self.context, self.future = c.context, c.future
    self.online = EmbedNet(make_encoder(config.model.encoder), c.hidden_dim, c.embed_dim)
    self.predictor = Predictor(c.hidden_dim, c.future)

  def transform(self) -> FrameSequence:
    return FrameSequence(self.config.data.augment, self.context + self.future)

  def momentum(self, step: jax.Array) -> jax.Array:
    return teacher.cosine_momentum(step, self.config.total_steps, self.settings.base_momentum)

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    frames = batch["frames"][:, :self.context]
    b = frames.shape[0]
    online_rng, predictor_rng = jax.random.split(rng)
    variables = self.online.init(online_rng, frames.reshape(-1, *frames.shape[2:]), train=False)
    _, z = self.online.apply(variables, frames.reshape(-1, *frames.shape[2:]), train=False)
    pred_vars = self.predictor.init(predictor_rng, z.reshape(b, self.context, -1), train=False)
    (online, online_state), (pred, pred_state) = map(split_variables, (variables, pred_vars))
    params = {"online": online, "predictor": pred}
    state = {"online": online_state, "predictor": pred_state}
    return params, state, {"params": online, "state": online_state}

  def _embed(self, params, state, frames):
    """Train-mode projections [B, n, E] of frames [B, n, H, W, C], and the new state."""
    b, n = frames.shape[:2]
    (_, z), state = apply_module(self.online, params, state,
                                 frames.reshape(b * n, *frames.shape[2:]), train=True)
    return z.reshape(b, n, -1), state

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng, step
    frames = batch["frames"]
    context, future = frames[:, :self.context], frames[:, self.context:]
    z, online_state = self._embed(params["online"], model_state["online"], context)
    predicted, pred_state = apply_module(self.predictor, params["predictor"],
                                         model_state["predictor"], z, train=True)
    targets, target_state = self._embed(extra["params"], extra["state"], future)
    loss = future_loss(predicted, jax.lax.stop_gradient(targets))
    metrics = {"future_cosine": 1.0 - loss / 2.0}
    new_state = {"online": online_state, "predictor": pred_state}
    return loss, (metrics, new_state, {**extra, "state": target_state})

  def update_extra(self, params, extra, step):
    return {**extra, "params": teacher.ema(extra["params"], params["online"],
                                           self.momentum(step))}

  feature_levels = ("encoder", "projector")

  def features(self, params, model_state, images, level="encoder"):
    """Frame features [B, D] ("encoder") or projections [B, E] ("projector"), inference mode."""
    feats, z = self.online.apply({"params": params["online"], **model_state["online"]}, images,
                                 train=False)
    return (z if level == "projector" else feats).astype(jnp.float32)
