"""The faster-weight-gradient convolutions compute exactly what XLA's convolution computes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.models import conv as conv_lib
from sslax.models import make_encoder
from sslax.models.conv import conv2d, num_chunks
from sslax.models.resnet import resolve_conv_weight_grad


def _reference(x, w, stride, padding):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _grads(fn, x, w):
  return jax.grad(lambda x, w: jnp.sum(jnp.sin(fn(x, w).astype(jnp.float32))), (0, 1))(x, w)


@pytest.mark.parametrize("weight_grad", ["matmul", "chunked"])
@pytest.mark.parametrize("kernel,stride,pad,size", [(3, 1, 1, 8), (3, 2, 1, 9), (1, 2, 0, 8),
                                                    (7, 2, 3, 12)])
def test_value_and_gradients_match_xla(monkeypatch, weight_grad, kernel, stride, pad, size):
  monkeypatch.setattr(conv_lib, "DW_CHUNK_POSITIONS", 1)  # Batch 6: three chunks of two images.
  monkeypatch.setattr(conv_lib, "DW_MIN_CHUNK", 2)
  rng = np.random.default_rng(kernel + stride)
  x = jnp.asarray(rng.normal(size=(6, size, size, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 4, 5)), jnp.float32)
  padding = ((pad, pad), (pad, pad))
  ours = lambda x, w: conv2d(x, w, (stride, stride), padding, weight_grad)  # noqa: E731
  theirs = lambda x, w: _reference(x, w, stride, padding)  # noqa: E731
  np.testing.assert_allclose(ours(x, w), theirs(x, w), rtol=1e-5, atol=1e-5)
  for a, b in zip(_grads(ours, x, w), _grads(theirs, x, w), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weight_grad", ["matmul", "chunked"])
def test_bfloat16_gradients_match_xla_in_bfloat16(weight_grad):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(8, 16, 16, 8)), jnp.bfloat16)  # Two chunks of 4 images.
  w = jnp.asarray(rng.normal(size=(3, 3, 8, 4)) * 0.2, jnp.bfloat16)
  padding = ((1, 1), (1, 1))
  ours = _grads(lambda x, w: conv2d(x, w, (1, 1), padding, weight_grad), x, w)
  theirs = _grads(lambda x, w: _reference(x, w, 1, padding), x, w)
  for a, b in zip(ours, theirs, strict=True):
    assert a.dtype == b.dtype == jnp.bfloat16
    scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))
    np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), atol=0.02 * scale)


def test_chunks_divide_the_batch_and_hold_at_least_the_chunk_size():
  assert [num_chunks(b, 16) for b in (1, 15, 16, 32, 48, 100, 512)] == [1, 1, 1, 2, 3, 5, 32]
  assert num_chunks(6, 2) == 3 and num_chunks(7, 2) == 1


def test_auto_is_chunked_on_cpu_and_names_are_checked():
  assert jax.default_backend() == "cpu"
  assert resolve_conv_weight_grad("auto") == "chunked"
  assert resolve_conv_weight_grad("xla") == "xla"


@pytest.mark.parametrize("weight_grad", ["matmul", "auto"])
def test_encoder_with_faster_weight_gradient_has_the_same_parameters_and_gradients(
    monkeypatch, weight_grad):
  monkeypatch.setattr(conv_lib, "DW_CHUNK_POSITIONS", 1)  # "auto": two chunks of two images.
  monkeypatch.setattr(conv_lib, "DW_MIN_CHUNK", 2)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 3)), jnp.float32)
  cfg = dict(name="resnet18", width=4, cifar_stem=True)
  xla, fast = make_encoder(cfg), make_encoder({**cfg, "conv_weight_grad": weight_grad})
  variables = xla.init(jax.random.key(0), x, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(
      fast.init(jax.random.key(0), x, train=False))

  def grads(model):
    def loss(params):
      out, _ = model.apply({**variables, "params": params}, x, train=True,
                           mutable=["batch_stats"])
      return jnp.sum(out ** 2)
    return jax.jit(jax.grad(loss))(variables["params"])  # One compile, not ~300 eager ops.

  for a, b in zip(jax.tree.leaves(grads(xla)), jax.tree.leaves(grads(fast)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_unknown_weight_gradient_is_a_clear_error():
  model = make_encoder(dict(name="small_cnn", widths=(4,), conv_weight_grad="winograd"))
  with pytest.raises(ValueError, match="conv_weight_grad must be one of"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)
