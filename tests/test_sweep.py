"""Grid sweeps: trial combinations, one workdir each, sorted results, finished trials skipped."""
import json
import os

import pytest
from method_harness import REPO

from sslax import config as config_lib
from sslax import sweep

TINY = f"{REPO}/configs/simclr_mnist.py:tiny"


def test_grid_parsing_and_combinations():
  grid = sweep.parse_grid(["simclr.temperature=[0.1, 0.2]", "optimizer.name=['adamw','lars']"])
  assert grid == {"simclr.temperature": [0.1, 0.2], "optimizer.name": ["adamw", "lars"]}
  assert sweep.trials(grid) == [
      {"simclr.temperature": 0.1, "optimizer.name": "adamw"},
      {"simclr.temperature": 0.1, "optimizer.name": "lars"},
      {"simclr.temperature": 0.2, "optimizer.name": "adamw"},
      {"simclr.temperature": 0.2, "optimizer.name": "lars"}]
  with pytest.raises(ValueError, match="expected KEY="):
    sweep.parse_grid(["simclr.temperature=0.1"])


def test_unknown_key_fails_before_any_trial_runs(tmp_path):
  config = config_lib.load_config(TINY)
  with pytest.raises(ValueError, match="unknown config key 'simclr.temprature'"):
    sweep.run_sweep(config, str(tmp_path), {"simclr.temprature": [0.1]})
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_sweep_trains_each_trial_and_sorts_by_the_metric(tmp_path):
  config = config_lib.load_config(TINY, total_steps=2, log_every_steps=1,
                                  checkpoint_every_steps=2)
  config.eval.evaluators = ["knn"]  # The metric swept on; the others are tested elsewhere.
  rows = sweep.run_sweep(config, str(tmp_path), {"simclr.temperature": [0.1, 0.5]}, "knn_top1")
  assert sorted(r["simclr.temperature"] for r in rows) == [0.1, 0.5]
  assert rows[0]["knn_top1"] >= rows[1]["knn_top1"]
  for row in rows:
    saved = json.loads((tmp_path / row["trial"] / "config.json").read_text())
    assert saved["simclr"]["temperature"] == row["simclr.temperature"]
  assert json.loads((tmp_path / "sweep_results.json").read_text()) == rows
  # A second run reuses the finished trials instead of training them again.
  stamp = os.path.getmtime(tmp_path / "trial000" / "metrics.jsonl")
  assert sweep.run_sweep(config, str(tmp_path), {"simclr.temperature": [0.1, 0.5]},
                         "knn_top1") == rows
  assert os.path.getmtime(tmp_path / "trial000" / "metrics.jsonl") == stamp


@pytest.mark.slow
def test_bayesian_search_samples_within_the_ranges_and_reuses_trials(tmp_path):
  config = config_lib.load_config(TINY, total_steps=2, log_every_steps=1,
                                  checkpoint_every_steps=2)
  config.eval.evaluators = ["knn"]  # The metric swept on; the others are tested elsewhere.
  kwargs = dict(metric="knn_top1", search="bayes", trials_count=2,
                ranges={"optimizer.learning_rate": [1e-4, 1e-2]})
  rows = sweep.run_sweep(config, str(tmp_path), {"simclr.temperature": [0.1, 0.5]}, **kwargs)
  assert sorted(r["trial"] for r in rows) == ["trial000", "trial001"]
  for row in rows:
    assert row["simclr.temperature"] in (0.1, 0.5)
    assert 1e-4 <= row["optimizer.learning_rate"] <= 1e-2
    saved = json.loads((tmp_path / row["trial"] / "config.json").read_text())
    assert saved["optimizer"]["learning_rate"] == row["optimizer.learning_rate"]
  # Seeded TPE proposes the same values again, so the finished trials are read back.
  stamp = os.path.getmtime(tmp_path / "trial001" / "metrics.jsonl")
  again = sweep.run_sweep(config, str(tmp_path), {"simclr.temperature": [0.1, 0.5]}, **kwargs)
  assert again == rows and os.path.getmtime(tmp_path / "trial001" / "metrics.jsonl") == stamp
  with pytest.raises(ValueError, match="low < high"):
    sweep.run_sweep(config, str(tmp_path), {}, search="bayes",
                    ranges={"optimizer.learning_rate": [1e-2, 1e-4]})
