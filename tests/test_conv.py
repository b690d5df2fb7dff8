"""The matmul-weight-gradient convolution computes exactly what XLA's convolution computes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.models import make_encoder
from sslax.models.conv import conv2d


@pytest.mark.parametrize("kernel,stride,pad,size", [(3, 1, 1, 8), (3, 2, 1, 9), (1, 2, 0, 8),
                                                    (7, 2, 3, 12)])
def test_value_and_gradients_match_xla(kernel, stride, pad, size):
  rng = np.random.default_rng(kernel + stride)
  x = jnp.asarray(rng.normal(size=(3, size, size, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 4, 5)), jnp.float32)
  padding = ((pad, pad), (pad, pad))

  def reference(x, w):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def loss(fn):
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w)))

  np.testing.assert_allclose(conv2d(x, w, (stride, stride), padding), reference(x, w),
                             rtol=1e-5, atol=1e-5)
  ours = jax.grad(loss(lambda x, w: conv2d(x, w, (stride, stride), padding)), (0, 1))(x, w)
  theirs = jax.grad(loss(reference), (0, 1))(x, w)
  for a, b in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_encoder_with_matmul_weight_gradient_has_the_same_parameters_and_gradients():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 3)), jnp.float32)
  cfg = dict(name="resnet18", width=4, cifar_stem=True)
  xla, matmul = make_encoder(cfg), make_encoder({**cfg, "conv_weight_grad": "matmul"})
  variables = xla.init(jax.random.key(0), x, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(
      matmul.init(jax.random.key(0), x, train=False))

  def grads(model):
    def loss(params):
      out, _ = model.apply({**variables, "params": params}, x, train=True,
                           mutable=["batch_stats"])
      return jnp.sum(out ** 2)
    return jax.grad(loss)(variables["params"])

  for a, b in zip(jax.tree.leaves(grads(xla)), jax.tree.leaves(grads(matmul)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_unknown_weight_gradient_is_a_clear_error():
  model = make_encoder(dict(name="small_cnn", widths=(4,), conv_weight_grad="winograd"))
  with pytest.raises(ValueError, match="conv_weight_grad must be one of"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)
