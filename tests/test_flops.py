"""Tests for sslax.flops: analytic counts against hand counts, and the peak table lookup."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from sslax import flops
from sslax.models.attention import SelfAttention
from sslax.models.conv import MatmulGradConv


def _module_flops(module: nn.Module, x: jax.Array) -> float:
  params = module.init(jax.random.key(0), x)
  return flops.flops(module.apply, params, x)


def test_dense_layer():
  # [B, din] @ [din, dout]: B * din * dout multiply-accumulates; the bias add is not counted.
  assert _module_flops(nn.Dense(7), jnp.ones((5, 3))) == 2 * 5 * 3 * 7


def test_conv_3x3_counts_padding_taps():
  # SAME padding keeps 8x6 outputs; every one sees all 9 taps, border taps on padding included.
  x = jnp.ones((2, 8, 6, 3))
  assert _module_flops(nn.Conv(4, (3, 3), padding="SAME"), x) == 2 * 2 * 8 * 6 * 9 * 3 * 4
  # Stride 2 and no padding: 3x2 outputs.
  assert _module_flops(nn.Conv(4, (3, 3), strides=2, padding="VALID"), x) == 2 * 2 * 3 * 2 * 9 * 12
  # Grouped: each output channel sees only its group's 3 of 6 inputs.
  grouped = nn.Conv(4, (3, 3), padding="SAME", feature_group_count=2)
  assert _module_flops(grouped, jnp.ones((2, 8, 6, 6))) == 2 * 2 * 8 * 6 * 9 * 3 * 4


def test_conv_inside_custom_vjp_is_counted():
  x = jnp.ones((2, 8, 8, 3))
  assert _module_flops(MatmulGradConv(4, (3, 3), padding=1), x) == 2 * 2 * 8 * 8 * 9 * 3 * 4


def test_transposed_conv_counts_taps_on_input_pixels():
  # Stride 2, kernel 2: each output pixel is hit by exactly one input pixel and one tap.
  x = jnp.ones((1, 4, 4, 3))
  assert _module_flops(nn.ConvTranspose(5, (2, 2), strides=(2, 2)), x) == 2 * 8 * 8 * 3 * 5


def test_attention_block():
  # q, k, v and out projections 4 x B*T*D*D, scores and weighted sum 2 x B*T*T*D (all heads).
  b, t, d = 2, 6, 8
  count = _module_flops(SelfAttention(num_heads=2), jnp.ones((b, t, d)))
  assert count == 2 * (4 * b * t * d * d + 2 * b * t * t * d)


def test_scan_cond_and_jit_sub_jaxprs():
  w = jnp.ones((4, 4))

  def body(h, _):
    return jax.jit(lambda h: h @ w)(h), None

  def scanned(h):
    return jax.lax.scan(body, h, None, length=5)[0]

  h = jnp.ones((3, 4))
  assert flops.flops(scanned, h) == 5 * 2 * 3 * 4 * 4
  # cond: the costlier branch (two matmuls) is counted.
  branch = lambda p, h: jax.lax.cond(p, lambda h: h @ w @ w, lambda h: h @ w, h)  # noqa: E731
  assert flops.flops(branch, True, h) == 2 * 2 * 3 * 4 * 4


def test_train_step_is_forward_plus_two_matmuls_per_layer():
  # Gradient wrt the weights only: each layer adds dW and dX, except the first layer's dX.
  mlp = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(4)])
  x = jnp.ones((8, 5))
  params = mlp.init(jax.random.key(0), x)
  forward = 2 * 8 * (5 * 16 + 16 * 4)
  assert flops.flops(mlp.apply, params, x) == forward
  step = flops.flops(jax.grad(lambda p: mlp.apply(p, x).sum()), params)
  assert step == forward + 2 * 8 * (5 * 16 + 2 * 16 * 4)


def test_xla_flops_of_a_matmul():
  a = jnp.ones((16, 32))
  compiled = jax.jit(lambda a: a @ a.T).lower(a).compile()
  assert flops.xla_flops(compiled) == pytest.approx(2 * 16 * 16 * 32, rel=0.05)


@pytest.mark.parametrize("kind, dtype, expected", [
    ("TPU v4", "bfloat16", 275e12),
    ("TPU v5 lite", "bfloat16", 197e12),
    ("TPU v5p", "float32", 459e12),  # No float32 entry: bf16's.
    ("NVIDIA A100-SXM4-80GB", "float32", 19.5e12),
    ("NVIDIA H100 PCIe", "bfloat16", 756e12),  # The longest matching key wins over "h100".
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),
    ("NVIDIA H200", "bfloat16", 989e12),
])
def test_peak_flops(kind, dtype, expected):
  assert flops.peak_flops(kind, dtype) == expected


def test_peak_flops_unknown_kind_says_what_to_pass():
  with pytest.raises(ValueError, match="--peak"):
    flops.peak_flops("Some New Chip")
