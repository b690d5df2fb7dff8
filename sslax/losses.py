"""Losses shared by the pretext tasks, on plain arrays.

Every loss computes in float32 whatever the compute dtype of the model, its products too: the
logit and covariance matmuls ask for `HIGHEST` precision, since by default accelerators round
the inputs of float32 matmuls to bfloat16 (TPU) or TF32 (recent GPUs), errors that a temperature
of 0.1 magnifies tenfold (JAX's "Matmul precision" guide). Every loss treats its inputs as
the global batch: under `jax.jit` with sharded inputs XLA inserts the cross-device gathers, so a
contrastive loss sees every other sample of the global batch as a negative.
"""
import jax
import jax.numpy as jnp

_F32 = jax.lax.Precision.HIGHEST


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis`."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


def nt_xent(z_a: jax.Array, z_b: jax.Array, temperature: float) -> jax.Array:
  """SimCLR's normalised-temperature cross-entropy (Chen et al. 2020).

  z_a, z_b: `[batch, dim]` projections of two views; row i of z_a and of z_b are a positive pair.
  Each of the 2*batch anchors is classified against the other 2*batch - 1 samples (its positive
  and 2*batch - 2 negatives) by cosine similarity / temperature; the result is the mean over the
  2*batch anchors.
  """
  z = l2_normalize(jnp.concatenate([z_a, z_b], axis=0).astype(jnp.float32))
  n = z_a.shape[0]
  logits = jnp.matmul(z, z.T, precision=_F32) / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_prob = logits[jnp.arange(2 * n), positive] - jax.nn.logsumexp(logits, axis=1)
  return -jnp.mean(log_prob)


def contrastive_top1(z_a: jax.Array, z_b: jax.Array) -> jax.Array:
  """Fraction of rows of z_a whose most similar row of z_b is their positive (a pretext metric)."""
  sim = l2_normalize(z_a.astype(jnp.float32)) @ l2_normalize(z_b.astype(jnp.float32)).T
  return jnp.mean(jnp.argmax(sim, axis=1) == jnp.arange(z_a.shape[0]))


def info_nce(q: jax.Array, k: jax.Array, temperature: float) -> jax.Array:
  """InfoNCE of q against k (van den Oord et al. 2018; MoCo v3's form, Chen et al. 2021).

  q, k: `[batch, dim]`; row i of k is the positive of row i of q and every other row of k is a
  negative. Both are L2-normalised; the logits q·kᵀ / temperature are classified with the
  target i for row i, and the result is the mean cross-entropy over the batch. MoCo v3 multiplies
  this by 2·temperature and symmetrises it over the two views.
  """
  q = l2_normalize(q.astype(jnp.float32))
  k = l2_normalize(k.astype(jnp.float32))
  logits = jnp.matmul(q, k.T, precision=_F32) / temperature
  return -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=1)))


def byol_loss(p: jax.Array, z: jax.Array) -> jax.Array:
  """BYOL's normalised MSE (Grill et al. 2020): the batch mean of 2 - 2·cos(p, z).

  p, z: `[batch, dim]`, the online prediction and the target projection (pass z through
  `jax.lax.stop_gradient` or take it from the EMA target so no gradient reaches the target).
  """
  p = l2_normalize(p.astype(jnp.float32))
  z = l2_normalize(z.astype(jnp.float32))
  return jnp.mean(2.0 - 2.0 * jnp.sum(p * z, axis=-1))


def dino_loss(student_logits: jax.Array, teacher_logits: jax.Array, center: jax.Array,
              student_temp: float, teacher_temp: float | jax.Array) -> jax.Array:
  """DINO's cross-entropy between teacher and student views (Caron et al. 2021).

  student_logits: `[n_student_views, batch, k]`; teacher_logits: `[n_teacher_views, batch, k]`,
  where the teacher's views are the student's first `n_teacher_views` views (the global crops);
  center: `[k]`. The teacher's distribution is softmax((t - center) / teacher_temp), the
  student's log-softmax(s / student_temp); the loss is -Σ q·log p averaged over the batch and
  over every (teacher view, student view) pair of different views. No gradient flows into the
  teacher's side.
  """
  teacher = jax.nn.softmax(
      (teacher_logits.astype(jnp.float32) - center) / teacher_temp, axis=-1)
  teacher = jax.lax.stop_gradient(teacher)
  log_student = jax.nn.log_softmax(student_logits.astype(jnp.float32) / student_temp, axis=-1)
  # cross[t, s] = mean over the batch of -Σ_k q_t log p_s.
  cross = -jnp.einsum("tbk,sbk->ts", teacher, log_student,
                      precision=_F32) / student_logits.shape[1]
  n_teacher, n_student = teacher_logits.shape[0], student_logits.shape[0]
  different = 1.0 - jnp.eye(n_teacher, n_student)
  return jnp.sum(cross * different) / jnp.sum(different)


def coding_rate(z: jax.Array, eps: float) -> jax.Array:
  """R_eps(Z) = 1/2·logdet(I_d + d/(b·eps)·ZᵀZ) for z `[b, d]` as given (Yu et al. 2020).

  SimDINO's (Wu et al. 2025) regulariser against collapse: large when the b features spread over
  many directions. Computed in float32 from the `[d, d]` covariance, whose sum over the batch
  XLA reduces across devices when z is sharded; logdet via Cholesky, as the matrix is SPD.
  """
  z = z.astype(jnp.float32)
  b, d = z.shape
  cov = jnp.eye(d, dtype=jnp.float32) + (d / (b * eps)) * jnp.matmul(z.T, z, precision=_F32)
  chol = jnp.linalg.cholesky(cov)
  return jnp.sum(jnp.log(jnp.diagonal(chol)))


def mae_loss(pred: jax.Array, target: jax.Array, mask: jax.Array,
             norm_pix: bool = False) -> jax.Array:
  """MAE's reconstruction loss (He et al. 2022).

  pred, target: `[batch, patches, patch_dim]`; mask: `[batch, patches]`, 1 where the patch was
  hidden from the encoder. The mean over hidden patches of each patch's mean squared error; with
  `norm_pix` the target is first normalised per patch: (t - mean) / sqrt(var + 1e-6).
  """
  target = target.astype(jnp.float32)
  if norm_pix:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.var(target, axis=-1, keepdims=True)
    target = (target - mean) / jnp.sqrt(var + 1e-6)
  per_patch = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
  mask = mask.astype(jnp.float32)
  return jnp.sum(per_patch * mask) / jnp.sum(mask)


def token_cross_entropy(logits: jax.Array, labels: jax.Array,
                        ignore_index: int = -1) -> tuple[jax.Array, jax.Array]:
  """Mean cross-entropy and top-1 accuracy over the positions whose label is not ignored.

  logits: `[batch, length, vocab]`; labels: `[batch, length]` int, `ignore_index` where a
  position has no target. BERT's MLM (Devlin et al. 2019) labels only the selected positions and
  GPT's next-token loss ignores padding, so both are this loss; the mean is over the labelled
  positions of the whole (global) batch, not per sequence, so long and short sequences weigh by
  their number of targets.
  """
  logits = logits.astype(jnp.float32)
  valid = labels != ignore_index
  safe = jnp.where(valid, labels, 0)
  picked = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
  nll = jax.nn.logsumexp(logits, axis=-1) - picked
  count = jnp.maximum(jnp.sum(valid), 1)
  loss = jnp.sum(jnp.where(valid, nll, 0.0)) / count
  correct = (jnp.argmax(logits, axis=-1) == labels) & valid
  return loss, jnp.sum(correct) / count


def clip_loss(image_emb: jax.Array, text_emb: jax.Array, logit_scale: jax.Array,
              max_scale: float = 100.0) -> jax.Array:
  """CLIP's symmetric cross-entropy over image-text pairs (Radford et al. 2021).

  image_emb, text_emb: `[batch, dim]`; row i of each is a pair, every other row of the global
  batch a negative. Both are L2-normalised; logits = exp(logit_scale) · image·textᵀ with the
  scale clamped at `max_scale` (CLIP's 100; above the clamp its gradient is 0). The loss is the
  mean of the image->text (rows) and text->image (columns) cross-entropies, in float32.
  """
  i = l2_normalize(image_emb.astype(jnp.float32))
  t = l2_normalize(text_emb.astype(jnp.float32))
  scale = jnp.exp(jnp.minimum(jnp.asarray(logit_scale, jnp.float32), jnp.log(max_scale)))
  logits = scale * jnp.matmul(i, t.T, precision=jax.lax.Precision.HIGHEST)
  image_to_text = -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=1)))
  text_to_image = -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=0)))
  return 0.5 * (image_to_text + text_to_image)
