"""MoCo v3: Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers".

The networks are BYOL's (sslax/methods/byol.py): an online encoder with a projector (its last
batch norm without affine, `last_bn=True`) and a predictor, and a momentum encoder + projector
that is an EMA of the online ones, its momentum rising from `base_momentum` to 1 on a cosine
schedule. The objective is contrastive instead: each view's query (online prediction) is
classified against the keys (momentum projections) of the other view of every image in the global
batch, with no memory queue:

  loss = 2T·(info_nce(q_1, k_2, T) + info_nce(q_2, k_1, T))

The paper's code updates the momentum encoder with the current weights before computing keys;
here `update_extra` applies the same update right after the optimizer step, so the keys of every
step come from the same weights. ViT-specific stability (the frozen random patch projection) is
the encoder's `freeze_patch_embed` field.

Gradient accumulation (config.grad_accum_steps > 1) uses GradCache (sslax/accumulate.py): the
keys of the whole global batch stay the negatives. The momentum encoder needs no gradient, so its
keys are computed once, in GradCache's first (embedding) pass, and only the online encoder,
projector and predictor run again under the vjp. Batch norm (the SmallCNN's, the heads') then
normalises each micro-batch; without it the gradient is the full-batch one. The momentum update
happens once per step, after the accumulated update.
"""
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.methods import byol
from sslax.methods.base import apply_module


class Method(byol.Method):
  """config.moco_v3.{base_momentum, temperature}; the rest as byol.Method."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.temperature = self.settings.temperature

  def objective(self, p: tuple[jax.Array, jax.Array],
                z: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Symmetrised InfoNCE; the 2T factor (the paper's Algorithm 1) cancels the 1/T that the
    logits put into the gradient's scale."""
    t = self.temperature
    loss = 2 * t * (losses.info_nce(p[0], z[1], t) + losses.info_nce(p[1], z[0], t))
    top1 = (losses.contrastive_top1(p[0], z[1]) + losses.contrastive_top1(p[1], z[0])) / 2
    return loss, {"contrastive_top1": top1}

  batch_coupled = True  # InfoNCE's negatives are the whole batch: GradCache accumulates it.

  def embed(self, params, model_state, extra, batch, rng, step):
    """((q_1, q_2): the online predictions of the two views, each [batch, dim], new state)."""
    del extra, rng, step  # All randomness is in the data augmentation.
    n = batch["views"][0].shape[0]
    online = {**params, "projector": byol._hold_output_bias(params["projector"])}
    z, online_state = self._project(online, model_state, jnp.concatenate(batch["views"]))
    p, pred_state = apply_module(self.predictor, params["predictor"], model_state["predictor"],
                                 z, train=True)
    return (p[:n], p[n:]), {**online_state, "predictor": pred_state}

  def embed_targets(self, extra, batch, rng, step):
    """((k_1, k_2): the momentum encoder's keys of the two views, extra with its new state)."""
    del rng, step
    n = batch["views"][0].shape[0]
    k, target_state = self._project(extra["params"], extra["state"],
                                    jnp.concatenate(batch["views"]))
    return (k[:n], k[n:]), {**extra, "state": target_state}

  def embedding_loss(self, embeddings, targets, step):
    """The objective on the queries and keys of the whole global batch."""
    loss, metrics = self.objective(embeddings, targets)
    return loss, {**metrics, "target_momentum": self.momentum(step)}
