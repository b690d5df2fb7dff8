"""Where a convolution's training time goes on this backend: forward, dX, dW, and dW as a matmul.

  python benchmarks/conv_grad.py --batch=64 --size=32 --cin=64 --cout=64 --stride=1

Prints one JSON line of milliseconds (median of --repeats calls after one warm-up call, the
variants called in turn so that a busy machine slows them alike). Two replacements for XLA's
weight-gradient convolution: `dw_im2col`, the patches of x as a [batch*H*W, 9*cin] matrix times
dY as [batch*H*W, cout]; `dw_chunked`, XLA's own dW convolution on chunks of images, summed
(sslax/models/conv.py, conv_weight_grad="chunked", the CPU choice of "auto").
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from sslax.models import conv as conv_lib


def conv(x, w, stride):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def dw_im2col(x, dy, stride):
  """dL/dW of a 3x3, padding-1 conv from the input and the output gradient, as one matmul."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out_h, out_w = dy.shape[1:3]
  taps = [padded[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
          for i in range(3) for j in range(3)]
  patches = jnp.concatenate(taps, axis=-1).reshape(-1, 9 * x.shape[-1])
  return (patches.T @ dy.reshape(-1, dy.shape[-1])).reshape(3, 3, x.shape[-1], dy.shape[-1])


def time_ms(calls: dict, repeats: int) -> dict[str, float]:
  """Median milliseconds of each {name: (fn, args)}, the calls interleaved."""
  times = {name: [] for name in calls}
  for fn, args in calls.values():
    jax.block_until_ready(fn(*args))
  for _ in range(repeats):
    for name, (fn, args) in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - start)
  return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for name, default in (("batch", 64), ("size", 32), ("cin", 64), ("cout", 64), ("stride", 1),
                        ("repeats", 3)):
    parser.add_argument(f"--{name}", type=int, default=default)
  a = parser.parse_args()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(a.batch, a.size, a.size, a.cin)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, a.cin, a.cout)) * 0.05, jnp.float32)
  y, vjp = jax.vjp(lambda x, w: conv(x, w, a.stride), x, w)
  dy = jnp.ones_like(y)
  dw_xla = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w, a.stride), w)[1](dy)[0])
  dx_xla = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w, a.stride), x)[1](dy)[0])
  dw_mm = jax.jit(lambda x, dy: dw_im2col(x, dy, a.stride))
  padding = ((1, 1), (1, 1))
  dw_chunked = jax.jit(lambda x, w, dy: conv_lib.WEIGHT_GRADS["chunked"](
      x, dy, w, (a.stride, a.stride), padding))
  np.testing.assert_allclose(dw_mm(x, dy), vjp(dy)[1], rtol=2e-3, atol=2e-2)
  np.testing.assert_allclose(dw_chunked(x, w, dy), vjp(dy)[1], rtol=2e-3, atol=2e-2)
  flops = 2 * y.shape[0] * y.shape[1] * y.shape[2] * 9 * a.cin * a.cout
  ms = time_ms({"forward_ms": (jax.jit(lambda x, w: conv(x, w, a.stride)), (x, w)),
                "dx_ms": (dx_xla, (x, w, dy)), "dw_ms": (dw_xla, (x, w, dy)),
                "dw_im2col_ms": (dw_mm, (x, dy)), "dw_chunked_ms": (dw_chunked, (x, w, dy))},
               a.repeats)
  row = {"shape": [a.batch, a.size, a.size, a.cin, a.cout, a.stride], **ms,
         "gflop_per_pass": flops / 1e9, "platform": jax.devices()[0].platform}
  print(json.dumps(row))


if __name__ == "__main__":
  main()
