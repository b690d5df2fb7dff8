"""Each JAX benchmark and its PyTorch twin, one after the other in the same run, as a table.

  python benchmarks/side_by_side.py                                  # all four pairs
  python benchmarks/side_by_side.py --benches=transform,mae_vit_tiny --rounds=2
  python benchmarks/side_by_side.py --benches=simclr_resnet18 --steps=2 --warmup=1

The JAX side is benchmarks/throughput.py (or benchmarks/pipeline.py for the transform) with the
shapes of benchmarks/torch_reference.py's models, run with this interpreter; the PyTorch side is
torch_reference.py run with `--torch-python` (a venv with torch; sslax does not depend on it).
Both are float32 on the same CPU with their default thread counts. With `--rounds=N` the pair
alternates N times (JAX, torch, JAX, torch, ...) and the table shows medians, so a load that
changes during the run hits both sides alike. Prints one JSON line per measurement, then a
markdown table: examples/s (images/s for the transform) of each side and the ratio JAX / torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BERT_SMALL = ["--set", "model.text.hidden_dim=256", "--set", "model.text.depth=4",
              "--set", "model.text.num_heads=4", "--set", "model.text.mlp_dim=1024",
              "--set", "model.text.positions=learned", "--set", "model.text.dropout_rate=0.1"]
# bench -> (what it is, JAX command after the interpreter, its torch_reference.py flags).
PAIRS = {
    "simclr_resnet18": (
        "SimCLR ResNet-18 (CIFAR stem), 2 x 32x32, batch 256, head 512-2048-128, LARS",
        ["throughput.py", "--method=simclr", "--backbone=resnet18", "--image-size=32",
         "--batch=256", "--optimizer=lars", "--set", "model.projector.hidden_dims=(2048,)",
         "--conv-weight-grad=auto"],  # sslax's default: chunked on CPU (sslax/models/conv.py).
        ["--bench=simclr_resnet18", "--batch=256"]),
    "mae_vit_tiny": (
        "MAE ViT-Tiny/4, 32x32, batch 256, mask 0.75, decoder 128 wide x 2, AdamW",
        ["throughput.py", "--method=mae", "--backbone=vit_tiny", "--patch-size=4",
         "--image-size=32", "--batch=256", "--optimizer=adamw", "--set",
         "model.decoder.hidden_dim=128", "--set", "model.decoder.num_heads=4", "--set",
         "model.decoder.depth=2"],
        ["--bench=mae_vit_tiny", "--batch=256"]),
    "bert_small": (
        "BERT-small MLM + NSP (4 x 256, 4 heads), batch 32 x 128, AdamW",
        ["throughput.py", "--method=mlm", "--batch=32", "--seq-len=128", "--optimizer=adamw",
         *BERT_SMALL],
        ["--bench=bert_small", "--batch=32"]),
    "transform": (
        "SimCLR two-view augmentation (MNIST recipe's spec), 32x32x3, batch 256, 2 workers",
        ["pipeline.py", "--workers=2", "--spec=mnist"],
        ["--bench=transform", "--workers=2", "--spec=mnist"]),
    "transform_cifar": (
        "SimCLR two-view augmentation (CIFAR recipe's spec, as lightly's), 32x32x3, batch 256, "
        "2 workers",
        ["pipeline.py", "--workers=2", "--spec=cifar"],
        ["--bench=transform", "--workers=2", "--spec=cifar"]),
}


def last_json(command: list[str]) -> dict:
  """Runs `command` and returns the JSON object on its last stdout line starting with '{'."""
  done = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=False)
  lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
  if done.returncode or not lines:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): "
                       f"{done.stderr.strip().splitlines()[-1:] or 'no output'}")
  return json.loads(lines[-1])


def rate(result: dict) -> float:
  return result.get("examples_per_sec", result.get("images_per_sec"))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--benches", default=",".join(PAIRS), help=f"any of {', '.join(PAIRS)}")
  parser.add_argument("--torch-python", default="/tmp/torchref/bin/python")
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--steps", type=int, default=5, help="timed train steps (both sides)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed train steps (both sides)")
  parser.add_argument("--batches", type=int, default=20, help="timed transform batches")
  args = parser.parse_args()
  benches = args.benches.split(",")
  unknown = sorted(set(benches) - set(PAIRS))
  if unknown:
    sys.exit(f"--benches: unknown {unknown}; choose from {', '.join(PAIRS)}")
  if not os.path.exists(args.torch_python):
    sys.exit(f"--torch-python={args.torch_python} does not exist: point it at a venv with torch")
  rows = []
  for bench in benches:
    what, jax_cmd, torch_flags = PAIRS[bench]
    timing = ([f"--batches={args.batches}"] if bench.startswith("transform") else
              [f"--steps={args.steps}", f"--warmup={args.warmup}"])
    jax_rates, torch_rates = [], []
    for _ in range(args.rounds):
      for side, command, rates in [
          ("jax", [sys.executable, *jax_cmd, *timing], jax_rates),
          ("torch", [args.torch_python, "torch_reference.py", *torch_flags, *timing],
           torch_rates)]:
        result = last_json(command)
        rates.append(rate(result))
        print(json.dumps({"bench": bench, "side": side, **result}), flush=True)
    jax_rate, torch_rate = statistics.median(jax_rates), statistics.median(torch_rates)
    rows.append(f"| {what} | {jax_rate:,.1f} | {torch_rate:,.1f} | {jax_rate / torch_rate:.2f} |")
  print("\n| benchmark (float32, CPU) | JAX (sslax) per s | PyTorch per s | JAX / PyTorch |")
  print("|---|---|---|---|")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
