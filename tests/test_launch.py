"""The launch scripts, offline: tpu_pod.sh against a stub gcloud that runs the workers' commands
in a fake home directory, slurm_gpu.sbatch under a fake SLURM job with stub srun/scontrol."""
import os
import shlex
import subprocess
import textwrap

import pytest
from jax._src.clusters.slurm_cluster import SlurmCluster

from sslax import distributed

REPO = __file__.rsplit("/tests/", 1)[0]
TPU_POD = f"{REPO}/launch/tpu_pod.sh"
SBATCH = f"{REPO}/launch/slurm_gpu.sbatch"
REQUIRED = {"name": "sslax-pod", "zone": "us-west4-a", "accelerator": "v5litepod-16",
            "workdir": "gs://my-bucket/runs/simclr"}
TRAIN_ARGS = ["--config=configs/simclr_mnist.py", "--config.batch_size=1024",
              "--config.data.path=a b'c"]  # A space and a quote: the remote quoting must hold.


def _write(path, text: str) -> None:
  path.write_text(textwrap.dedent(text).lstrip())
  path.chmod(0o755)


def _tpu_pod(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  return subprocess.run(["bash", TPU_POD, *args], capture_output=True, text=True, timeout=60,
                        env={**os.environ, **(env or {})})


def _flags(**values: str) -> list[str]:
  return [f"--{k}={v}" for k, v in values.items()]


def _remote(words: list[str]) -> str:
  """The --command value of a `gcloud ... ssh` command line."""
  return words[words.index("--command") + 1]


def test_tpu_pod_dry_run_prints_every_command():
  result = _tpu_pod("--dry-run", *_flags(**REQUIRED), "--spot", "--", *TRAIN_ARGS)
  assert result.returncode == 0, result.stderr
  lines = [shlex.split(line) for line in result.stdout.splitlines() if not line.startswith("#")]
  describe, create, archive, scp, setup, train = lines
  tpu = ["gcloud", "compute", "tpus", "tpu-vm"]
  assert describe == [*tpu, "describe", "sslax-pod", "--zone=us-west4-a", "--format=value(state)"]
  assert create == [*tpu, "create", "sslax-pod", "--zone=us-west4-a",
                    "--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite", "--spot"]
  assert archive[:2] == ["git", "-C"] and archive[-3:] == ["-o", scp[5], "HEAD"]
  assert scp[4:] == ["scp", scp[5], "sslax-pod:sslax.tar.gz", "--zone=us-west4-a", "--worker=all"]
  for ssh in setup, train:
    assert ssh[4:8] == ["ssh", "sslax-pod", "--zone=us-west4-a", "--worker=all"]
  assert "pip install -q -e ~/sslax 'jax[tpu]>=0.10.2,<0.11'" in _remote(setup)
  assert "gcsfuse --implicit-dirs" in _remote(setup)
  assert shlex.split(_remote(train)) == [
      "cd", "~/sslax", "&&", "~/sslax-venv/bin/python", "-m", "sslax.train",
      "--workdir=$HOME/gcs/my-bucket/runs/simclr", *TRAIN_ARGS]
  for ssh in setup, train:  # Both remote scripts parse.
    check = subprocess.run(["bash", "-n", "-c", _remote(ssh)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_tpu_pod_can_clone_a_repo_instead_of_copying():
  result = _tpu_pod("--dry-run", *_flags(**REQUIRED), "--repo=https://example.org/sslax.git",
                    "--ref=v1", "--project=p1", "--", *TRAIN_ARGS)
  assert result.returncode == 0, result.stderr
  lines = [shlex.split(line) for line in result.stdout.splitlines() if not line.startswith("#")]
  assert [words[4] for words in lines] == ["describe", "create", "ssh", "ssh"]  # No scp.
  assert all("--project=p1" in words for words in lines)
  assert _remote(lines[2]).startswith(
      "set -e; rm -rf ~/sslax; git clone -q https://example.org/sslax.git ~/sslax; "
      "git -C ~/sslax checkout -q v1; ")


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_tpu_pod_fails_on_a_missing_flag(missing):
  given = {k: v for k, v in REQUIRED.items() if k != missing}
  result = _tpu_pod("--dry-run", *_flags(**given), "--", *TRAIN_ARGS)
  assert result.returncode == 2
  assert result.stderr.strip() == f"tpu_pod.sh: --{missing} is required (see --help)"
  assert result.stdout == ""


@pytest.mark.parametrize("args, message", [
    (_flags(**{**REQUIRED, "workdir": "/local/runs/x"}), "--workdir must be a GCS path"),
    (_flags(**REQUIRED), "sslax.train needs --config"),
    ([*_flags(**REQUIRED), "--zoen=x", "--", *TRAIN_ARGS], "unknown flag --zoen"),
    ([*_flags(**REQUIRED), "--", *TRAIN_ARGS, "--workdir=/x"], "give --workdir=gs://... before"),
    (_flags(**{**REQUIRED, "accelerator": "v9-8"}) + ["--", *TRAIN_ARGS],
     "no default --runtime-version"),
])
def test_tpu_pod_rejects_bad_input_in_one_line(args, message):
  result = _tpu_pod("--dry-run", *args)
  assert result.returncode == 2 and result.stdout == ""
  assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


@pytest.fixture
def fake_cloud(tmp_path):
  """A stub gcloud (every call logged; `describe` answers $TPU_STATE, `scp` copies into the fake
  worker's home, `ssh` runs the command there with bash) and stubs for what the workers' commands
  call: python3.11 (makes a venv whose pip and python log their arguments), gcsfuse, mountpoint."""
  stubs, home = tmp_path / "bin", tmp_path / "worker_home"
  stubs.mkdir()
  home.mkdir()
  log = tmp_path / "calls.log"
  # `record NAME ARGS...` appends the working directory, NAME and ARGS as one shell-quoted line.
  _write(stubs / "record", f"""
      #!/usr/bin/env bash
      {{ printf '%q ' "$PWD" "$@"; echo; }} >> {log}
      """)
  _write(stubs / "gcloud", f"""
      #!/usr/bin/env bash
      record gcloud "$@"
      case $4 in
        describe) [[ -n $TPU_STATE ]] && echo "$TPU_STATE" || exit 1 ;;
        scp) cp "$5" "{home}/${{6#*:}}" ;;
        ssh) for ((i = 1; i < $#; i++)); do [[ ${{!i}} == --command ]] && j=$((i + 1)); done
             cd {home} && HOME={home} bash -c "${{!j}}" ;;
      esac
      """)
  _write(stubs / "python3.11", """
      #!/usr/bin/env bash
      [[ $1 == -m && $2 == venv ]] || exit 1
      mkdir -p "$3/bin"
      for tool in pip python; do
        printf '#!/usr/bin/env bash\\nrecord %s "$@"\\n' $tool > "$3/bin/$tool"
        chmod +x "$3/bin/$tool"
      done
      """)
  _write(stubs / "gcsfuse", '#!/usr/bin/env bash\nrecord gcsfuse "$@"\n')
  _write(stubs / "mountpoint", "#!/usr/bin/env bash\nexit 1\n")

  def run(state: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    log.write_text("")
    result = _tpu_pod(*_flags(**REQUIRED), *extra, "--", *TRAIN_ARGS,
                      env={"PATH": f"{stubs}:{os.environ['PATH']}", "TPU_STATE": state,
                           "TMPDIR": str(tmp_path)})
    return result, [shlex.split(line) for line in log.read_text().splitlines()]

  run.home = home
  return run


@pytest.mark.parametrize("state, lifecycle", [
    ("", ["describe", "create"]),
    ("READY", ["describe"]),
    ("STOPPED", ["describe", "start"]),
    ("PREEMPTED", ["describe", "delete", "create"]),
])
def test_tpu_pod_creates_or_reuses_copies_installs_and_runs(fake_cloud, state, lifecycle):
  result, calls = fake_cloud(state)
  assert result.returncode == 0, result.stderr
  home = str(fake_cloud.home)
  gcloud = [c[5] for c in calls if c[1] == "gcloud"]
  assert gcloud == [*lifecycle, "scp", "ssh", "ssh"]
  # The worker got this checkout's HEAD, unpacked.
  assert (fake_cloud.home / "sslax" / "pyproject.toml").is_file()
  assert (fake_cloud.home / "sslax" / "sslax" / "train.py").is_file()
  worker = [c for c in calls if c[1] != "gcloud"]
  assert [c[1] for c in worker] == ["pip", "pip", "gcsfuse", "python"]
  _, pip, gcsfuse, python = worker
  assert pip[1:] == ["pip", "install", "-q", "-e", f"{home}/sslax", "jax[tpu]>=0.10.2,<0.11"]
  assert gcsfuse[-2:] == ["my-bucket", f"{home}/gcs/my-bucket"]
  assert python == [f"{home}/sslax", "python", "-m", "sslax.train",
                    f"--workdir={home}/gcs/my-bucket/runs/simclr", *TRAIN_ARGS]
  assert (fake_cloud.home / "gcs" / "my-bucket" / "runs" / "simclr").is_dir()


def test_tpu_pod_skip_install_reuses_the_venv(fake_cloud):
  fake_cloud("READY")
  result, calls = fake_cloud("READY", "--skip-install")
  assert result.returncode == 0, result.stderr
  assert [c[1] for c in calls if c[1] != "gcloud"] == ["gcsfuse", "python"]


@pytest.fixture
def fake_slurm(tmp_path):
  """Runs the sbatch script as SLURM would on a job's first node: stub scontrol (the job's
  hosts), stub srun (starts every task one after another with its SLURM_* variables) and a stub
  python that writes what each task received to task_<SLURM_PROCID>: its arguments, shell-quoted
  on one line, then its environment (`env -0`)."""
  stubs = tmp_path / "bin"
  stubs.mkdir()
  _write(stubs / "scontrol", """
      #!/usr/bin/env bash
      [[ $1 == show && $2 == hostnames ]] && printf '%s\\n' $FAKE_HOSTS
      """)
  _write(stubs / "srun", """
      #!/usr/bin/env bash
      while [[ $1 == --* ]]; do shift; done
      per_node=$((SLURM_NTASKS / SLURM_JOB_NUM_NODES))
      for ((p = 0; p < SLURM_NTASKS; p++)); do
        SLURM_PROCID=$p SLURM_LOCALID=$((p % per_node)) SLURM_NODEID=$((p / per_node)) \\
          SLURM_STEP_NODELIST=$SLURM_JOB_NODELIST SLURM_STEP_NUM_NODES=$SLURM_JOB_NUM_NODES \\
          "$@" || exit
      done
      """)
  _write(stubs / "python", f"""
      #!/usr/bin/env bash
      {{ printf '%q ' "$@"; echo; env -0; }} > {tmp_path}/task_$SLURM_PROCID
      """)

  def run(nodes: int, per_node: int, gpus: str, *args: str, **env: str):
    environ = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "PYTHON": "python",
               "SLURM_JOB_ID": "1234567", "SLURM_JOB_NODELIST": f"gpu[003-{2 + nodes:03d}]",
               "FAKE_HOSTS": " ".join(f"gpu{3 + i:03d}" for i in range(nodes)),
               "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NTASKS": str(nodes * per_node),
               "SLURM_SUBMIT_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": gpus, **env}
    result = subprocess.run(["bash", SBATCH, *args], env=environ, capture_output=True, text=True,
                            timeout=60)
    tasks = []
    for path in sorted(tmp_path.glob("task_*")):
      argv, env = path.read_text().split("\n", 1)
      tasks.append({"argv": shlex.split(argv),
                    "env": dict(item.split("=", 1) for item in env.split("\0") if item)})
    return result, tasks

  return run


ARGS = ("--config=configs/simclr_mnist.py", "--workdir=/shared/runs/x")


def test_sbatch_parses():
  assert subprocess.run(["bash", "-n", SBATCH]).returncode == 0


@pytest.mark.parametrize("nodes, per_node, gpus", [(2, 1, "0,1,2,3"), (3, 1, "0,1"),
                                                    (2, 2, "0,1")])
def test_sbatch_gives_every_task_the_coordinator_and_its_process_id(fake_slurm, nodes, per_node,
                                                                    gpus, monkeypatch):
  result, tasks = fake_slurm(nodes, per_node, gpus, *ARGS)
  assert result.returncode == 0, result.stderr
  count = nodes * per_node
  assert len(tasks) == count
  port = 61440 + 1234567 % 4096
  for i, task in enumerate(tasks):
    env = task["env"]
    assert task["argv"] == ["-m", "sslax.train", *ARGS]
    assert distributed.detect(env, on_tpu_vm=False) == distributed.Plan(
        "explicit", f"gpu003:{port}", count, i)
    # JAX's own SLURM detection would pick the same coordinator for this step.
    monkeypatch.setattr(os, "environ", env)
    assert SlurmCluster.get_coordinator_address(None, None) == f"gpu003:{port}"
    assert SlurmCluster.get_process_id() == i and SlurmCluster.get_process_count() == count
    monkeypatch.undo()
    owned = gpus if per_node == 1 else str(i % per_node)
    assert env["JAX_LOCAL_DEVICE_IDS"] == owned


def test_sbatch_can_leave_the_coordinator_to_jax(fake_slurm):
  result, tasks = fake_slurm(2, 1, "0,1,2,3", *ARGS, SSLAX_SLURM_DETECT="jax",
                             SSLAX_COORDINATOR_PORT="23456")
  assert result.returncode == 0, result.stderr
  for task in tasks:
    env = task["env"]
    assert not any(name in env for name in distributed.EXPLICIT)
    assert distributed.detect(env, on_tpu_vm=False).cluster == "slurm"
    assert env["JAX_COORDINATOR_PORT"] == "23456"
    assert env["JAX_LOCAL_DEVICE_IDS"] == "0,1,2,3"  # Not JAX's default: GPU SLURM_LOCALID only.


@pytest.mark.parametrize("args, env, message", [
    (ARGS[:1], {}, "--workdir=DIR is required"),
    (ARGS[1:], {}, "--config=configs/FILE.py is required"),
    (ARGS, {"SLURM_JOB_ID": ""}, "not inside a SLURM job"),
    (ARGS, {"SSLAX_SLURM_DETECT": "mpi"}, "SSLAX_SLURM_DETECT must be"),
])
def test_sbatch_rejects_bad_input_in_one_line(fake_slurm, args, env, message):
  result, tasks = fake_slurm(2, 1, "0", *args, **env)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and not tasks and len(lines) == 1
  assert lines[0].startswith("slurm_gpu.sbatch: ") and message in lines[0]


def test_sbatch_needs_one_gpu_per_task_when_several_share_a_node(fake_slurm):
  result, tasks = fake_slurm(2, 2, "0", *ARGS)
  assert result.returncode == 2 and not tasks
  assert "one task per GPU needs --ntasks-per-node equal to --gpus-per-node" in result.stderr
