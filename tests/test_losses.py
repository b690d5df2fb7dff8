"""Losses against direct numpy references, on one device and sharded over eight."""
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sslax import losses, parallel


def nt_xent_reference(z_a, z_b, temperature):
  """Loop-by-loop NT-Xent as the SimCLR paper writes it: l(i, j) averaged over 2N anchors."""
  z = np.concatenate([z_a, z_b]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  total = 0.0
  for i in range(n2):
    j = (i + n2 // 2) % n2
    others = [np.exp(z[i] @ z[k] / temperature) for k in range(n2) if k != i]
    total += -np.log(np.exp(z[i] @ z[j] / temperature) / np.sum(others))
  return total / n2


@pytest.mark.parametrize("batch,dim,temperature", [(4, 3, 0.5), (16, 8, 0.1), (8, 32, 1.0)])
def test_nt_xent_matches_numpy(batch, dim, temperature):
  rng = np.random.default_rng(batch + dim)
  z_a = rng.normal(size=(batch, dim)).astype(np.float32)
  z_b = rng.normal(size=(batch, dim)).astype(np.float32)
  got = float(losses.nt_xent(z_a, z_b, temperature))
  np.testing.assert_allclose(got, nt_xent_reference(z_a, z_b, temperature), rtol=1e-5)


def test_nt_xent_is_low_for_aligned_views_and_scale_invariant():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(8, 16)).astype(np.float32)
  aligned = float(losses.nt_xent(z, 3.0 * z, 0.1))
  shuffled = float(losses.nt_xent(z, z[::-1], 0.1))
  assert aligned < shuffled
  # Absolute: the loss is near 0 (log of a sum near 1), so float32 rounding of the logits (up to
  # 10 here) is a large relative error; CPUs with AVX-512 round differently (4e-6 relative).
  np.testing.assert_allclose(aligned, float(losses.nt_xent(2.0 * z, z, 0.1)), rtol=0, atol=1e-6)


def test_nt_xent_sharded_over_8_devices_equals_one_device():
  rng = np.random.default_rng(1)
  z_a = rng.normal(size=(32, 16)).astype(np.float32)
  z_b = rng.normal(size=(32, 16)).astype(np.float32)
  single = float(jax.jit(losses.nt_xent, static_argnums=2)(z_a, z_b, 0.2))
  mesh = parallel.make_mesh({"data": -1})
  assert mesh.size == 8
  sharding = NamedSharding(mesh, P(("data", "fsdp")))
  sharded_a, sharded_b = jax.device_put(z_a, sharding), jax.device_put(z_b, sharding)
  assert len(sharded_a.addressable_shards) == 8
  sharded = float(jax.jit(losses.nt_xent, static_argnums=2)(sharded_a, sharded_b, 0.2))
  np.testing.assert_allclose(sharded, single, rtol=1e-6)


def test_contrastive_top1():
  z = np.eye(4, dtype=np.float32)
  assert float(losses.contrastive_top1(z, z)) == 1.0
  assert float(losses.contrastive_top1(z, z[[1, 0, 2, 3]])) == 0.5


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def info_nce_reference(q, k, temperature):
  q, k = _normalize(q.astype(np.float64)), _normalize(k.astype(np.float64))
  total = 0.0
  for i in range(len(q)):
    logits = [q[i] @ k[j] / temperature for j in range(len(k))]
    total += -(logits[i] - np.log(np.sum(np.exp(logits))))
  return total / len(q)


def dino_reference(student, teacher, center, student_temp, teacher_temp):
  """DINO's double loop over (teacher view, student view) pairs, skipping equal views."""
  student, teacher = student.astype(np.float64), teacher.astype(np.float64)
  total, terms = 0.0, 0
  for t in range(len(teacher)):
    q = np.exp(_log_softmax((teacher[t] - center) / teacher_temp))
    for s in range(len(student)):
      if s != t:
        total += np.mean(np.sum(-q * _log_softmax(student[s] / student_temp), axis=-1))
        terms += 1
  return total / terms


def coding_rate_reference(z, eps):
  b, d = z.shape
  z = z.astype(np.float64)
  return 0.5 * np.linalg.slogdet(np.eye(d) + d / (b * eps) * z.T @ z)[1]


def mae_reference(pred, target, mask, norm_pix):
  pred, target = pred.astype(np.float64), target.astype(np.float64)
  total, hidden = 0.0, 0
  for i in range(pred.shape[0]):
    for j in range(pred.shape[1]):
      if mask[i, j]:
        t = target[i, j]
        if norm_pix:
          t = (t - t.mean()) / np.sqrt(t.var() + 1e-6)
        total += np.mean((pred[i, j] - t) ** 2)
        hidden += 1
  return total / hidden


@pytest.mark.parametrize("batch,dim,temperature", [(4, 3, 0.2), (16, 8, 1.0)])
def test_info_nce_matches_numpy(batch, dim, temperature):
  rng = np.random.default_rng(batch)
  q, k = rng.normal(size=(2, batch, dim)).astype(np.float32)
  np.testing.assert_allclose(float(losses.info_nce(q, k, temperature)),
                             info_nce_reference(q, k, temperature), rtol=1e-5)


def test_byol_loss_matches_numpy_and_its_bounds():
  rng = np.random.default_rng(2)
  p, z = rng.normal(size=(2, 8, 5)).astype(np.float32)
  cos = np.sum(_normalize(p) * _normalize(z), axis=-1)
  np.testing.assert_allclose(float(losses.byol_loss(p, z)), np.mean(2 - 2 * cos), rtol=1e-5)
  assert abs(float(losses.byol_loss(p, 3 * p))) < 1e-6
  np.testing.assert_allclose(float(losses.byol_loss(p, -p)), 4.0, rtol=1e-6)


@pytest.mark.parametrize("n_student,n_teacher", [(2, 2), (6, 2)])
def test_dino_loss_matches_numpy(n_student, n_teacher):
  rng = np.random.default_rng(n_student)
  student = rng.normal(size=(n_student, 4, 10)).astype(np.float32)
  teacher = rng.normal(size=(n_teacher, 4, 10)).astype(np.float32)
  center = rng.normal(size=(10,)).astype(np.float32)
  got = float(losses.dino_loss(student, teacher, center, 0.1, 0.04))
  np.testing.assert_allclose(got, dino_reference(student, teacher, center, 0.1, 0.04), rtol=1e-5)


def test_dino_loss_sends_no_gradient_to_the_teacher():
  rng = np.random.default_rng(3)
  student, teacher = rng.normal(size=(2, 2, 4, 6)).astype(np.float32)
  grad = jax.grad(lambda t: losses.dino_loss(student, t, np.zeros(6, np.float32), 0.1, 0.04))
  assert not np.any(grad(teacher))


@pytest.mark.parametrize("b,d,eps", [(16, 4, 0.05), (5, 12, 0.5)])
def test_coding_rate_matches_numpy(b, d, eps):
  z = np.random.default_rng(b).normal(size=(b, d)).astype(np.float32)
  np.testing.assert_allclose(float(losses.coding_rate(z, eps)), coding_rate_reference(z, eps),
                             rtol=1e-5)


def test_coding_rate_prefers_spread_features_to_collapsed_ones():
  spread = np.eye(8, dtype=np.float32)
  collapsed = np.tile(spread[:1], (8, 1))
  assert float(losses.coding_rate(spread, 0.05)) > float(losses.coding_rate(collapsed, 0.05))


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_loss_matches_numpy_and_ignores_visible_patches(norm_pix):
  rng = np.random.default_rng(4)
  pred, target = rng.normal(size=(2, 3, 5, 12)).astype(np.float32)
  mask = (rng.random((3, 5)) < 0.6).astype(np.float32)
  got = float(losses.mae_loss(pred, target, mask, norm_pix))
  np.testing.assert_allclose(got, mae_reference(pred, target, mask, norm_pix), rtol=1e-5)
  moved = np.where(mask[..., None] > 0, pred, pred + 100.0)  # Change only visible patches.
  np.testing.assert_allclose(float(losses.mae_loss(moved, target, mask, norm_pix)), got,
                             rtol=1e-6)


def _on_eight_devices(fn, *arrays, batch_axis=0):
  """fn on one device and on arrays whose `batch_axis` is split over 8 devices."""
  mesh = parallel.make_mesh({"data": -1})

  def sharding(a):
    spec = [None] * a.ndim
    spec[batch_axis] = ("data", "fsdp")
    return NamedSharding(mesh, P(*spec))

  sharded = [jax.device_put(a, sharding(a)) for a in arrays]
  assert len(sharded[0].addressable_shards) == 8
  return float(jax.jit(fn)(*arrays)), float(jax.jit(fn)(*sharded))


def test_global_batch_losses_sharded_over_8_devices_equal_one_device():
  rng = np.random.default_rng(5)
  q, k = rng.normal(size=(2, 32, 16)).astype(np.float32)
  single, sharded = _on_eight_devices(lambda a, b: losses.info_nce(a, b, 0.2), q, k)
  np.testing.assert_allclose(sharded, single, rtol=1e-6)
  single, sharded = _on_eight_devices(lambda z: losses.coding_rate(z, 0.05), q)
  np.testing.assert_allclose(sharded, single, rtol=1e-5)
  student = rng.normal(size=(4, 16, 10)).astype(np.float32)
  teacher = rng.normal(size=(2, 16, 10)).astype(np.float32)
  center = np.zeros(10, np.float32)
  single, sharded = _on_eight_devices(
      lambda s, t: losses.dino_loss(s, t, center, 0.1, 0.04), student, teacher, batch_axis=1)
  np.testing.assert_allclose(sharded, single, rtol=1e-6)


def test_token_cross_entropy_counts_only_labelled_positions():
  # By hand: vocab 3, two sequences of 3 positions, 3 labelled. Unlabelled positions carry
  # extreme logits that would dominate the mean if they were counted.
  logits = np.array([[[2.0, 0.0, 0.0], [50.0, -50.0, 0.0], [0.0, 1.0, 0.0]],
                     [[0.0, 0.0, 0.0], [-30.0, 30.0, 9.0], [9.0, 0.0, -9.0]]], np.float32)
  labels = np.array([[0, -1, 2], [1, -1, -1]], np.int32)
  expected = np.mean([np.log(np.exp(2) + 2) - 2, np.log(2 + np.e) - 0, np.log(3.0)])
  loss, accuracy = losses.token_cross_entropy(logits, labels)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
  # Position (0, 0) is right; (0, 2) predicts 1 not 2; (1, 0) is a three-way tie, argmax 0.
  np.testing.assert_allclose(float(accuracy), 1 / 3, rtol=1e-6)


def test_token_cross_entropy_matches_numpy_and_is_global_over_8_devices():
  rng = np.random.default_rng(7)
  logits = rng.normal(size=(16, 5, 11)).astype(np.float32)
  labels = rng.integers(0, 11, size=(16, 5)).astype(np.int32)
  labels[rng.random(size=labels.shape) < 0.6] = -1
  wide = logits.astype(np.float64)
  log_probs = wide - np.log(np.exp(wide).sum(-1, keepdims=True))
  rows, cols = np.nonzero(labels >= 0)
  expected = -np.mean(log_probs[rows, cols, labels[rows, cols]])
  np.testing.assert_allclose(float(losses.token_cross_entropy(logits, labels)[0]), expected,
                             rtol=1e-5)
  single, sharded = _on_eight_devices(lambda x, y: losses.token_cross_entropy(x, y)[0],
                                      logits, labels)
  np.testing.assert_allclose(sharded, single, rtol=1e-6)
