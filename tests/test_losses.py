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
  np.testing.assert_allclose(aligned, float(losses.nt_xent(2.0 * z, z, 0.1)), rtol=1e-6)


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
