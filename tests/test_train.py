"""The train loop end to end: outputs, exact resume after SIGKILL and SIGTERM, NaN stop."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sslax import checkpoint, evaluate, metrics, plot, train
from sslax import config as config_lib
from sslax.evals import knn

REPO = __file__.rsplit("/tests/", 1)[0]
TINY = f"{REPO}/configs/simclr_mnist.py:tiny"
OVERRIDES = {"total_steps": 8, "log_every_steps": 1, "checkpoint_every_steps": 3}

# Runs sslax.train in a fresh process that sends itself `signum` when it fetches batch `at_batch`
# (counted from 1 in this process), i.e. in the middle of a step. With `settle`, it first waits
# for checkpoint writes in flight to finish; without, a write may be cut off half-way.
CRASHING_RUN = textwrap.dedent("""
    import os, sys
    from absl import flags
    from sslax import checkpoint, config as config_lib, parallel, train
    flags.FLAGS.mark_as_parsed()
    workdir, at_batch, signum, settle = sys.argv[1], *map(int, sys.argv[2:5])
    to_global, calls, checkpointers = parallel.to_global, [0], []
    init = checkpoint.Checkpointer.__init__
    def keep(self, *args, **kwargs):
      init(self, *args, **kwargs)
      checkpointers.append(self)
    def crash_at(batch, mesh):
      calls[0] += 1
      if calls[0] == at_batch:
        if settle:
          checkpointers[-1].wait()
        os.kill(os.getpid(), signum)
      return to_global(batch, mesh)
    checkpoint.Checkpointer.__init__ = keep
    parallel.to_global = crash_at
    config = config_lib.load_config({tiny!r}, **{overrides!r})
    train.train(config, workdir)
""")


def losses_by_step(workdir):
  return {row["step"]: row["loss"] for row in metrics.read_metrics(workdir)}


def crash(workdir, at_batch, signum, settle=True):
  script = CRASHING_RUN.format(tiny=TINY, overrides=OVERRIDES)
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": f"{REPO}/.pytest_cache/jax"}
  args = [str(workdir), str(at_batch), str(signum), str(int(settle))]
  return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                        text=True, timeout=300)


def latest_step(workdir):
  return checkpoint.Checkpointer(str(workdir / "checkpoints")).latest_step()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  last = train.train(config_lib.load_config(TINY, **OVERRIDES), str(workdir))
  return workdir, last


def test_run_writes_every_output(uninterrupted):
  workdir, last = uninterrupted
  rows = metrics.read_metrics(workdir)
  assert [r["step"] for r in rows] == list(range(1, 9))
  for key in ("loss", "learning_rate", "examples_per_sec", "grad_norm", "data_wait_fraction"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert last["step"] == 8 and last["loss"] == rows[-1]["loss"]
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["total_steps"] == 8 and saved["method"] == "simclr"
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "tensorboard"))
  assert checkpoint.Checkpointer(str(workdir / "checkpoints")).all_steps() == [6, 8]


@pytest.mark.slow
def test_evaluate_writes_results_with_baselines(uninterrupted):
  workdir, _ = uninterrupted
  results = evaluate.evaluate(str(workdir), overrides={
      "export_features": True, "sklearn": ["logistic"], "linear_grid": [1e-4, 1e-2]})
  for prefix in ("", "random_init_", "raw_pixels_"):
    for metric in ("knn_top1", "linear_top1"):
      assert 0.0 <= results[prefix + metric] <= 1.0
  assert results["head_levels"] == ["projector"]
  assert 0.0 <= results["projector_knn_top1"] <= 1.0
  assert 0.0 <= results["random_init_projector_knn_top1"] <= 1.0
  assert results["step"] == 8 and results["test_examples"] == 1000
  # Raw MNIST pixels are a strong baseline: kNN on them is far above chance.
  assert results["raw_pixels_knn_top1"] > 0.85
  # Few-shot ridge on pixels: far above chance already at 1 a class, better with 25.
  assert 0.3 < results["raw_pixels_fewshot_1shot_top1"] < results["raw_pixels_fewshot_25shot_top1"]
  for prefix in ("", "random_init_", "raw_pixels_"):
    assert 1.0 < results[prefix + "rankme"] <= 1000 and not results[prefix + "collapsed"]
  # The kNN sweep holds the protocol's own (k, T) and the other papers' choices.
  assert results["knn_sweep"]["k=20,T=0.07"] == results["knn_top1"]
  assert len(results["raw_pixels_knn_sweep"]) == 8  # k in 10/20/100/200, T in 0.07/0.1.
  assert json.loads((workdir / "eval_results.json").read_text()) == results
  report = (workdir / "eval_results.md").read_text()
  assert f"| pretrained encoder | {results['knn_top1']:.4f} |" in report
  assert "k=20 nearest" in report and "scikit-learn ['logistic']" in report
  # eval.evaluators picks evaluators by name; the others leave no numbers and no protocol line.
  only = evaluate.evaluate(str(workdir), overrides={"evaluators": ["knn", "linear_augmented"]})
  assert only["knn_top1"] == results["knn_top1"]
  assert 0.0 <= only["linear_augmented_top1"] <= 1.0
  assert not any(k.endswith(("linear_top1", "rankme", "finetune_top1", "recall@1"))
                 for k in only)
  report = (workdir / "eval_results.md").read_text()
  assert "with augmentation" in report and "Few-shot" not in report
  with pytest.raises(ValueError, match="unknown \\['knm'\\]"):
    evaluate.evaluate(str(workdir), overrides={"evaluators": ["knm"]})
  # The exported features are the ones the probes saw: scikit-learn on them reproduces them.
  with np.load(results["exported_features"]) as f:
    assert len(f["pretrained_train"]) == 4000 and f["raw_pixels_test"].shape == (1000, 784)
    assert knn.knn_top1(f["pretrained_train"], f["train_labels"], f["pretrained_test"],
                        f["test_labels"], 10) == results["knn_top1"]
  assert results["raw_pixels_sklearn_logistic_top1"] > 0.8
  assert results["raw_pixels_linear_grid_lr"] in (1e-4, 1e-2)
  assert results["raw_pixels_linear_grid_top1"] > 0.8
  # Held-out pretext metrics: SimCLR's own loss and contrastive top-1 on test digits, for the
  # trained and the initial weights.
  for prefix in ("", "random_init_"):
    assert 0.0 <= results[prefix + "heldout_contrastive_top1"] <= 1.0
    assert np.isfinite(results[prefix + "heldout_loss"]) and results[prefix + "heldout_loss"] > 0
  assert results["heldout_loss"] != results["random_init_heldout_loss"]
  for prefix in ("", "random_init_", "raw_pixels_"):  # SimCLR's two views of 1,000 digits.
    assert 0.0 <= results[prefix + "two_view_recall@1"] <= results[prefix + "two_view_recall@10"]
  assert results["raw_pixels_two_view_recall@10"] > 10 / 1000  # Far above chance.
  assert 0.0 <= results["sklearn_logistic_top1"] <= 1.0


@pytest.mark.slow
def test_sigkill_twice_then_resume_gives_identical_losses(uninterrupted, tmp_path):
  reference = losses_by_step(uninterrupted[0])
  # Dies in step 4, while checkpoint 3 may still be being written: it counts only if complete.
  killed = crash(tmp_path, at_batch=4, signum=9, settle=False)
  assert killed.returncode == -9, killed.stderr[-2000:]
  resumed_from = latest_step(tmp_path) or 0
  assert resumed_from in (0, 3)
  # Resumes, saves 6 and dies in step 7.
  killed = crash(tmp_path, at_batch=7 - resumed_from, signum=9)
  assert killed.returncode == -9, killed.stderr[-2000:]
  assert latest_step(tmp_path) == 6
  train.train(config_lib.load_config(TINY, **OVERRIDES), str(tmp_path))
  assert losses_by_step(tmp_path) == reference


@pytest.mark.slow
def test_sigterm_saves_exits_cleanly_and_resumes_exactly(uninterrupted, tmp_path):
  reference = losses_by_step(uninterrupted[0])
  stopped = crash(tmp_path, at_batch=5, signum=15)
  assert stopped.returncode == 0, stopped.stderr[-2000:]
  assert latest_step(tmp_path) == 5
  train.train(config_lib.load_config(TINY, **OVERRIDES), str(tmp_path))
  assert losses_by_step(tmp_path) == reference


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
  config = config_lib.load_config(TINY, **OVERRIDES)
  config.optimizer.learning_rate = float("inf")
  with pytest.raises(FloatingPointError, match=r"loss is nan at step \d+; stopped"):
    train.train(config, str(tmp_path))
  steps = checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps()
  assert all(s < 3 for s in steps)


@pytest.mark.slow
def _train_with_online_evals(workdir, log_every: int, rank_every: int) -> None:
  """4 tiny SimCLR steps, checkpoints at 2 and 4, kNN every 2 steps, RankMe every rank_every."""
  config = config_lib.load_config(TINY, total_steps=4, log_every_steps=log_every,
                                  checkpoint_every_steps=2, keep_checkpoints=2)
  config.evals = {"knn": {"type": "knn", "every_steps": 2},
                  "rank": {"type": "collapse", "every_steps": rank_every}}
  train.train(config, str(workdir))


def test_online_evals_log_with_the_step_and_agree_with_offline_evaluation(tmp_path):
  _train_with_online_evals(tmp_path, log_every=2, rank_every=4)
  rows = metrics.read_metrics(tmp_path)
  knn_rows = [r for r in rows if "knn/top1" in r]
  assert [r["step"] for r in knn_rows] == [2, 4]
  assert [r["step"] for r in rows if "rank/rankme" in r] == [4]
  # The same features and protocol as offline evaluation of the step-4 checkpoint.
  curve = evaluate.evaluate_all(str(tmp_path), overrides={"finetune_steps": 0})
  assert [row["step"] for row in curve] == [2, 4]
  results = json.loads((tmp_path / "eval_results.json").read_text())  # The latest step's.
  assert json.loads((tmp_path / "eval_curve.json").read_text()) == curve
  assert curve[-1]["knn_top1"] == results["knn_top1"]
  assert [r["knn/top1"] for r in knn_rows] == [row["knn_top1"] for row in curve]
  assert [r for r in rows if "rank/rankme" in r][0]["rank/rankme"] == \
      pytest.approx(results["rankme"], rel=1e-6)


def test_online_eval_specs_are_checked():
  from sslax.evals import online
  with pytest.raises(ValueError, match="use one of"):
    online.parse_specs({"x": {"type": "knm", "every_steps": 5}})
  with pytest.raises(ValueError, match="every_steps must be a positive integer"):
    online.parse_specs({"x": {"type": "knn"}})
  assert online.parse_specs({"x": {"type": "knn", "every_steps": 5, "k": 10}})["x"]["k"] == 10


@pytest.mark.slow
def test_plot_writes_every_picture_as_a_png(tmp_path):
  _train_with_online_evals(tmp_path, log_every=1, rank_every=2)
  evaluate.evaluate_all(str(tmp_path), overrides={"finetune_steps": 0, "linear_steps": 5})
  paths = plot.plot_run(str(tmp_path), map_points=60)
  assert sorted(paths) == ["embedding_map", "evals", "rank", "training"]
  for path in paths.values():
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000  # Axes, lines and labels, not an empty canvas.
  # A run without evaluations inside training skips those pictures instead of failing.
  bare = tmp_path / "bare"
  train.train(config_lib.load_config(TINY, total_steps=2, log_every_steps=1,
                                     checkpoint_every_steps=2), str(bare))
  paths = plot.plot_run(str(bare), map_points=0)
  assert paths["training"] and not paths["evals"] and not paths["rank"]
  assert paths["embedding_map"] is None
