"""sslax/models/dense.py: the dense layers' dot_general equals lax.dot_general, values and grads."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sslax.models import dense

CASES = [  # (input shape, kernel shape, contracted trailing axes)
    ((6, 5), (5, 7), 1),  # Dense on [B, D].
    ((2, 3, 5), (5, 4), 1),  # Dense on [B, T, D].
    ((2, 3, 5), (5, 3, 2, 4), 1),  # Fused q/k/v projection: [D, 3, heads, head_dim].
    ((2, 3, 2, 4), (2, 4, 5), 2),  # Attention output: [heads, head_dim, D].
]


@pytest.mark.parametrize("x_shape, w_shape, k", CASES)
def test_value_and_gradients_equal_lax_dot_general(x_shape, w_shape, k):
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x, w = jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)
  dims = (((tuple(range(len(x_shape) - k, len(x_shape)))), tuple(range(k))), ((), ()))
  out_shape = x_shape[:len(x_shape) - k] + w_shape[k:]
  g = jax.random.normal(kg, out_shape)

  def loss(f):
    return lambda x, w: jnp.sum(f(x, w, dims) * g)

  want = jax.value_and_grad(loss(lax.dot_general), (0, 1))(x, w)
  got = jax.jit(jax.value_and_grad(loss(dense.dot_general), (0, 1)))(x, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_input_gradient_multiplies_by_a_materialised_transpose():
  """The point of the module: in the compiled backward the input gradient's dot contracts the
  kernel's leading axis (a plain row-major GEMM), not its trailing one."""
  x, w = jnp.ones((8, 5)), jnp.ones((5, 7))
  hlo = jax.jit(jax.grad(lambda x: jnp.sum(dense.matmul(x, w)))).lower(x).compile().as_text()
  dots = [line for line in hlo.splitlines() if " dot(" in line]
  assert dots and all("rhs_contracting_dims={0}" in line for line in dots)


def test_other_contractions_fall_back_to_lax():
  x, w = jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5))
  batched = (((2,), (1,)), ((0,), (0,)))
  np.testing.assert_array_equal(dense.dot_general(x, w, batched), lax.dot_general(x, w, batched))


def test_dense_layer_with_it_keeps_its_parameters_and_outputs():
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
  plain, ours = nn.Dense(3), nn.Dense(3, dot_general=dense.dot_general)
  params = plain.init(jax.random.PRNGKey(2), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(2), x)) == jax.tree.map(
      jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), plain.apply(params, x), rtol=1e-6)
