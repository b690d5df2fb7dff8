"""SimDINO: Wu et al. 2025, "Simplifying DINO via Coding Rate Regularization".

DINO without prototypes, centring or softmax: the head's L2-normalised bottleneck features of the
student are pulled towards the teacher's on every other view (cosine alignment), and a
coding-rate term on the student's global views keeps them spread out instead of collapsing:

  loss = -mean_{t != s} cos(z_s, z_t)  -  weight * mean_v R_eps(Z_v),
  R_eps(Z) = 1/2 logdet(I + d/(b eps) ZᵀZ)        (`sslax.losses.coding_rate`)

computed in float32 over the global batch (ZᵀZ is summed over every device's rows). The
reference implementation scales the alignment by `coeff` instead; with Adam the overall scale of
the loss does not matter, so its coeff = c is our coding_rate_weight = 1/c. `config.simdino`:
eps (0.05 in the reference README), coding_rate_weight, base_momentum (teacher EMA).
"""
import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.methods.dino import SelfDistillation


class Method(SelfDistillation):
  """config.simdino; config.model.{encoder, head without out_dim}; config.data views."""

  features_only = True
  batch_coupled = True  # The coding rate is a log-determinant of the whole batch's features.

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.section = config.simdino

  def distill(self, student, target, extra, step):
    del extra, step
    cos = jnp.einsum("tbd,sbd->ts", target.astype(jnp.float32), student.astype(jnp.float32),
                     precision=jax.lax.Precision.HIGHEST) / student.shape[1]
    different = 1.0 - jnp.eye(target.shape[0], student.shape[0])
    alignment = jnp.sum(cos * different) / jnp.sum(different)
    rate = jnp.mean(jnp.stack([losses.coding_rate(student[v], self.section.eps)
                               for v in range(self.num_global)]))
    loss = -alignment - self.section.coding_rate_weight * rate
    return loss, {"alignment": alignment, "coding_rate": rate}, {}
