"""Where a train step's time goes: the real jitted step traced, its XLA ops timed and grouped.

  python benchmarks/profile_step.py --method=simclr --backbone=resnet18 --image-size=32 --batch=64
  python benchmarks/profile_step.py --method=mae --backbone=vit_tiny --patch-size=4 \\
      --image-size=32 --batch=256 --optimizer=adamw --set model.decoder.hidden_dim=128

Builds the step exactly as benchmarks/throughput.py does (same flags), runs it --warmup times,
then traces --steps more with `jax.profiler` and reads the per-op events of XLA:CPU's thunk
runtime back from the Perfetto trace. Each op of the optimized HLO is put in a group: a
convolution by direction (forward, dX, dW) and shape, a matmul, a transpose/copy, or the code
that emitted it (batch norm, loss, optimizer...) from the HLO's stack-frame metadata. Prints a
table of milliseconds per step by group (ops of one group can overlap on the 2 threads, so the
column can sum to more than the wall time), and the ops' sum against the measured step.
"""
if __name__ == "__main__":  # Before numpy and JAX start threads: see main().
  from sslax import host_memory
  host_memory.keep_freed_memory(one_arena=False)

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput import BACKBONES, benchmark_config, build_step, random_batch  # noqa: E402

from sslax.methods import get_method  # noqa: E402

# Source files that name a group, searched innermost stack frame first.
SOURCE_GROUPS = (("sslax/models/conv.py", "conv weight gradient (im2col)"),
                 ("flax/linen/normalization.py", "batch/layer norm"),
                 ("optax/", "optimizer"), ("sslax/optim.py", "optimizer"),
                 ("sslax/losses.py", "loss"), ("sslax/methods/", "method (loss, masking)"),
                 ("attention.py", "attention"), ("sslax/models/heads.py", "projector head"),
                 ("sslax/models/resnet.py", "resnet (relu, residual add, pooling)"),
                 ("sslax/models/", "model (other)"), ("sslax/step.py", "step (norms, update)"))


def parse_hlo(text: str) -> tuple[dict[str, list[str]], dict[int, tuple[str, int]]]:
  """Computations {name: body lines} and stack frames {id: (file, parent id)} of HLO text."""
  files, locations, frames = {}, {}, {}
  for m in re.finditer(r"^(\d+) \"(.*)\"$", text.split("FunctionNames")[0], re.M):
    files[int(m[1])] = m[2]
  for m in re.finditer(r"^(\d+) \{file_name_id=(\d+)", text, re.M):
    locations[int(m[1])] = files.get(int(m[2]), "?")
  for m in re.finditer(r"^(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)", text, re.M):
    frames[int(m[1])] = (locations.get(int(m[2]), "?"), int(m[3]))
  comps, name = {}, None
  for line in text.splitlines():
    header = re.match(r"^(ENTRY )?%(\S+) .*\{$", line)
    if header:
      name = "ENTRY" if header[1] else header[2]
      comps[name] = []
    elif line == "}":
      name = None
    elif name is not None:
      comps[name].append(line)
  return comps, frames


def frame_files(frames: dict[int, tuple[str, int]], frame: int) -> list[str]:
  """Source files of a stack frame and its callers, innermost first."""
  out, seen = [], set()
  while frame in frames and frame not in seen:
    seen.add(frame)
    file, parent = frames[frame]
    out.append(file)
    frame = parent
  return out


def conv_group(line: str, body: list[str]) -> str:
  """'conv fwd|dX|dW lhs -> out window' from an HLO convolution line.

  The weight gradient is the convolution whose window (the output gradient's spatial size) is
  larger than its output (the kernel's spatial size); dX is a transposed (backward) one.
  """
  out = re.search(r"= (\S+) convolution\(", line)[1]
  operand = re.search(r"convolution\(%(\S+?),", line)[1]
  lhs = next((re.search(r"= (\S+?)\{", other)[1] for other in body
              if re.match(rf"\s*%{re.escape(operand)} = ", other)), "?")
  window = re.search(r"window=\{size=([\dx]+)", line)[1]
  labels = re.search(r"dim_labels=\w+->(\w+)", line)[1]
  out_dims = [int(d) for d in re.search(r"\[([\d,]+)\]", out)[1].split(",")]
  out_spatial = [d for d, c in zip(out_dims, labels, strict=True) if c.isdigit()]
  window_size = np.prod([int(d) for d in window.split("x")])
  if window_size > np.prod(out_spatial):
    kind = "dW"
  else:
    kind = "dX" if "transpose(" in line else "fwd"
  return f"conv {kind} {lhs}->{out.split('{')[0]} window {window}"


def op_group(instr: str, comps: dict[str, list[str]], frames: dict) -> str:
  """The group of one entry-computation instruction (a fusion, a custom call, a copy...)."""
  called = re.search(r"calls=%(\S+?)[,\s}]", instr)
  body = comps.get(called[1], []) if called else [instr]
  for line in body:
    if " convolution(" in line:
      return conv_group(line, body)
  frame = re.search(r"stack_frame_id=(\d+)", instr)
  sources = frame_files(frames, int(frame[1])) if frame else []
  for file in sources:
    for pattern, group in SOURCE_GROUPS:
      if pattern in file:
        if any(" dot(" in line for line in body):
          return f"{group}: matmul"
        return group
  if any(" dot(" in line for line in body):
    return "matmul (other)"
  ops = {m for line in body for m in re.findall(r"= \S+ ([a-z-]+)\(", line)}
  if ops <= {"transpose", "copy", "bitcast", "parameter", "reshape"}:
    return "transpose/copy (layout)"
  if "reduce" in ops:
    return "reduction (other)"
  return "elementwise (other)"


def thunk_times(trace_dir: str, names: set[str]) -> dict[str, float]:
  """Total microseconds per HLO instruction name in the Perfetto trace under trace_dir."""
  path = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)[0]
  with gzip.open(path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  totals = collections.Counter()
  for event in events:
    if event.get("ph") == "X" and event.get("name") in names:
      totals[event["name"]] += event.get("dur", 0.0)
  return totals


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--method", default="simclr")
  parser.add_argument("--backbone", default="resnet18", choices=sorted(BACKBONES))
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--patch-size", type=int, default=16)
  parser.add_argument("--local-size", type=int, default=0)
  parser.add_argument("--num-local", type=int, default=0)
  parser.add_argument("--optimizer", default="lars", choices=("adamw", "lars", "lamb"))
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  parser.add_argument("--conv-weight-grad", default="auto")
  parser.add_argument("--steps", type=int, default=2, help="traced steps")
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--top", type=int, default=25, help="groups printed")
  args = parser.parse_args()
  args.seq_len = 0
  # The step runs on this thread, so its temporaries come from the main heap and are reused, as in
  # training (sslax/host_memory.py) but without sharing one arena with the profiler's threads,
  # whose allocations would contend for its lock and inflate every op (3.7 s traced vs 2.0 s).
  jax.config.update("jax_cpu_enable_async_dispatch", False)

  config = benchmark_config(args)
  method = get_method(config)
  host_batch = random_batch(args.method, config, args, np.random.default_rng(0), method.views())
  state, step, batch = build_step(method, config, host_batch)
  compiled = step.lower(state, batch).compile()
  comps, frames = parse_hlo(compiled.as_text())
  instrs = {re.match(r"\s*(?:ROOT )?%(\S+) =", line)[1]: line for line in comps["ENTRY"]
            if re.match(r"\s*(?:ROOT )?%\S+ =", line)}
  for _ in range(args.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as trace_dir:
    start = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(args.steps):
        state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
    wall_ms = 1000 * (time.perf_counter() - start) / args.steps
    totals = thunk_times(trace_dir, set(instrs))
  groups, counts = collections.Counter(), collections.Counter()
  for name, us in totals.items():
    group = op_group(instrs[name], comps, frames)
    groups[group] += us / 1000 / args.steps
    counts[group] += 1
  ops_ms = sum(groups.values())
  print(f"{'group':<72} {'ops':>4} {'ms/step':>9} {'share':>6}")
  for group, ms in groups.most_common(args.top):
    print(f"{group:<72} {counts[group]:>4} {ms:>9.1f} {ms / ops_ms:>6.1%}")
  rest = sum(ms for _, ms in groups.most_common()[args.top:])
  print(f"{'(other groups)':<72} {'':>4} {rest:>9.1f} {rest / ops_ms:>6.1%}")
  print(json.dumps({"method": args.method, "backbone": args.backbone, "batch": args.batch,
                    "conv_weight_grad": args.conv_weight_grad, "ops_ms": ops_ms,
                    "traced_step_ms": wall_ms, "hlo_ops_timed": len(totals)}))


if __name__ == "__main__":
  main()
