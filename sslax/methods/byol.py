"""BYOL: Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning".

An online network (encoder, projector, predictor) predicts the projection that a target network
(encoder, projector) gives of the other view of the image. The target is no trained network: it
is an exponential moving average of the online encoder and projector, with a momentum tau that
rises from `base_momentum` to 1 on a cosine schedule, and no gradient reaches it.

Batch norm: both views go through each network in one call, so batch norm normalises over all
2 x batch images of the global batch. The target runs in train mode (batch statistics, as in the
paper), and its running statistics, which only inference-mode use of the target would read, are
its own: updated by its forward passes and kept in `extra` beside its EMA weights, as the
paper's JAX implementation keeps a separate target state. Initially the target is a copy of the
online network.

MoCo v3 (sslax/methods/moco_v3.py) is this method with a contrastive objective instead, so the
networks live here and the objective is one overridable method.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.data.pipeline import multi_crop_specs
from sslax.methods import teacher
from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.heads import MLPHead

TARGET_PARTS = ("encoder", "projector")  # The networks the target copies; not the predictor.


def _head(cfg: Any, dtype: jnp.dtype) -> MLPHead:
  """An MLPHead from a config dict with hidden_dims, out_dim and optional last_bn."""
  return MLPHead(hidden_dims=tuple(cfg["hidden_dims"]), out_dim=cfg["out_dim"],
                 last_bn=bool(cfg.get("last_bn", False)), dtype=dtype)


def _hold_output_bias(head_params: Any) -> Any:
  """Projector parameters with the output bias, if any, behind a stop-gradient.

  The bias shifts every online projection by one vector, which the predictor's first batch norm
  subtracts again: its true gradient is zero and the computed one is rounding noise, which Adam
  would turn into a random walk of the bias (and of the target's copy). Held at its zero init.
  """
  dense = head_params["output_dense"]
  if "bias" not in dense:
    return head_params
  return {**head_params, "output_dense": {**dense, "bias": jax.lax.stop_gradient(dense["bias"])}}


class Method:
  """config.model.{encoder, projector, predictor}; config.data.augment updated by each of the two
  config.data.global_views; config.<method>.base_momentum (the schedule's tau at step 0)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    dtype = jnp.dtype(config.model.encoder.get("dtype", "float32"))
    self.projector = _head(config.model.projector, dtype)
    self.predictor = _head(config.model.predictor, dtype)
    self.settings = config[config.method]

  def views(self) -> list[Any]:
    return multi_crop_specs(self.config.data.augment, self.config.data.global_views)

  def momentum(self, step: jax.Array) -> jax.Array:
    """The EMA momentum tau applied after the update of `step`."""
    return teacher.cosine_momentum(step, self.config.total_steps, self.settings.base_momentum)

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    x = batch["views"][0]
    params, state = {}, {}
    for name, rng_ in zip(("encoder", "projector", "predictor"), jax.random.split(rng, 3),
                          strict=True):
      module = getattr(self, name)
      variables = module.init(rng_, x, train=False)
      params[name], state[name] = split_variables(variables)
      x = module.apply(variables, x, train=False)
    target = {"params": {k: params[k] for k in TARGET_PARTS},
              "state": {k: state[k] for k in TARGET_PARTS}}
    return params, state, target

  def _project(self, params: Any, state: Any, images: jax.Array) -> tuple[jax.Array, Any]:
    """Encoder + projector in train mode: (projections, updated batch-norm state)."""
    feats, enc_state = apply_module(self.encoder, params["encoder"], state["encoder"], images,
                                    train=True)
    z, head_state = apply_module(self.projector, params["projector"], state["projector"], feats,
                                 train=True)
    return z, {"encoder": enc_state, "projector": head_state}

  def objective(self, p: tuple[jax.Array, jax.Array],
                z: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The paper's symmetrised loss, the sum of the two views' terms (L + L~ in its eq. 2).

    p: the online predictions of views 1 and 2; z: the target projections of views 1 and 2.
    Summed rather than averaged, as in the paper, so its learning rates carry over unchanged.
    """
    loss = losses.byol_loss(p[0], z[1]) + losses.byol_loss(p[1], z[0])
    # Each term is 2 - 2·mean cos(p, z), so this is the mean cosine over both pairs.
    return loss, {"cosine_similarity": 1.0 - loss / 4.0}

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng  # All randomness is in the data augmentation.
    images = jnp.concatenate(batch["views"])
    n = batch["views"][0].shape[0]
    online = {**params, "projector": _hold_output_bias(params["projector"])}
    z_online, online_state = self._project(online, model_state, images)
    p, pred_state = apply_module(self.predictor, params["predictor"], model_state["predictor"],
                                 z_online, train=True)
    z_target, target_state = self._project(extra["params"], extra["state"], images)
    z_target = jax.lax.stop_gradient(z_target)
    loss, metrics = self.objective((p[:n], p[n:]), (z_target[:n], z_target[n:]))
    metrics["target_momentum"] = self.momentum(step)
    new_state = {**online_state, "predictor": pred_state}
    return loss, (metrics, new_state, {**extra, "state": target_state})

  def update_extra(self, params, extra, step):
    online = {k: params[k] for k in TARGET_PARTS}
    return {**extra, "params": teacher.ema(extra["params"], online, self.momentum(step))}

  feature_levels = ("encoder", "projector")

  def features(self, params, model_state, images, level="encoder"):
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    if level == "projector":
      feats, _ = apply_module(self.projector, params["projector"], model_state["projector"],
                              feats, train=False)
    return feats.astype(jnp.float32)
