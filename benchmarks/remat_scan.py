"""Compile time and XLA memory of a ViT's gradient for each depth layout and remat policy.

  python benchmarks/remat_scan.py                         # ViT-Tiny/16, 12 blocks, 8 x 224^2
  python benchmarks/remat_scan.py --model=vit_base --batch=32 --remat=none,dots_saveable

The gradient of a train-step-sized loss (the mean square of the pooled features) is lowered and
compiled ahead of time from abstract parameters, for every (scan_layers, remat) pair in turn,
`--repeats` rounds interleaved so that a busy machine disturbs every variant alike. Prints one
JSON line per compile: seconds to lower and to compile, and XLA's temporary bytes and FLOPs (a
while loop's body counts once in XLA's FLOPs, so scanned FLOPs read low).
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp

from sslax.models import make_encoder


def compile_grad(model_name: str, batch: int, size: int, scan_layers: bool,
                 remat: str) -> dict:
  """Lowers and compiles the gradient once; timings and XLA's memory and cost analyses."""
  model = make_encoder({"name": model_name, "patch_size": 16, "scan_layers": scan_layers,
                        "remat": remat})
  images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
  grad = jax.grad(lambda p, x: jnp.mean(model.apply(p, x, train=True) ** 2))
  start = time.perf_counter()
  lowered = jax.jit(grad).lower(params, images)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  done = time.perf_counter()
  return {"model": model_name, "scan_layers": scan_layers, "remat": remat,
          "lower_s": round(lowered_at - start, 2), "compile_s": round(done - lowered_at, 2),
          "temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
          "flops": compiled.cost_analysis()["flops"]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="vit_tiny")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--remat", default="none,full,dots_saveable")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  for _ in range(args.repeats):
    for remat in args.remat.split(","):
      for scan_layers in (False, True):
        print(json.dumps(compile_grad(args.model, args.batch, args.size, scan_layers, remat)),
              flush=True)


if __name__ == "__main__":
  main()
