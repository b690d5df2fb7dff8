"""The matmul ceiling of this machine: median FLOP/s of a jitted square `jnp.dot`.

  python benchmarks/matmul_peak.py                      # float32 4096^3, the CPU peak of
  python benchmarks/matmul_peak.py --dtype=bfloat16     # sslax/flops.py::PEAK_FLOPS["cpu"]
  python benchmarks/matmul_peak.py --shapes=4352x192x768,16640x128x512   # m x k x n GEMMs

With --shapes, each [m, k] x [k, n] product is timed as a train step runs it: forward (a b),
weight gradient (a^T g) and input gradient (g b^T), one JSON line a shape, each with its
GFLOP/s (the MAE table in benchmarks/README.md).

Prints one JSON line: the size, dtype, median and best seconds of `--repeats` calls after one
warm-up, and the FLOP/s (2 n^3 per call) of the median.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def call_seconds(fn, *args, repeats: int) -> list[float]:
  """Wall times of `repeats` calls of `fn(*args)` after one warm-up call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return times


def time_shape(m: int, k: int, n: int, dtype: str, repeats: int) -> dict:
  """GFLOP/s of the three products of a dense layer [m, k] x [k, n] in a train step."""
  a, b, g = jnp.ones((m, k), dtype), jnp.ones((k, n), dtype), jnp.ones((m, n), dtype)
  flops = 2 * m * k * n
  products = {"forward": (jax.jit(jnp.dot), a, b),
              "weight_grad": (jax.jit(lambda a, g: a.T @ g), a, g),
              "input_grad": (jax.jit(lambda g, b: g @ b.T), g, b)}
  return {"shape": f"{m}x{k}x{n}", "dtype": dtype,
          **{name + "_gflops_per_sec":
             flops / float(np.median(call_seconds(fn, x, y, repeats=repeats))) / 1e9
             for name, (fn, x, y) in products.items()}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=4096)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--shapes", default="", help="comma-separated m x k x n, e.g. 4352x192x768")
  args = parser.parse_args()
  if args.shapes:
    for shape in args.shapes.split(","):
      m, k, n = (int(v) for v in shape.split("x"))
      print(json.dumps(time_shape(m, k, n, args.dtype, args.repeats)), flush=True)
    return
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.standard_normal((args.size, args.size)), args.dtype) for _ in "ab")
  times = call_seconds(jax.jit(jnp.dot), a, b, repeats=args.repeats)
  median = float(np.median(times))
  print(json.dumps({"size": args.size, "dtype": args.dtype, "median_s": median,
                    "best_s": min(times), "flops_per_sec": 2 * args.size ** 3 / median,
                    "device_kind": jax.devices()[0].device_kind}))


if __name__ == "__main__":
  main()
