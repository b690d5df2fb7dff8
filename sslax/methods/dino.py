"""DINO: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers".

A student (encoder + DINO head) is trained to match, on every other view, the output
distribution of a teacher that is an EMA of the student. The teacher sees only the global views,
the student sees all of them (multi-crop: 2 global + N local). Collapse is avoided by centring
(subtracting an EMA of the teacher's mean output, taken over the global batch) and sharpening
(a teacher temperature of 0.04 -> 0.07, below the student's 0.1).

Recipe knobs in `config.dino`: student_temperature, teacher_temperature,
warmup_teacher_temperature and warmup_teacher_temperature_steps (linear warm-up),
center_momentum, base_momentum (teacher EMA, cosine to 1), freeze_last_layer_steps (the
prototypes get no gradient during the first steps, as DINO does for its first epoch). The weight
decay ramp and gradient clipping are `optimizer.weight_decay_end` and `optimizer.grad_clip_norm`.

The teacher lives in `extra` with its own batch-norm statistics (when the encoder or head has
any): like DINO's PyTorch teacher it runs in training mode, normalising with the statistics of
its batch, and its EMA covers the parameters only.
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
from sslax.models.heads import DINOHead


def group_by_shape(views: tuple[jax.Array, ...]) -> list[list[int]]:
  """Indices of consecutive views with equal shapes: each group is one batched forward pass."""
  groups: list[list[int]] = []
  for i, view in enumerate(views):
    if groups and views[groups[-1][0]].shape == view.shape:
      groups[-1].append(i)
    else:
      groups.append([i])
  return groups


class SelfDistillation:
  """Student/teacher machinery shared by DINO and SimDINO; subclasses define `distill`."""

  features_only = False  # SimDINO's head stops at the normalised bottleneck (no prototypes).

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = make_encoder(config.model.encoder)
    dtype = jnp.dtype(config.model.encoder.get("dtype", "float32"))
    self.head = DINOHead(dtype=dtype, **dict(config.model.head))
    data = config.data
    self.specs = multi_crop_specs(data.augment, data.global_views, data.get("local_view"),
                                  data.get("num_local_views", 0))
    self.num_global = len(data.global_views)

  def views(self) -> list[Any]:
    return self.specs

  def init(self, rng, batch):
    enc_rng, head_rng = jax.random.split(rng)
    x = batch["views"][0]
    encoder_vars = self.encoder.init(enc_rng, x, train=False)
    head_vars = self.head.init(head_rng, self.encoder.apply(encoder_vars, x, train=False),
                               train=False, features_only=self.features_only)
    enc_params, enc_state = split_variables(encoder_vars)
    head_params, head_state = split_variables(head_vars)
    params = {"encoder": enc_params, "head": head_params}
    state = {"encoder": enc_state, "head": head_state}
    extra = {"teacher": params, "teacher_state": state, **self.init_extra()}
    return params, state, extra

  def init_extra(self) -> dict[str, Any]:
    return {}

  def momentum(self, step):
    return teacher.cosine_momentum(step, self.config.total_steps, self.section.base_momentum)

  def forward(self, params, state, views):
    """Head outputs `[len(views), B, ...]` in training mode, one pass per group of equal shapes."""
    outputs = []
    for group in group_by_shape(views):
      x = jnp.concatenate([views[i] for i in group])
      feats, enc_state = apply_module(self.encoder, params["encoder"], state["encoder"], x,
                                      train=True)
      out, head_state = apply_module(self.head, params["head"], state["head"], feats, train=True,
                                     features_only=self.features_only)
      state = {"encoder": enc_state, "head": head_state}
      outputs.append(out.reshape(len(group), views[0].shape[0], *out.shape[1:]))
    return jnp.concatenate(outputs), state

  def loss(self, params, model_state, extra, batch, rng, step):
    del rng  # All randomness is in the views.
    views = batch["views"]
    student, model_state = self.forward(self.student_params(params, step), model_state, views)
    target, teacher_state = self.forward(extra["teacher"], extra["teacher_state"],
                                         views[:self.num_global])
    target = jax.lax.stop_gradient(target)
    loss, metrics, new_extra = self.distill(student, target, extra, step)
    extra = {**extra, **new_extra, "teacher_state": teacher_state}
    metrics["target_momentum"] = self.momentum(step)
    return loss, (metrics, model_state, extra)

  def student_params(self, params, step):
    return params

  def update_extra(self, params, extra, step):
    return {**extra, "teacher": teacher.ema(extra["teacher"], params, self.momentum(step))}

  feature_levels = ("encoder", "head")

  def features(self, params, model_state, images, level="encoder"):
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    if level == "head":  # The normalised bottleneck feature, before the prototypes.
      feats, _ = apply_module(self.head, params["head"], model_state["head"], feats, train=False,
                              features_only=True)
    return feats.astype(jnp.float32)


class Method(SelfDistillation):
  """config.dino (see the module docstring); config.model.{encoder, head}; config.data views."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.section = config.dino

  def init_extra(self):
    return {"center": jnp.zeros((self.config.model.head.out_dim,), jnp.float32)}

  def teacher_temperature(self, step):
    """Linear warm-up from warmup_teacher_temperature, then constant."""
    s = self.section
    warmup = max(s.warmup_teacher_temperature_steps, 1)
    frac = jnp.clip(step / warmup, 0.0, 1.0)
    return s.warmup_teacher_temperature + frac * (
        s.teacher_temperature - s.warmup_teacher_temperature)

  def student_params(self, params, step):
    """The prototypes see no gradient during the first `freeze_last_layer_steps`."""
    frozen = step < self.section.freeze_last_layer_steps
    last = params["head"]["last_layer"]
    last = jnp.where(frozen, jax.lax.stop_gradient(last), last)
    return {**params, "head": {**params["head"], "last_layer": last}}

  def distill(self, student, target, extra, step):
    temperature = self.teacher_temperature(step)
    loss = losses.dino_loss(student, target, extra["center"],
                            self.section.student_temperature, temperature)
    batch_center = jnp.mean(target.astype(jnp.float32), axis=(0, 1))
    m = self.section.center_momentum
    center = m * extra["center"] + (1.0 - m) * batch_center
    probs = jax.nn.softmax((target - extra["center"]) / temperature, axis=-1)
    entropy = -jnp.sum(probs * jnp.log(probs + 1e-12), axis=-1)
    metrics = {"teacher_entropy": jnp.mean(entropy),
               "center_norm": jnp.linalg.norm(extra["center"]),
               "teacher_temperature": temperature}
    return loss, metrics, {"center": center}
