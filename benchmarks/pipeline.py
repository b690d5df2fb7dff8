"""Images/s of the real Grain input pipeline (two augmented views an image), and how long a real
training run waits for it.

  python benchmarks/pipeline.py --workers=0,1,2
  python benchmarks/pipeline.py --spec=cifar --workers=2
  python benchmarks/pipeline.py --workers=2 --train-steps=150

The source holds `--images` random uint8 32x32x3 images (CIFAR's shape; `--source=mnist`: the
embedded MNIST digits, 28x28x1); `sslax/data/pipeline.py` builds the SimCLR two-view batches with
the augmentation of `--spec`: "mnist" (configs/simclr_mnist.py's spec: crop, rotation, contrast
and brightness jitter, blur, noise) at the source's size, or "cifar" (configs/simclr_cifar10.py's:
crop, flip, full colour jitter, grayscale). For each worker count, `--warmup` batches are taken
(worker start-up) and then `--batches` timed; one JSON line per count with images_per_sec (one
image = its two views).

`--train-steps=N` also runs `sslax.train` of the SimCLR MNIST recipe for N steps (the recipe's
model and batch, `config.data.num_workers` = the last `--workers` entry) in a temporary workdir
and prints the `data_wait_fraction` rows its train loop logged to metrics.jsonl: the fraction
of wall time the loop spent waiting for the next batch.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

from sslax import config as config_lib
from sslax.data import pipeline, sources

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = {"mnist": "simclr_mnist", "cifar": "simclr_cifar10"}


def view_spec(name: str, size: int) -> dict:
  """The augmentation spec of a SimCLR recipe, at `size`."""
  spec = dict(config_lib.load_config(f"{REPO}/configs/{SPECS[name]}.py").data.augment)
  spec["size"] = size
  return spec


def make_source(name: str, num_images: int) -> sources.ArraySource:
  if name == "mnist":
    return sources.mnist_embedded()["pretrain"]
  rng = np.random.default_rng(0)
  return sources.ArraySource(rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8))


def images_per_sec(source: sources.ArraySource, spec: dict, batch: int, num_workers: int,
                   warmup: int, batches: int) -> float:
  """Two-view images/s of the training iterator over `batches` batches after `warmup`."""
  dataset = pipeline.train_dataset(source, [spec, spec], batch, seed=0, process_index=0,
                                   process_count=1)
  iterator = pipeline.make_iterator(dataset, num_workers)
  try:
    for _ in range(warmup):
      next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    return batches * batch / (time.perf_counter() - start)
  finally:
    close = getattr(iterator, "close", None)
    if close:
      close()


def data_wait(steps: int, num_workers: int) -> list[dict]:
  """`data_wait_fraction` (and examples/s) of each logged interval of a short SimCLR run."""
  from sslax import train  # The train loop imports the whole stack; only this mode needs it.
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py")
  config.total_steps, config.log_every_steps = steps, min(50, steps)
  config.checkpoint_every_steps = steps
  config.data.num_workers = num_workers
  with tempfile.TemporaryDirectory() as workdir:
    train.train(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  return [{key: row[key] for key in ("step", "data_wait_fraction", "examples_per_sec")}
          for row in rows if "data_wait_fraction" in row]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--source", default="random", choices=("random", "mnist"))
  parser.add_argument("--spec", default="mnist", choices=sorted(SPECS))
  parser.add_argument("--images", type=int, default=4096, help="random source size")
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
  parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
  parser.add_argument("--batches", type=int, default=20, help="timed batches")
  parser.add_argument("--train-steps", type=int, default=0,
                      help="also run this many SimCLR MNIST steps and report data_wait_fraction")
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags.
  try:
    workers = [int(w) for w in args.workers.split(",")]
  except ValueError:
    sys.exit(f"--workers={args.workers!r}: give comma-separated integers, e.g. --workers=1,2")
  source = make_source(args.source, args.images)
  spec = view_spec(args.spec, source[0]["image"].shape[0])
  for num_workers in workers:
    rate = images_per_sec(source, spec, args.batch, num_workers, args.warmup, args.batches)
    print(json.dumps({"source": args.source, "spec": args.spec, "size": spec["size"],
                      "channels": int(source[0]["image"].shape[-1]), "batch": args.batch,
                      "workers": num_workers, "images_per_sec": rate,
                      "views_per_sec": 2 * rate}), flush=True)
  if args.train_steps:
    for row in data_wait(args.train_steps, workers[-1]):
      print(json.dumps({"train_workers": workers[-1], **row}), flush=True)


if __name__ == "__main__":
  main()
