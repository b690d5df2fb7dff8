"""Analytic FLOP counts of jitted functions, and the peak FLOP/s of the hardware they run on.

`jaxpr_flops` walks a jaxpr and sums 2 x multiply-accumulates of every `dot_general` and
`conv_general_dilated`, inside pjit, custom_vjp/custom_jvp, remat, scan (times its length) and
cond (the costliest branch) sub-jaxprs; a while loop's body counts once (its trip count is not
known when tracing). Elementwise work, reductions and softmax are not counted:
this is the "model FLOPs" convention of MFU (Chowdhery et al. 2022, PaLM, appendix B).
`jax.nn.dot_product_attention` traces to two dot_generals (scores and the weighted sum) with the
XLA implementation that CPU uses, so attention is counted; a cuDNN attention kernel is an opaque
custom call and would not be.

Convolutions count every tap of the kernel window at every output position, padding taps
included (the usual 2 x H_out x W_out x k^2 x C_in x C_out per image); input dilation (transposed
convolutions) divides by the dilation factors, the average number of taps that land on an input
pixel. XLA's `compiled.cost_analysis()["flops"]` differs: it skips padding taps and also counts
elementwise work.
"""
import math
from collections.abc import Callable, Iterable
from typing import Any

import jax
from jax.extend import core as jcore

# Dense peak FLOP/s per chip from the vendors' spec sheets, by numeric type. float32 entries only
# where the vendor lists a separate rate (GPUs run float32 matmuls without Tensor Cores unless
# TF32 is allowed); TPUs compute float32 matmuls in bf16 passes and list bf16 only.
#   TPU v4: 275 TFLOP/s bf16 (cloud.google.com/tpu/docs/v4)
#   TPU v5e: 197 TFLOP/s bf16 (cloud.google.com/tpu/docs/v5e)
#   TPU v5p: 459 TFLOP/s bf16 (cloud.google.com/tpu/docs/v5p)
#   A100 SXM/PCIe: 312 TFLOP/s bf16 dense, 19.5 float32 (NVIDIA A100 datasheet)
#   H100 SXM: 989 TFLOP/s bf16 dense (1,979 with 2:4 sparsity), 67 float32 (H100 datasheet)
#   H100 PCIe: 756 bf16 dense, 51 float32 (H100 datasheet)
#   H200 SXM: 989 bf16 dense, 67 float32, the H100 SXM's compute (H200 datasheet)
#   H200 NVL: 835 bf16 dense, 60 float32 (H200 datasheet)
#   cpu: the float32 4096^3 jnp.dot ceiling measured by benchmarks/matmul_peak.py on the
#     2-core Intel Xeon of 2026-12-01: median 150 GFLOP/s at load 1.6 (other jobs still on the
#     cores; 33-39 at load 10-20). The 2-core AMD EPYC machines of 2026-11 reached 377. A
#     measured ceiling, not a spec: re-measure on a quiet machine, or pass --peak.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "tpu v4": {"bfloat16": 275e12},
    "tpu v5 lite": {"bfloat16": 197e12},  # v5e's device_kind.
    "tpu v5e": {"bfloat16": 197e12},
    "tpu v5p": {"bfloat16": 459e12},
    "tpu v5": {"bfloat16": 459e12},  # v5p's device_kind.
    "a100": {"bfloat16": 312e12, "float32": 19.5e12},
    "h100 pcie": {"bfloat16": 756e12, "float32": 51e12},
    "h100": {"bfloat16": 989e12, "float32": 67e12},
    "h200 nvl": {"bfloat16": 835e12, "float32": 60e12},
    "h200": {"bfloat16": 989e12, "float32": 67e12},
    "cpu": {"float32": 150e9, "bfloat16": 150e9},
}


def peak_flops(device_kind: str, dtype: str = "bfloat16") -> float:
  """Peak FLOP/s of one device from its `jax.devices()[0].device_kind` and the compute dtype.

  The most specific key contained in the lower-cased kind wins ("NVIDIA H100 PCIe" ->
  "h100 pcie"); a dtype the table does not list falls back to bfloat16.
  """
  kind = device_kind.lower()
  matches = [key for key in PEAK_FLOPS if key in kind]
  if not matches:
    raise ValueError(f"no peak FLOP/s known for device kind {device_kind!r}; pass --peak=FLOPS "
                     f"(known: {', '.join(sorted(PEAK_FLOPS))})")
  rates = PEAK_FLOPS[max(matches, key=len)]
  return rates.get(dtype, rates.get("bfloat16", next(iter(rates.values()))))


def _dot_flops(eqn: Any) -> float:
  (contracting, _), _ = eqn.params["dimension_numbers"]
  lhs = eqn.invars[0].aval.shape
  out = eqn.outvars[0].aval.shape
  return 2.0 * math.prod(out) * math.prod(lhs[d] for d in contracting)


def _conv_flops(eqn: Any) -> float:
  rhs = eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, spatial...)
  taps_x_cin = math.prod(rhs) / rhs[rhs_spec[0]]
  dilation = math.prod(eqn.params["lhs_dilation"] or (1,))
  return 2.0 * math.prod(out) * taps_x_cin / dilation


def _sub_jaxprs(value: Any) -> Iterable[Any]:
  if isinstance(value, jcore.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jcore.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _sub_jaxprs(item)


def jaxpr_flops(jaxpr: Any) -> float:
  """2 x MACs of the dot_generals and convolutions of a (closed) jaxpr and its sub-jaxprs."""
  jaxpr = jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "cond":
      total += max(jaxpr_flops(branch) for branch in eqn.params["branches"])
    else:
      inner = sum(jaxpr_flops(sub) for value in eqn.params.values()
                  for sub in _sub_jaxprs(value))
      total += inner * (eqn.params["length"] if name == "scan" else 1)
  return total


def flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
  """Analytic FLOPs of one call `fn(*args, **kwargs)` (arrays or ShapeDtypeStructs), traced."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def xla_flops(compiled: Any) -> float:
  """FLOPs XLA's cost analysis reports for a compiled computation (0 where it reports none)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per computation.
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))
