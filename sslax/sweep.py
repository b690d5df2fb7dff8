"""Hyperparameter search over any config keys: each trial a pretraining + evaluation in its own
workdir.

  python -m sslax.sweep --config=configs/simclr_mnist.py --workdir=runs/sweep \
      --grid=simclr.temperature=[0.1,0.2] --grid=optimizer.learning_rate=[1e-3,2e-3] \
      [--metric=linear_top1] [--config.total_steps=300]
  python -m sslax.sweep ... --search=bayes --trials=20 \
      --grid=simclr.temperature=[0.1,0.2,0.5] --range=optimizer.learning_rate=[1e-4,1e-2]

`--search=grid` runs every combination of the grid values; `--search=bayes` runs `--trials`
trials chosen by optuna's TPE sampler (seeded with config.seed), the grid keys as categorical
choices and each `--range` key log-uniform between its bounds. Trial i runs in
`workdir/trialNNN` (train, then evaluate with the config's protocol). The sweep writes
`sweep_results.json` and `sweep_results.md`, trials sorted by `--metric` (any number in
eval_results.json, higher is better). Rerunning the command reuses trials whose results exist
for the same values and resumes an interrupted one from its checkpoint.
"""
if __name__ == "__main__":  # Before numpy and JAX start threads: sslax/host_memory.py.
  from sslax import host_memory
  host_memory.keep_freed_memory()

import itertools
import json
import os
from typing import Any

import ml_collections
from absl import app, flags

from sslax import checkpoint, evaluate, train
from sslax import config as config_lib

_GRID = flags.DEFINE_multi_string("grid", [], "KEY=[v1,v2,...]: values of one config key.")
_RANGE = flags.DEFINE_multi_string("range", [], "KEY=[low,high]: a log-uniform range (bayes).")
_METRIC = flags.DEFINE_string("metric", "linear_top1", "eval_results.json key to sort by.")
_SEARCH = flags.DEFINE_enum("search", "grid", ["grid", "bayes"], "Every combination, or TPE.")
_TRIALS = flags.DEFINE_integer("trials", 10, "Trials of --search=bayes.")


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


def _run_trial(config: ml_collections.ConfigDict, trial_dir: str, values: dict[str, Any],
               metric: str) -> dict[str, Any]:
  """eval_results of one trial: read back if it ran with the same values, else trained and
  evaluated (resuming from a checkpoint if the trial was interrupted)."""
  results_path = os.path.join(trial_dir, "eval_results.json")
  values_path = os.path.join(trial_dir, "sweep_values.json")
  done = os.path.exists(results_path) and os.path.exists(values_path)
  if done:
    with open(values_path) as f:
      done = json.load(f) == values
  if done:
    with open(results_path) as f:
      results = json.load(f)
  else:
    print(f"{os.path.basename(trial_dir)}: {values}", flush=True)
    train.train(config_lib.with_overrides(config, values), trial_dir)
    results = evaluate.evaluate(trial_dir)
    checkpoint.write_atomically(values_path, json.dumps(values))
  if metric not in results:
    raise KeyError(f"--metric={metric} is not in {results_path}; choose one of "
                   f"{sorted(k for k, v in results.items() if isinstance(v, float))}")
  return results


def _row(trial: str, values: dict[str, Any], results: dict[str, Any], metric: str) -> dict:
  return {"trial": trial, **values, metric: results[metric],
          **{k: results[k] for k in ("knn_top1", "linear_top1", "finetune_top1")
             if k in results and k != metric}}


def _bayes_values(config, workdir, grid, ranges, metric, trials_count) -> list[dict]:
  """Rows of `trials_count` TPE trials (optuna; imported only for this search)."""
  try:
    import optuna
  except ImportError as e:
    raise ImportError("--search=bayes needs optuna: pip install -e '.[sweep]'") from e

  optuna.logging.set_verbosity(optuna.logging.WARNING)
  rows = []

  def objective(trial: optuna.Trial) -> float:
    values = {key: trial.suggest_categorical(key, choices) for key, choices in grid.items()}
    values.update({key: trial.suggest_float(key, low, high, log=True)
                   for key, (low, high) in ranges.items()})
    name = f"trial{trial.number:03d}"
    results = _run_trial(config, os.path.join(workdir, name), values, metric)
    rows.append(_row(name, values, results, metric))
    return results[metric]

  sampler = optuna.samplers.TPESampler(seed=config.seed)
  optuna.create_study(direction="maximize", sampler=sampler).optimize(objective, trials_count)
  return rows


def run_sweep(config: ml_collections.ConfigDict, workdir: str, grid: dict[str, list[Any]],
              metric: str = "linear_top1", search: str = "grid",
              ranges: dict[str, list[float]] | None = None,
              trials_count: int = 10) -> list[dict[str, Any]]:
  """Trains and evaluates the trials of a grid or a TPE search; rows sorted by `metric`."""
  ranges = ranges or {}
  for key, bounds in ranges.items():
    if len(bounds) != 2 or not 0 < bounds[0] < bounds[1]:
      raise config_lib.ConfigError(f"--range={key}={bounds}: expected [low, high], 0 < low < high")
  for combo in trials(grid):  # Every key is checked before any trial runs.
    config_lib.with_overrides(config, {**combo, **{k: v[0] for k, v in ranges.items()}})
  if search == "grid":
    if ranges:
      raise config_lib.ConfigError("--range needs --search=bayes; a grid takes --grid values")
    rows = [_row(f"trial{i:03d}", values,
                 _run_trial(config, os.path.join(workdir, f"trial{i:03d}"), values, metric),
                 metric) for i, values in enumerate(trials(grid))]
  elif search == "bayes":
    rows = _bayes_values(config, workdir, grid, ranges, metric, trials_count)
  else:
    raise config_lib.ConfigError(f"search={search!r}; use 'grid' or 'bayes'")
  rows.sort(key=lambda row: -row[metric])
  checkpoint.write_atomically(os.path.join(workdir, "sweep_results.json"),
                              json.dumps(rows, indent=2))
  columns = list(rows[0])
  table = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
  table += ["| " + " | ".join(f"{row.get(c, '')}" for c in columns) + " |" for row in rows]
  checkpoint.write_atomically(os.path.join(workdir, "sweep_results.md"),
                              f"{search} search of {config.method}, sorted by {metric}\n\n" +
                              "\n".join(table) + "\n")
  print("\n".join(table))
  return rows


def main(argv: list[str]) -> None:
  workdir = config_lib.workdir_from_flags(argv)
  config = config_lib.config_from_flags()
  with config_lib.one_line_errors():
    grid, ranges = parse_grid(_GRID.value), parse_grid(_RANGE.value)
    if not grid and not ranges:
      raise config_lib.ConfigError("give at least one --grid=KEY=[v1,v2,...] or --range")
    run_sweep(config, workdir, grid, _METRIC.value, _SEARCH.value, ranges,
              _TRIALS.value)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
