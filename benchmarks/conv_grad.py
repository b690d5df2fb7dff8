"""Where a convolution's training time goes on this backend: forward, dX, dW, and dW as a matmul.

  python benchmarks/conv_grad.py --batch=64 --size=32 --cin=64 --cout=64 --stride=1

Prints one JSON line of milliseconds (median of --repeats calls after one warm-up call). The
`dw_im2col` column is the candidate replacement for XLA's weight-gradient convolution: the
patches of x as a [batch*H*W, 9*cin] matrix, multiplied by dY as [batch*H*W, cout].
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


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


def time_ms(fn, *args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times))


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
  np.testing.assert_allclose(dw_mm(x, dy), vjp(dy)[1], rtol=2e-3, atol=2e-2)
  flops = 2 * y.shape[0] * y.shape[1] * y.shape[2] * 9 * a.cin * a.cout
  row = {"shape": [a.batch, a.size, a.size, a.cin, a.cout, a.stride],
         "forward_ms": time_ms(jax.jit(lambda x, w: conv(x, w, a.stride)), x, w,
                               repeats=a.repeats),
         "dx_ms": time_ms(dx_xla, x, w, dy, repeats=a.repeats),
         "dw_ms": time_ms(dw_xla, x, w, dy, repeats=a.repeats),
         "dw_im2col_ms": time_ms(dw_mm, x, dy, repeats=a.repeats),
         "gflop_per_pass": flops / 1e9, "platform": jax.devices()[0].platform}
  print(json.dumps(row))


if __name__ == "__main__":
  main()
