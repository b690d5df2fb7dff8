"""ViT-B/16 MAE and DINO train steps in bf16 at 224x224 on one accelerator: examples/s and MFU.

  python benchmarks/gpu_step.py                 # both, about 3 minutes on one GPU
  python benchmarks/gpu_step.py --methods=mae --mae-batch=512
  python benchmarks/gpu_step.py --smoke         # tiny ViTs at 32x32 on CPU: checks the script

Each method runs its paper recipe (configs/mae_imagenet.py, configs/dino_imagenet.py: heads,
losses, optimizer, 75% masking, 2 x 224 + 10 x 96 multi-crop, bf16) on random images, with the
encoder replaced by `--backbone` (ViT-B/16 by default; the DINO recipe itself is ViT-S/16) and
the batch by `--mae-batch` / `--dino-batch` per device. The real jitted train step is compiled
ahead of time, run `--warmup` times, then timed over `--steps` (median). One JSON line per method,
as benchmarks/throughput.py prints them: examples/s, analytic model FLOPs (3 x forward, see
sslax/flops.py), XLA's FLOPs, achieved FLOP/s and MFU against the device's bf16 peak
(sslax/flops.py::PEAK_FLOPS, or `--peak`). The goal on an H100/H200 is MFU >= 0.5.
"""
import argparse
import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np
import throughput  # benchmarks/throughput.py, beside this script.

from sslax import config as config_lib
from sslax.methods import get_method

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {"mae": "mae_imagenet", "dino": "dino_imagenet"}
SMOKE_VIT = dict(patch_size=8, hidden_dim=32, depth=1, num_heads=2)


def recipe(method: str, backbone: str, batch: int, smoke: bool) -> ml_collections.ConfigDict:
  """The method's ImageNet recipe with `backbone` (16x16 patches) and `batch` examples; `smoke`
  shrinks it to a 1-block, 32-wide ViT on 32x32 images (16x16 local crops for DINO)."""
  c = config_lib.load_config(f"{REPO}/configs/{RECIPES[method]}.py")
  c.batch_size = batch
  c.model.encoder = {**c.model.encoder, "name": backbone, "patch_size": 16}
  if smoke:
    c.model.encoder = {**c.model.encoder, **SMOKE_VIT}
    c.data.augment = {**c.data.augment, "size": 32}
    if method == "mae":
      c.model.decoder = dict(hidden_dim=32, depth=1, num_heads=2)
    else:
      c.data.local_view = {**c.data.local_view, "size": 16}
      c.data.num_local_views = 2
      c.model.head = {**c.model.head, "out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16}
  return c


def measure(config: ml_collections.ConfigDict, steps: int, warmup: int,
            peak: float | None) -> dict:
  """Compiles the train step of `config` on all devices and times it on random views."""
  method = get_method(config)
  rng = np.random.default_rng(0)
  views = method.views()
  host_batch = {"views": tuple(
      rng.normal(size=(config.batch_size, spec["size"], spec["size"], 3)).astype(np.float32)
      for spec in views)}
  state, step, batch = throughput.build_step(method, config, host_batch)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  counts = throughput.flop_counts(method, step, compiled, state, batch, config.batch_size)
  for _ in range(warmup + 1):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_time = float(np.median(times))
  examples_per_sec = config.batch_size / step_time
  return {"method": config.method, "backbone": config.model.encoder["name"],
          "views": [spec["size"] for spec in views], "batch": config.batch_size,
          "dtype": config.model.encoder["dtype"], "devices": jax.device_count(),
          "examples_per_sec": examples_per_sec, "step_time_ms": 1000 * step_time,
          "compile_s": compile_s, "loss": float(metrics["loss"]),
          "params": int(sum(x.size for x in jax.tree.leaves(state["params"]))), **counts,
          **throughput.utilisation(counts["model_flops_per_example"], examples_per_sec,
                                   config.model.encoder["dtype"], peak)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="mae,dino", help="comma-separated: mae, dino")
  parser.add_argument("--backbone", default="vit_base",
                      choices=("vit_tiny", "vit_small", "vit_base", "vit_large"))
  parser.add_argument("--mae-batch", type=int, default=256, help="per device")
  parser.add_argument("--dino-batch", type=int, default=64, help="per device")
  parser.add_argument("--steps", type=int, default=10, help="timed steps after warm-up")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
  parser.add_argument("--peak", type=float, default=None, help="peak FLOP/s of one device")
  parser.add_argument("--smoke", action="store_true",
                      help="tiny ViTs at 32x32, batch 4 per device, 2 steps: runs on CPU")
  args = parser.parse_args()
  methods = args.methods.split(",")
  unknown = sorted(set(methods) - set(RECIPES))
  if unknown:
    sys.exit(f"--methods: unknown {unknown}; choose from {sorted(RECIPES)}")
  batches = {"mae": args.mae_batch, "dino": args.dino_batch}
  steps, warmup = (2, 0) if args.smoke else (args.steps, args.warmup)
  for name in methods:
    per_device = 4 if args.smoke else batches[name]
    config = recipe(name, args.backbone, per_device * jax.device_count(), args.smoke)
    result = measure(config, steps, warmup, args.peak)
    print(json.dumps({**result, "smoke": args.smoke}), flush=True)


if __name__ == "__main__":
  main()
