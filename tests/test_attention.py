"""sslax/models/attention.py: the fused projection and the folded attention against references."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.models.attention import SelfAttention, folded_attention


def qkv(shape, dtype=jnp.float32):
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  return [jax.random.normal(k, shape).astype(dtype) for k in keys]


@pytest.mark.parametrize("shape", [(4, 17, 3, 8), (2, 5, 4, 6)])
def test_folded_attention_value_and_gradients_equal_jax_nn(shape):
  q, k, v, g = qkv(shape)

  def loss(f):
    return lambda q, k, v: jnp.sum(f(q, k, v) * g)

  want = jax.value_and_grad(loss(jax.nn.dot_product_attention), (0, 1, 2))(q, k, v)
  got = jax.jit(jax.value_and_grad(loss(folded_attention), (0, 1, 2)))(q, k, v)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_folded_attention_in_bfloat16_keeps_float32_softmax_and_matches():
  q, k, v, _ = qkv((2, 9, 2, 8), jnp.bfloat16)
  got = folded_attention(q, k, v)
  assert got.dtype == jnp.bfloat16
  want = jax.nn.dot_product_attention(q, k, v)
  np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-2)


class SeparateProjections(nn.Module):
  """The layer as three nn.DenseGeneral projections and jax.nn.dot_product_attention."""
  num_heads: int

  @nn.compact
  def __call__(self, x, mask=None):
    dim = x.shape[-1]
    proj = lambda name, bias=True: nn.DenseGeneral(  # noqa: E731
        (self.num_heads, dim // self.num_heads), use_bias=bias, name=name,
        kernel_init=nn.initializers.xavier_uniform())
    q, k, v = proj("query")(x), proj("key", False)(x), proj("value")(x)
    y = jax.nn.dot_product_attention(q, k, v, mask=mask)
    return nn.DenseGeneral(dim, axis=(-2, -1), kernel_init=nn.initializers.xavier_uniform(),
                           name="out")(y)


@pytest.mark.parametrize("with_mask", [False, True])
def test_fused_layer_has_the_separate_layers_parameters_and_function(with_mask):
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 7, 12))
  mask = (jnp.arange(7) < 5)[None, None, None, :].repeat(3, 0) if with_mask else None
  ours, reference = SelfAttention(num_heads=3), SeparateProjections(num_heads=3)
  params = ours.init(jax.random.PRNGKey(2), x, mask)
  reference_params = reference.init(jax.random.PRNGKey(2), x, mask)
  # Same names, shapes and initial values (so checkpoints and sharding rules carry over).
  jax.tree.map(np.testing.assert_array_equal, params, reference_params)
  g = jax.random.normal(jax.random.PRNGKey(3), x.shape)

  def loss(module):
    return lambda p, x: jnp.sum(module.apply(p, x, mask) * g)

  got = jax.jit(jax.value_and_grad(loss(ours), (0, 1)))(params, x)
  want = jax.value_and_grad(loss(reference), (0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
