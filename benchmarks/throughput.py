"""Train-step throughput of any method on random data, the real jitted step included.

  python benchmarks/throughput.py --method=simclr --backbone=resnet18 --image-size=32 --batch=256
  python benchmarks/throughput.py --method=mae --backbone=vit_tiny --patch-size=4 --image-size=32
  python benchmarks/throughput.py --method=dino --backbone=vit_tiny --patch-size=4 \\
      --image-size=32 --local-size=16 --num-local=4
  python benchmarks/throughput.py --method=mlm --batch=32 --seq-len=128 --optimizer=adamw

The method's own recipe (`configs/<method>_mnist.py`: its heads, losses and schedules) is loaded,
then the backbone, input sizes, batch, dtype and optimizer are replaced from the flags; `--set
key=value` overrides any other field (a Python literal). Prints one JSON line: examples_per_sec
(an example is one image with all its views), step_time_ms (median of the timed steps),
compile_s (ahead-of-time compilation), params. Text methods (mlm, gpt) take their recipe from
configs/bert_wiki.py and configs/gpt_wiki.py (the model from `--set model.text=...`), read random
tokens of `--seq-len` and also report tokens_per_sec.

FLOPs (sslax/flops.py): forward_flops_per_example is the analytic count of the matmuls and
convolutions (padding taps included) of the method's loss; model_flops_per_example = 3 x that,
the usual forward + backward convention, which `achieved_flops_per_sec` and `mfu` use;
step_flops_per_example counts the traced train step itself (the backward as differentiated, so
a teacher's forward counts once and the first layer has no input gradient);
xla_flops_per_example is XLA's cost analysis of the compiled step (it also counts elementwise
work and skips padding taps). The peak is `--peak` FLOP/s per device, else
sslax/flops.py::PEAK_FLOPS for `jax.devices()[0].device_kind` and `--dtype`.

Host memory is set up as `sslax.train` sets it (sslax/host_memory.py: glibc keeps freed memory,
so XLA:CPU's per-step temporaries stop costing page faults); `SSLAX_KEEP_FREED_MEMORY=0` measures
the step without it.
"""
if __name__ == "__main__":  # As sslax.train does, before numpy and JAX start threads.
  from sslax import host_memory
  host_memory.keep_freed_memory()

import argparse
import json
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from sslax import config as config_lib
from sslax import flops as flops_lib
from sslax import optim, parallel
from sslax import state as state_lib
from sslax.methods import get_method
from sslax.step import make_train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKBONES = {
    "resnet18": dict(name="resnet18", cifar_stem=True),
    "resnet50": dict(name="resnet50", cifar_stem=True),
    "small_cnn": dict(name="small_cnn", widths=(32, 64, 128, 256)),
    "vit_tiny": dict(name="vit_tiny"),
    "vit_small": dict(name="vit_small"),
    "vit_base": dict(name="vit_base"),
}
TEXT_CONFIGS = {"mlm": "bert_wiki", "gpt": "gpt_wiki"}


def benchmark_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  overrides = {}
  for item in args.set:
    key, _, value = item.partition("=")
    overrides[key] = config_lib.parse_value(value)
  if args.method in TEXT_CONFIGS:
    c = config_lib.load_config(f"{REPO}/configs/{TEXT_CONFIGS[args.method]}.py", **overrides)
    c.batch_size, c.data.seq_len = args.batch, args.seq_len
    c.model.text = {**c.model.text, "dtype": args.dtype}
    c.optimizer.name = args.optimizer
    return c
  c = config_lib.load_config(f"{REPO}/configs/{args.method}_mnist.py", **overrides)
  c.batch_size = args.batch
  encoder = {**BACKBONES[args.backbone], "dtype": args.dtype,
             "conv_weight_grad": args.conv_weight_grad}
  if args.backbone.startswith("vit"):
    encoder["patch_size"] = args.patch_size
  # `--set model.encoder.KEY=...` refines the --backbone (it used to be overwritten by it).
  encoder.update({key[len("model.encoder."):]: value for key, value in overrides.items()
                  if key.startswith("model.encoder.")})
  c.model.encoder = encoder
  c.data.augment.size = args.image_size
  if args.local_size:
    c.data.local_view.size = args.local_size
    c.data.num_local_views = args.num_local
  c.optimizer.name = args.optimizer
  return c


def random_batch(method_name: str, config: ml_collections.ConfigDict, args: argparse.Namespace,
                 rng: np.random.Generator, views: list) -> dict:
  """A host batch of the method's shapes: random images, or random tokens (BERT: a pair with
  15% of positions labelled and a random NSP label; GPT: inputs and shifted targets)."""
  if method_name not in TEXT_CONFIGS:
    return {"views": tuple(
        rng.normal(size=(args.batch, spec["size"], spec["size"], args.channels)).astype(np.float32)
        for spec in views)}
  shape = (args.batch, args.seq_len + 1)
  tokens = rng.integers(5, config.data.vocab_size, size=shape).astype(np.int32)
  if method_name == "gpt":
    return {"input_ids": tokens[:, :-1], "targets": tokens[:, 1:]}
  ids = tokens[:, :-1]
  labels = np.where(rng.random(ids.shape) < 0.15, ids, -1).astype(np.int32)
  types = (np.arange(args.seq_len) >= args.seq_len // 2).astype(np.int32)
  return {"input_ids": ids, "attention_mask": np.ones_like(ids),
          "token_type_ids": np.broadcast_to(types, ids.shape).copy(), "mlm_labels": labels,
          "next_sentence_label": rng.integers(0, 2, args.batch).astype(np.int32)}


def build_step(method: Any, config: ml_collections.ConfigDict, host_batch: Any,
               accum: int = 1) -> tuple[dict, Any, Any]:
  """(initial state, jitted train step, global batch) of `method` on all devices, data
  parallel: the step every benchmark script times, profiles or counts."""
  mesh = parallel.make_mesh({"data": -1})
  sample = jax.tree.map(lambda x: x[:2], host_batch)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  _, shardings = state_lib.state_shardings(method, tx, sample, 0, mesh, ())
  state = state_lib.create_state(method, tx, sample, 0, shardings)
  step = make_train_step(method, tx, schedule, mesh, shardings, accum)
  return state, step, parallel.to_global(host_batch, mesh)


def flop_counts(method: Any, step: Any, compiled: Any, state: dict, batch: dict,
                batch_size: int) -> dict:
  """FLOPs per example of the train step: analytic (forward of the loss, 3 x forward, the traced
  step) and XLA's cost analysis (of one device's program, hence x devices)."""
  def loss(params):
    return method.loss(params, state["model_state"], state["extra"], batch, jax.random.key(0),
                       state["step"])[0]

  forward = flops_lib.flops(loss, state["params"])
  traced = flops_lib.jaxpr_flops(jax.make_jaxpr(step)(state, batch))
  return {"forward_flops_per_example": forward / batch_size,
          "model_flops_per_example": 3 * forward / batch_size,
          "step_flops_per_example": traced / batch_size,
          "xla_flops_per_example":
              flops_lib.xla_flops(compiled) * jax.device_count() / batch_size}


def utilisation(model_flops_per_example: float, examples_per_sec: float, dtype: str,
                peak: float | None) -> dict:
  """Achieved model FLOP/s and MFU against `peak` per device (else the PEAK_FLOPS entry of
  this device kind; null when the kind is not in the table)."""
  achieved = model_flops_per_example * examples_per_sec
  kind = jax.devices()[0].device_kind
  if peak is None:
    try:
      peak = flops_lib.peak_flops(kind, dtype)
    except ValueError as e:
      print(e, file=sys.stderr)
  total = peak * jax.device_count() if peak else None
  return {"achieved_flops_per_sec": achieved, "device_kind": kind,
          "peak_flops_per_sec": total, "mfu": achieved / total if total else None}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--method", default="simclr",
                      help="any method with a configs/<method>_mnist.py recipe")
  parser.add_argument("--backbone", default="resnet18", choices=sorted(BACKBONES))
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--patch-size", type=int, default=16, help="ViT backbones only")
  parser.add_argument("--seq-len", type=int, default=128, help="text methods only")
  parser.add_argument("--local-size", type=int, default=0, help="multi-crop local view size")
  parser.add_argument("--num-local", type=int, default=0, help="multi-crop local views")
  parser.add_argument("--optimizer", default="lars", choices=("adamw", "lars", "lamb"))
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field, e.g. model.projector.hidden_dims=(2048,)")
  parser.add_argument("--conv-weight-grad", default="auto",
                      choices=("xla", "matmul", "chunked", "auto"))
  parser.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
  parser.add_argument("--accum", type=int, default=1,
                      help="gradient accumulation micro-batches per step (grad_accum_steps)")
  parser.add_argument("--peak", type=float, default=None,
                      help="peak FLOP/s of one device for mfu (default: sslax/flops.py table)")
  args = parser.parse_args()

  config = benchmark_config(args)
  method = get_method(config)
  rng = np.random.default_rng(0)
  text = args.method in TEXT_CONFIGS
  host_batch = random_batch(args.method, config, args, rng, [] if text else method.views())
  state, step, batch = build_step(method, config, host_batch, args.accum)
  params = sum(x.size for x in jax.tree.leaves(state["params"]))

  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  print(f"compiled in {compile_s:.1f}s; {params:,} parameters", file=sys.stderr, flush=True)
  counts = flop_counts(method, step, compiled, state, batch, args.batch)
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  print(f"first step {time.perf_counter() - start - compile_s:.1f}s", file=sys.stderr, flush=True)
  for _ in range(args.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_time = float(np.median(times))
  shape = ({"model": dict(config.model.text), "seq_len": args.seq_len,
            "tokens_per_sec": args.batch * args.seq_len / step_time} if text else
           {"backbone": args.backbone, "image_size": args.image_size,
            "views": [spec["size"] for spec in method.views()],
            "conv_weight_grad": args.conv_weight_grad})
  print(json.dumps({
      "method": args.method, **shape, "batch": args.batch, "dtype": args.dtype, "set": args.set,
      "devices": jax.device_count(), "platform": jax.devices()[0].platform,
      "examples_per_sec": args.batch / step_time, "step_time_ms": 1000 * step_time,
      "compile_s": compile_s, "params": int(params), **counts,
      **utilisation(counts["model_flops_per_example"], args.batch / step_time, args.dtype,
                    args.peak)}))


if __name__ == "__main__":
  main()
