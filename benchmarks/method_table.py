"""Pretrains and evaluates every image method's MNIST recipe; prints the README's results table.

  python benchmarks/method_table.py [--methods=simclr,byol,...] [--runs=runs/table]

For each method: `python -m sslax.train --config=configs/<m>_mnist.py` then `python -m
sslax.evaluate` on a fresh workdir, timed together on the wall clock, one method at a time. A
workdir that already holds eval_results.json is reused (its time read from table.json), so an
interrupted sweep resumes. Prints the Markdown table (method, backbone, minutes, kNN, linear,
random-init kNN / linear) with the raw-pixel baseline (of the first method's views) as the
last row.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("simclr", "byol", "moco_v3", "dino", "simdino", "mae", "rotation", "jigsaw", "dae",
           "bigan")


def run(method: str, runs: str, times: dict[str, float], reevaluate: bool = False) -> dict:
  workdir = os.path.join(runs, method)
  results = os.path.join(workdir, "eval_results.json")
  if reevaluate and os.path.exists(results):  # New evaluators, same checkpoint and minutes.
    subprocess.run([sys.executable, "-m", "sslax.evaluate", f"--workdir={workdir}"], check=True,
                   cwd=REPO)
  elif not (os.path.exists(results) and method in times):
    subprocess.run(["rm", "-rf", workdir], check=True)
    start = time.perf_counter()
    config = os.path.join(REPO, "configs", f"{method}_mnist.py")
    for module in ("sslax.train", "sslax.evaluate"):
      args = [sys.executable, "-m", module, f"--workdir={workdir}"]
      if module == "sslax.train":
        args.append(f"--config={config}")
      subprocess.run(args, check=True, cwd=REPO)
    times[method] = (time.perf_counter() - start) / 60
  with open(results) as f:
    return json.load(f)


def backbone(workdir: str) -> str:
  with open(os.path.join(workdir, "config.json")) as f:
    encoder = json.load(f)["model"]["encoder"]
  if encoder["name"] == "small_cnn":
    return "small_cnn " + "-".join(str(w) for w in encoder["widths"])
  if encoder["name"].startswith("vit"):
    return (f"{encoder['name']}/{encoder['patch_size']} ({encoder.get('hidden_dim', '')}d, "
            f"{encoder.get('depth', '')} blocks)")
  return encoder["name"]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--runs", default=os.path.join(REPO, "runs", "table"))
  parser.add_argument("--reevaluate", action="store_true",
                      help="evaluate the existing checkpoints again (minutes stay as measured)")
  args = parser.parse_args()
  os.makedirs(args.runs, exist_ok=True)
  times_path = os.path.join(args.runs, "table.json")
  times = json.load(open(times_path)) if os.path.exists(times_path) else {}
  lines = ["| method | backbone | minutes | kNN | linear | fine-tune | random-init kNN | "
           "random-init linear | random-init fine-tune |", "|---|---|---|---|---|---|---|---|---|"]
  pixels = None
  for method in args.methods.split(","):
    r = run(method, args.runs, times, args.reevaluate)
    with open(times_path, "w") as f:
      json.dump(times, f, indent=2)
    lines.append(f"| {method} | {backbone(os.path.join(args.runs, method))} | "
                 f"{times[method]:.1f} | {r['knn_top1']:.3f} | {r['linear_top1']:.3f} | "
                 f"{r['finetune_top1']:.3f} | {r['random_init_knn_top1']:.3f} | "
                 f"{r['random_init_linear_top1']:.3f} | {r['random_init_finetune_top1']:.3f} |")
    pixels = pixels or r  # The first method's: BiGAN's views are scaled to [-1, 1].
    print(lines[-1], flush=True)
  lines.append(f"| raw pixels | | | {pixels['raw_pixels_knn_top1']:.3f} | "
               f"{pixels['raw_pixels_linear_top1']:.3f} | | | | |")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
