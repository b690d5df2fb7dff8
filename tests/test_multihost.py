"""Multi-host runs: environment detection, per-process data shards, and one real 2-process run
through launch/local_multiprocess.sh that is preempted on one host and resumed on one."""
import os
import re
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from sslax import checkpoint, distributed, metrics, train
from sslax import config as config_lib
from sslax.data import pipeline, sources

REPO = __file__.rsplit("/tests/", 1)[0]
TINY = f"{REPO}/configs/simclr_mnist.py:tiny"
# Saves only on preemption and at the end; 30 steps leave the preemption sync time to land.
OVERRIDES = {"total_steps": 30, "log_every_steps": 1, "checkpoint_every_steps": 1000}
SLURM_STEP = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "4",
              "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}
EXPLICIT = {"SSLAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "SSLAX_NUM_PROCESSES": "2",
            "SSLAX_PROCESS_ID": "1"}


def test_no_cluster_means_one_process_and_no_initialize():
  assert distributed.detect({}, on_tpu_vm=False) is None
  assert distributed.detect({"SSLAX_DISTRIBUTED": "off", **SLURM_STEP}, on_tpu_vm=True) is None
  # An sbatch script outside srun (no step node list) and a one-task step stay single-process.
  outside_srun = {k: v for k, v in SLURM_STEP.items() if k != "SLURM_STEP_NODELIST"}
  assert distributed.detect(outside_srun, on_tpu_vm=False) is None
  assert distributed.detect({**SLURM_STEP, "SLURM_NTASKS": "1"}, on_tpu_vm=False) is None
  assert distributed.detect({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://x:1", "OMPI_COMM_WORLD_SIZE": "1"},
                            on_tpu_vm=False) is None
  assert distributed.initialize({}) is None and not jax.distributed.is_initialized()


def test_explicit_variables_win_and_carry_the_timeouts():
  plan = distributed.detect({**EXPLICIT, **SLURM_STEP, "SSLAX_INIT_TIMEOUT": "9",
                             "SSLAX_HEARTBEAT_TIMEOUT": "4", "SSLAX_DISTRIBUTED": "off"},
                            on_tpu_vm=True)
  assert plan == distributed.Plan("explicit", "10.0.0.1:1234", 2, 1, initialization_timeout=9,
                                  heartbeat_timeout=4)


def test_clusters_are_left_to_jax_detection():
  slurm = distributed.detect(SLURM_STEP, on_tpu_vm=False)
  assert slurm == distributed.Plan("slurm")
  assert (slurm.coordinator_address, slurm.num_processes, slurm.process_id) == (None,) * 3
  assert slurm.initialization_timeout == distributed.DEFAULT_INIT_TIMEOUT
  ompi = {"OMPI_MCA_orte_hnp_uri": "1.0;tcp://x:1", "OMPI_COMM_WORLD_SIZE": "8"}
  assert distributed.detect(ompi, on_tpu_vm=False).cluster == "ompi"
  assert distributed.detect({}, on_tpu_vm=True).cluster == "gcetpu"
  gke = {"TPU_WORKER_HOSTNAMES": "host-0,host-1"}
  assert distributed.detect(gke, on_tpu_vm=True).cluster == "gketpu"
  assert distributed.detect(gke, on_tpu_vm=False) is None  # Not a TPU VM: the variable alone.


@pytest.mark.parametrize("environ, message", [
    ({"SSLAX_NUM_PROCESSES": "2"}, "SSLAX_NUM_PROCESSES set but not SSLAX_COORDINATOR_ADDRESS, "
                                   "SSLAX_PROCESS_ID"),
    ({**EXPLICIT, "SSLAX_COORDINATOR_ADDRESS": "10.0.0.1"}, "must be host:port"),
    ({**EXPLICIT, "SSLAX_PROCESS_ID": "2"}, "SSLAX_PROCESS_ID=2 must be below"),
    ({**EXPLICIT, "SSLAX_NUM_PROCESSES": "two"}, "SSLAX_NUM_PROCESSES='two' must be an integer"),
    ({"SSLAX_INIT_TIMEOUT": "0"}, "SSLAX_INIT_TIMEOUT='0' must be an integer >= 1"),
    ({"SSLAX_DISTRIBUTED": "yes"}, "must be 'auto' \\(default\\) or 'off'"),
])
def test_bad_variables_fail_with_one_line_saying_what_to_set(environ, message):
  with pytest.raises(ValueError, match=message):
    distributed.detect(environ, on_tpu_vm=False)


class _RecordingSource(sources.ArraySource):
  """Remembers which records were read."""

  def __init__(self, images):
    super().__init__(images)
    self.read = []

  def __getitem__(self, index):
    self.read.append(int(index))
    return super().__getitem__(index)


def test_each_process_reads_only_its_own_records():
  images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
  spec = dict(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
              grayscale_p=0.0, mean=(0.0,), std=(1.0,))
  read = []
  for index, count in ((0, 2), (1, 2), (0, 1)):
    source = _RecordingSource(images)
    shard = pipeline.train_dataset(source, [spec], 8, seed=5, process_index=index,
                                   process_count=count)
    for step in range(3):
      shard[step]
    read.append(source.read)
  first, second, single = read
  assert len(first) == len(set(first)) == 12 and len(second) == len(set(second)) == 12
  assert not set(first) & set(second)  # 3 batches of 4 each, none of the other's records.
  assert sorted(first + second) == sorted(single)


def _wait_for_step(workdir, step, launcher, deadline):
  """Waits until process 0 has logged `step` (the processes run in lock-step)."""
  while time.monotonic() < deadline and launcher.poll() is None:
    try:
      if any(row["step"] >= step for row in metrics.read_metrics(workdir)):
        return True
    except (FileNotFoundError, ValueError):  # Not written yet, or a line being written.
      pass
    time.sleep(0.1)
  return False


def _kill_launch(log_dir, launcher):
  for pid_file in log_dir.glob("process_*.pid"):
    try:
      os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    except ProcessLookupError:
      pass
  launcher.kill()


@pytest.mark.slow
def test_two_hosts_match_one_agree_on_preemption_and_resume_on_one(tmp_path):
  workdir, log_dir, out = tmp_path / "run", tmp_path / "logs", tmp_path / "process_0.log"
  overrides = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  env = {**os.environ, "TIMEOUT": "240", "LOG_DIR": str(log_dir)}
  with open(out, "w") as stdout:
    launcher = subprocess.Popen(
        [f"{REPO}/launch/local_multiprocess.sh", "2", f"--config={TINY}", f"--workdir={workdir}",
         *overrides], env=env, stdout=stdout, stderr=subprocess.STDOUT)
  try:
    # SIGTERM to process 1 only, once training runs: process 0 must stop at the same step.
    # JAX's notifier polls for SIGTERM once a second, longer than the 30 tiny steps may take,
    # so process 0 (and with it process 1, at its next collective) is paused meanwhile.
    assert _wait_for_step(workdir, 8, launcher, time.monotonic() + 180), launcher.poll()
    paused = int((log_dir / "process_0.pid").read_text())
    os.killpg(paused, signal.SIGSTOP)
    os.kill(int((log_dir / "process_1.pid").read_text()), signal.SIGTERM)
    time.sleep(3)
    os.killpg(paused, signal.SIGCONT)
    launcher.wait(timeout=240)
  finally:
    if launcher.poll() is None:
      _kill_launch(log_dir, launcher)
  output = out.read_text()
  logs = [output, (log_dir / "process_1.log").read_text()]
  assert launcher.returncode == 0, output[-3000:] + logs[1][-3000:]
  assert "process 1 of 2 joined, 4 local of 8 devices" in logs[1]
  saved = [re.findall(r"preempted: checkpoint of step (\d+) saved", log) for log in logs]
  assert saved[0] == saved[1] and len(saved[0]) == 1, saved
  stopped = int(saved[0][0])
  assert 8 <= stopped < OVERRIDES["total_steps"]
  assert checkpoint.Checkpointer(str(workdir / "checkpoints")).all_steps() == [stopped]
  two_hosts = [row["loss"] for row in metrics.read_metrics(workdir)]
  assert len(two_hosts) == stopped

  # One process with the same 8 devices: the same losses up to float32 summation order.
  config = config_lib.load_config(TINY, **OVERRIDES)
  train.train(config, str(tmp_path / "reference"))
  reference = [row["loss"] for row in metrics.read_metrics(tmp_path / "reference")]
  np.testing.assert_allclose(two_hosts, reference[:stopped], rtol=1e-5)
  # The 2-process checkpoint (state and data iterator) resumes in 1 process.
  train.train(config, str(workdir))
  resumed = metrics.read_metrics(workdir)
  assert [row["step"] for row in resumed] == list(range(1, OVERRIDES["total_steps"] + 1))
  np.testing.assert_allclose([row["loss"] for row in resumed], reference, rtol=1e-5)
