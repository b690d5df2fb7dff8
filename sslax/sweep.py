"""Grid search over any config keys: each trial a pretraining + evaluation in its own workdir.

  python -m sslax.sweep --config=configs/simclr_mnist.py --workdir=runs/sweep \
      --grid=simclr.temperature=[0.1,0.2] --grid=optimizer.learning_rate=[1e-3,2e-3] \
      [--metric=linear_top1] [--config.total_steps=300]

Every combination of the grid values runs as `workdir/trialNNN` (train, then evaluate with
the config's protocol). The sweep writes `sweep_results.json` and `sweep_results.md`, trials
sorted by `--metric` (any number in eval_results.json, higher is better). Rerunning the command
skips trials that already have results and resumes an interrupted one from its checkpoint.
"""
import itertools
import json
import os
import sys
from typing import Any

import ml_collections
from absl import app, flags

from sslax import config as config_lib
from sslax import evaluate, train

_GRID = flags.DEFINE_multi_string("grid", [], "KEY=[v1,v2,...]: values of one config key.")
_METRIC = flags.DEFINE_string("metric", "linear_top1", "eval_results.json key to sort by.")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
  """['a.b=[1,2]'] -> {'a.b': [1, 2]}; a value that is not a non-empty list is an error."""
  grid = {}
  for item in items:
    key, sep, text = item.partition("=")
    values = config_lib.parse_value(text)
    if not sep or not isinstance(values, list | tuple) or not values:
      raise config_lib.ConfigError(f"--grid={item}: expected KEY=[value, ...]")
    grid[key] = list(values)
  return grid


def trials(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
  """Every combination of the grid's values, the last key varying fastest."""
  keys = list(grid)
  return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def run_sweep(config: ml_collections.ConfigDict, workdir: str, grid: dict[str, list[Any]],
              metric: str = "linear_top1") -> list[dict[str, Any]]:
  """Trains and evaluates every trial (skipping finished ones); rows sorted by `metric`."""
  combos = trials(grid)
  configs = [config_lib.with_overrides(config, combo) for combo in combos]  # Check keys first.
  rows = []
  for index, (combo, trial_config) in enumerate(zip(combos, configs, strict=True)):
    trial_dir = os.path.join(workdir, f"trial{index:03d}")
    results_path = os.path.join(trial_dir, "eval_results.json")
    if os.path.exists(results_path):
      with open(results_path) as f:
        results = json.load(f)
    else:
      print(f"trial {index + 1}/{len(combos)}: {combo}", flush=True)
      train.train(trial_config, trial_dir)
      results = evaluate.evaluate(trial_dir)
    if metric not in results:
      raise KeyError(f"--metric={metric} is not in {results_path}; choose one of "
                     f"{sorted(k for k, v in results.items() if isinstance(v, float))}")
    rows.append({"trial": f"trial{index:03d}", **combo, metric: results[metric],
                 **{k: results[k] for k in ("knn_top1", "linear_top1", "finetune_top1")
                    if k in results and k != metric}})
  rows.sort(key=lambda row: -row[metric])
  with open(os.path.join(workdir, "sweep_results.json"), "w") as f:
    json.dump(rows, f, indent=2)
  columns = list(rows[0])
  table = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
  table += ["| " + " | ".join(f"{row.get(c, '')}" for c in columns) + " |" for row in rows]
  with open(os.path.join(workdir, "sweep_results.md"), "w") as f:
    f.write(f"Sweep of {config.method}, sorted by {metric}\n\n" + "\n".join(table) + "\n")
  print("\n".join(table))
  return rows


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"sslax: unexpected arguments {argv[1:]}")
  if not config_lib.WORKDIR.value:
    sys.exit("sslax: --workdir=DIR is required")
  config = config_lib.config_from_flags()
  config_lib.quiet_library_logs()
  with config_lib.one_line_errors():
    grid = parse_grid(_GRID.value)
    if not grid:
      raise config_lib.ConfigError("give at least one --grid=KEY=[v1,v2,...]")
    run_sweep(config, config_lib.WORKDIR.value, grid, _METRIC.value)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
