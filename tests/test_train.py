"""The train loop end to end: outputs, exact resume after SIGKILL and SIGTERM, the NaN policy."""
import contextlib
import inspect
import io
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import grain
import numpy as np
import pytest

from sslax import checkpoint, evaluate, metrics, plot, recovery, train
from sslax import config as config_lib
from sslax.data import pipeline
from sslax.evals import knn

REPO = __file__.rsplit("/tests/", 1)[0]
TINY = f"{REPO}/configs/simclr_mnist.py:tiny"
OVERRIDES = {"total_steps": 8, "log_every_steps": 1, "checkpoint_every_steps": 3}
NAN_BATCH = 4  # The batch (stream position) poisoned by poison_batch: step 5's.
ROLLBACK = {"action": "rollback", "max_rollbacks": 3}


def poison_batch(train_dataset, bad):
  """pipeline.train_dataset whose batch at position `bad` has one NaN image in its first view:
  a real offending batch, the same each time the stream is replayed."""
  import numpy as np

  def nan_image(index, batch):
    if index != bad:
      return batch
    first = np.array(batch["views"][0])
    first[0] = np.nan
    return {**batch, "views": (first, *batch["views"][1:])}

  return lambda *args, **kwargs: train_dataset(*args, **kwargs).map_with_index(nan_image)


def without_batch(train_dataset, skipped):
  """pipeline.train_dataset with the batch at position `skipped` left out: the stream a run that
  skips it sees."""
  def shifted(*args, **kwargs):
    dataset = train_dataset(*args, **kwargs)
    return grain.MapDataset.range(len(dataset) - 1).map(lambda i: dataset[i + (i >= skipped)])
  return shifted


# Runs sslax.train in a fresh process that sends itself `signum` at a chosen moment: `mode`
# "batch" when it fetches batch `at` (counted from 1 in this process, replays included), i.e. in
# the middle of a step, with the last checkpoint's write possibly still in flight; "save" right
# after the save of step `at` started, while Orbax writes it in the background. `poison` and
# `nan_policy` make it the run that rolls back past a NaN batch.
CRASHING_RUN = textwrap.dedent("""
    import json, os, sys
    from absl import flags
    from sslax import checkpoint, config as config_lib, parallel, train
    from sslax.data import pipeline
    flags.FLAGS.mark_as_parsed()
    workdir, plan = sys.argv[1], json.loads(sys.argv[2])
    to_global, save, calls = parallel.to_global, checkpoint.Checkpointer.save, [0]
    def crash_at_batch(batch, mesh):
      calls[0] += 1
      if plan["mode"] == "batch" and calls[0] == plan["at"]:
        os.kill(os.getpid(), plan["signum"])
      return to_global(batch, mesh)
    def crash_after_save(self, step, *args):
      save(self, step, *args)
      if plan["mode"] == "save" and step == plan["at"]:
        os.kill(os.getpid(), plan["signum"])
    parallel.to_global, checkpoint.Checkpointer.save = crash_at_batch, crash_after_save
    {poison_batch}
    if plan["poison"] is not None:
      pipeline.train_dataset = poison_batch(pipeline.train_dataset, plan["poison"])
    config = config_lib.load_config({tiny!r}, **{overrides!r})
    if plan["nan_policy"]:
      config.nan_policy = plan["nan_policy"]
    train.train(config, workdir)
""")


def losses_by_step(workdir):
  return {row["step"]: row["loss"] for row in metrics.read_metrics(workdir)}


def crash(workdir, mode, at, signum, poison=None, nan_policy=None):
  script = CRASHING_RUN.format(tiny=TINY, overrides=OVERRIDES,
                               poison_batch=inspect.getsource(poison_batch))
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": f"{REPO}/.pytest_cache/jax"}
  plan = {"mode": mode, "at": at, "signum": signum, "poison": poison, "nan_policy": nan_policy}
  return subprocess.run([sys.executable, "-c", script, str(workdir), json.dumps(plan)],
                        env=env, capture_output=True, text=True, timeout=300)


def latest_step(workdir):
  return checkpoint.Checkpointer(str(workdir / "checkpoints")).latest_step()


def unfinished_steps(workdir):
  """Steps whose checkpoint write was cut off: Orbax's temporary directories."""
  return sorted(int(name.split(".")[0]) for name in os.listdir(workdir / "checkpoints")
                if ".orbax-checkpoint-tmp" in name)


def data_state(workdir, step):
  """The data state saved beside the train state in checkpoint `step` (Orbax's JSON item)."""
  return json.loads((workdir / "checkpoints" / str(step) / "data" / "metadata").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  last = train.train(config_lib.load_config(TINY, **OVERRIDES), str(workdir))
  return workdir, last


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory):
  """The run whose batch NAN_BATCH has a NaN image, with nan_policy rollback; its stdout."""
  workdir = tmp_path_factory.mktemp("rolled_back")
  config = config_lib.load_config(TINY, **OVERRIDES)
  config.nan_policy = ROLLBACK
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pipeline, "train_dataset", poison_batch(pipeline.train_dataset, NAN_BATCH))
    with contextlib.redirect_stdout(io.StringIO()) as out:
      train.train(config, str(workdir))
  return workdir, out.getvalue()


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


def test_resume_with_another_model_fails_in_one_line_and_keeps_config_json(uninterrupted,
                                                                          tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0], workdir)
  before = (workdir / "config.json").read_text()
  config = config_lib.load_config(TINY, **OVERRIDES)
  config.model.encoder = {**config.model.encoder, "widths": (4, 16)}
  expected = (r"checkpoint \S+/8 was written by another model or optimizer: model_state/encoder/"
              r"batch_stats/stage2_bn0/mean has shape \[8\] there, \[16\] here \(and \d+ more "
              r"differences\); train with the config")
  with pytest.raises(ValueError, match=expected) as error:
    train.train(config, str(workdir))
  assert "\n" not in str(error.value)
  assert (workdir / "config.json").read_text() == before  # What the message points to.


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
def test_random_sigkills_then_resume_give_identical_losses(rolled_back, tmp_path):
  """Seeded SIGKILLs in the middle of steps and of checkpoint writes, of the run that rolls back
  past a NaN batch; every restart resumes from the last complete checkpoint, replays (and rolls
  back) exactly, and the losses of every step end up equal to the uninterrupted run's."""
  rng = random.Random(0)
  rolled_back_after_a_kill = False
  for mode in ("batch", "save", "batch"):
    resumed = latest_step(tmp_path)
    done = resumed or 0
    at = (rng.randint(1, OVERRIDES["total_steps"] - done) if mode == "batch"
          else rng.choice([s for s in (3, 6, 8) if s > done]))
    killed = crash(tmp_path, mode, at, signum=9, poison=NAN_BATCH, nan_policy=ROLLBACK)
    assert killed.returncode == -9, killed.stderr[-2000:]
    if resumed is not None:
      assert f"resumed from step {resumed} of" in killed.stdout
    rolled_back_after_a_kill |= resumed is not None and "rollback 1 of 3" in killed.stdout
    unfinished, latest = unfinished_steps(tmp_path), latest_step(tmp_path)
    if mode == "save":  # Killed while Orbax wrote checkpoint `at`: it must not count.
      assert unfinished == [at] and (latest or 0) < at
    assert latest not in unfinished and (latest or 0) >= done
  assert rolled_back_after_a_kill  # A restart replayed the NaN batch and skipped it again.
  config = config_lib.load_config(TINY, **OVERRIDES)
  config.nan_policy = ROLLBACK
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pipeline, "train_dataset", poison_batch(pipeline.train_dataset, NAN_BATCH))
    train.train(config, str(tmp_path))
  assert losses_by_step(tmp_path) == losses_by_step(rolled_back[0])
  assert data_state(tmp_path, 8) == data_state(rolled_back[0], 8)
  assert unfinished_steps(tmp_path) == []  # The restarts removed the cut-off writes.


@pytest.mark.slow
def test_sigterm_saves_exits_cleanly_and_resumes_exactly(uninterrupted, tmp_path):
  reference = losses_by_step(uninterrupted[0])
  stopped = crash(tmp_path, "batch", 5, signum=15)
  assert stopped.returncode == 0, stopped.stderr[-2000:]
  assert latest_step(tmp_path) == 5
  train.train(config_lib.load_config(TINY, **OVERRIDES), str(tmp_path))
  assert losses_by_step(tmp_path) == reference


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, capsys):
  config = config_lib.load_config(TINY, **OVERRIDES)
  config.optimizer.learning_rate = float("inf")
  # An infinite learning rate turns the parameters into NaN in step 1 (inf x 0), from finite
  # gradients; step 2's loss would be the first NaN loss.
  with pytest.raises(FloatingPointError, match=r"param_norm is nan at step 1; stopped without "
                                               r"saving this state \(last good checkpoint: none"):
    train.train(config, str(tmp_path))
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == []
  assert "non-finite param_norm nan at step 1 (batch 0); nan_policy stop" in capsys.readouterr().out


@pytest.mark.slow
def test_nan_rollback_skips_the_offending_batch(rolled_back, uninterrupted, tmp_path):
  """Step 5's batch has a NaN image: the run restores checkpoint 3, replays step 4, skips the
  batch, and is then exactly the run whose stream never had that batch."""
  workdir, out = rolled_back
  # The loss stays finite (normalised NaN features are zeros); the gradient norm is NaN.
  assert f"non-finite grad_norm nan at step 5 (batch {NAN_BATCH})" in out
  assert f"rollback 1 of 3: restored the checkpoint 3; replaying up to batch {NAN_BATCH}" in out
  losses = losses_by_step(workdir)
  assert [r["step"] for r in metrics.read_metrics(workdir)] == list(range(1, 9))  # Once each.
  reference = losses_by_step(uninterrupted[0])
  assert {s: losses[s] for s in range(1, 5)} == {s: reference[s] for s in range(1, 5)}
  assert losses[5] != reference[5]
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pipeline, "train_dataset", without_batch(pipeline.train_dataset, NAN_BATCH))
    train.train(config_lib.load_config(TINY, **OVERRIDES), str(tmp_path))
  assert losses == losses_by_step(tmp_path)
  # The skip is part of the data state, so a resume from step 6 or 8 draws the same batches.
  saved = data_state(workdir, 8)
  assert (saved["position"], saved["skipped_batches"]) == (9, [NAN_BATCH])


def test_batch_stream_skips_batches_and_resumes_at_its_position():
  dataset = grain.MapDataset.range(10)  # Batch i is the number i.
  stream = recovery.BatchStream(pipeline.make_iterator(dataset))
  stream.skipped = [2]
  assert [stream.next() for _ in range(3)] == [(0, 0), (1, 1), (3, 3)]
  state = stream.get_state()
  assert (state["position"], state["skipped_batches"]) == (4, [2])
  resumed = recovery.BatchStream(pipeline.make_iterator(dataset))
  resumed.set_state(state, step=3)
  assert resumed.next() == (4, 4) and resumed.skipped == [2]
  # A checkpoint from before batches could be skipped holds the bare Grain state: one batch a step.
  legacy = recovery.BatchStream(pipeline.make_iterator(dataset))
  legacy.set_state(state["iterator"], step=4)
  assert legacy.next() == (4, 4) and legacy.skipped == []


def test_nan_rollbacks_without_a_checkpoint_restart_from_the_initial_state(tmp_path, capsys):
  """With nothing saved yet, a rollback goes back to the initial state; after max_rollbacks
  skips, the next non-finite loss stops the run with the usual message. The loss is checked one
  step late here (log_every_steps=4), as the loop does between log steps."""
  config = config_lib.load_config(TINY, **{**OVERRIDES, "log_every_steps": 4})
  config.optimizer.learning_rate = float("inf")
  config.nan_policy = {"action": "rollback", "max_rollbacks": 2}
  with pytest.raises(FloatingPointError, match=r"param_norm is nan at step 1; stopped without "
                                               r"saving this state \(last good checkpoint: none "):
    train.train(config, str(tmp_path))
  out = capsys.readouterr().out
  for batch, used in ((0, 0), (1, 1), (2, 2)):  # Step 1 takes the next batch each time.
    assert (f"non-finite param_norm nan at step 1 (batch {batch}); nan_policy rollback, {used} "
            "of 2") in out
  assert out.count("restored the initial state") == 2
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == []


def _train_with_online_evals(workdir, log_every: int, rank_every: int) -> None:
  """4 tiny SimCLR steps, checkpoints at 2 and 4, kNN every 2 steps, RankMe every rank_every."""
  config = config_lib.load_config(TINY, total_steps=4, log_every_steps=log_every,
                                  checkpoint_every_steps=2, keep_checkpoints=2)
  config.evals = {"knn": {"type": "knn", "every_steps": 2},
                  "rank": {"type": "collapse", "every_steps": rank_every}}
  train.train(config, str(workdir))


@pytest.mark.slow
def test_online_evals_log_with_the_step_and_agree_with_offline_evaluation(tmp_path):
  _train_with_online_evals(tmp_path, log_every=2, rank_every=4)
  rows = metrics.read_metrics(tmp_path)
  knn_rows = [r for r in rows if "knn/top1" in r]
  assert [r["step"] for r in knn_rows] == [2, 4]
  assert [r["step"] for r in rows if "rank/rankme" in r] == [4]
  # The same features and protocol as offline evaluation of the step-4 checkpoint.
  curve = evaluate.evaluate_all(str(tmp_path), overrides={"evaluators": ["knn", "collapse"],
                                                          "knn_sweep_ks": []})
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
  evaluate.evaluate_all(str(tmp_path), overrides={"evaluators": ["knn", "linear"],
                                                  "linear_steps": 5, "knn_sweep_ks": []})
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
