"""The matmul of dense layers, with an input gradient that XLA:CPU computes at full speed.

`dot_general` is a drop-in for the `dot_general` of nn.Dense and nn.DenseGeneral. For their usual
contraction (the input's trailing axes with the kernel's leading ones, no batch axes) on CPU it
is `matmul`: the same forward, and a backward whose input gradient g @ W^T multiplies by a
transposed copy of the kernel made explicit. XLA otherwise folds the transpose into the dot, and
XLA:CPU's library (YNNPACK, jax 0.10) ran that "B transposed" form at ~105 GFLOP/s inside the MAE
ViT-Tiny/4 step against ~190 for the plain form at the same shapes (2-core AMD EPYC,
2026-12-06); the copy is the kernel's size, a few hundred KB. The step went ~3% faster
(benchmarks/README.md). On GPU and TPU the library handles transposed operands itself, so there
`dot_general` is lax.dot_general.
"""
import math

import jax
from flax.typing import Array
from jax import lax


@jax.custom_vjp
def matmul(x: Array, w: Array) -> Array:
  """x [m, k] @ w [k, n]; the input gradient multiplies by a materialised w^T."""
  return x @ w


def _matmul_fwd(x: Array, w: Array) -> tuple[Array, tuple[Array, Array]]:
  return x @ w, (x, w)


def _matmul_bwd(residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
  x, w = residuals
  # The barrier keeps XLA from folding the transpose back into the dot's dimension numbers.
  return g @ lax.optimization_barrier(w.T), x.T @ g


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                preferred_element_type=None) -> Array:
  """lax.dot_general, through `matmul` for a dense layer's contraction on CPU."""
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  k = len(lhs_contract)
  dense = (not lhs_batch and not rhs_batch and precision is None
           and preferred_element_type is None
           and tuple(lhs_contract) == tuple(range(lhs.ndim - k, lhs.ndim))
           and tuple(rhs_contract) == tuple(range(k)))
  if not dense or jax.default_backend() != "cpu":
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  depth = math.prod(rhs.shape[:k])
  out = matmul(lhs.reshape(-1, depth), rhs.reshape(depth, -1))
  return out.reshape(lhs.shape[:lhs.ndim - k] + rhs.shape[k:])
