"""The matmul ceiling of this machine: median FLOP/s of a jitted square `jnp.dot`.

  python benchmarks/matmul_peak.py                      # float32 4096^3, the CPU peak of
  python benchmarks/matmul_peak.py --dtype=bfloat16     # sslax/flops.py::PEAK_FLOPS["cpu"]

Prints one JSON line: the size, dtype, median and best seconds of `--repeats` calls after one
warm-up, and the FLOP/s (2 n^3 per call) of the median.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=4096)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.standard_normal((args.size, args.size)), args.dtype) for _ in "ab")
  dot = jax.jit(jnp.dot)
  jax.block_until_ready(dot(a, b))
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    jax.block_until_ready(dot(a, b))
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  print(json.dumps({"size": args.size, "dtype": args.dtype, "median_s": median,
                    "best_s": min(times), "flops_per_sec": 2 * args.size ** 3 / median,
                    "device_kind": jax.devices()[0].device_kind}))


if __name__ == "__main__":
  main()
