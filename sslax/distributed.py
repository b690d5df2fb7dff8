"""Joining a multi-host run: `jax.distributed.initialize`, driven by the environment.

Both entry points call `initialize()` before any other JAX call. The scheme (environment only,
so `sslax.train` and `sslax.evaluate` read the same settings and a config never holds an address):

- Explicit: `SSLAX_COORDINATOR_ADDRESS=host:port` (process 0's host, a free port),
  `SSLAX_NUM_PROCESSES=N`, `SSLAX_PROCESS_ID=i` (0..N-1), all three or none.
- Otherwise detected, as JAX's own cluster detection checks (jax/_src/clusters, jax 0.10.2):
  SLURM (`SLURM_JOB_ID`, `SLURM_STEP_NODELIST`, `SLURM_NTASKS`, `SLURM_PROCID`,
  `SLURM_LOCALID` all set, `SLURM_NTASKS` > 1: a job step started with `srun`), Open MPI's
  `mpirun` (`OMPI_MCA_orte_hnp_uri`, `OMPI_COMM_WORLD_SIZE` > 1) and Cloud TPU VMs (libtpu and a
  TPU chip found when jax was imported; JAX reads the workers from `TPU_WORKER_HOSTNAMES` /
  `TPU_PROCESS_ADDRESSES` on GKE, from the metadata server on GCE). JAX then derives the
  coordinator, process count and id itself. On GPUs under SLURM JAX gives each task one device,
  `SLURM_LOCALID`; with one task per node set `JAX_LOCAL_DEVICE_IDS=0,1,...` (read by JAX).
- `SSLAX_DISTRIBUTED=off` turns the detection off (the explicit variables still count).
  Nothing of the above: one process, no call at all.
- Timeouts in seconds: `SSLAX_INIT_TIMEOUT` (default 120: how long to wait for every process to
  join) and `SSLAX_HEARTBEAT_TIMEOUT` (default 30: how soon a dead peer stops the others). JAX
  aborts the process (SIGABRT, no Python exception) when either runs out, so the line printed
  before joining says what an abort means.

Data: every process builds the same Grain `MapDataset` and keeps its own chunks of each global
batch (`pipeline.train_dataset`), so it reads only its records. Grain's `DataLoader` with
`ShardByJaxProcess` would silently drop records when their count does not divide by the process
count; sslax does not use it.
"""
import dataclasses
import os
from collections.abc import Mapping

import jax
from jax._src import cloud_tpu_init  # Private, but the flag JAX's own TPU detection reads.

DEFAULT_INIT_TIMEOUT = 120
DEFAULT_HEARTBEAT_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 60  # How long a finished process waits for the others at exit.
EXPLICIT = ("SSLAX_COORDINATOR_ADDRESS", "SSLAX_NUM_PROCESSES", "SSLAX_PROCESS_ID")
SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


@dataclasses.dataclass(frozen=True)
class Plan:
  """How this process joins the run: `cluster` is "explicit" (the SSLAX_* variables) or the JAX
  cluster detection method that fills in the fields left None."""
  cluster: str
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  initialization_timeout: int = DEFAULT_INIT_TIMEOUT
  heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT


def _int(environ: Mapping[str, str], name: str, default: int | None = None,
         minimum: int = 1) -> int:
  text = environ.get(name)
  if text is None and default is not None:
    return default
  try:
    value = int(text)
  except (TypeError, ValueError):
    value = None
  if value is None or value < minimum:
    raise ValueError(f"{name}={text!r} must be an integer >= {minimum}")
  return value


def _explicit(environ: Mapping[str, str]) -> tuple[str, int, int] | None:
  """(address, num_processes, process_id) from the SSLAX_* variables, None if none is set."""
  given = [name for name in EXPLICIT if environ.get(name)]
  if not given:
    return None
  if len(given) < len(EXPLICIT):
    missing = [name for name in EXPLICIT if name not in given]
    raise ValueError(f"{', '.join(given)} set but not {', '.join(missing)}: set all three "
                     "(host:port of process 0, N, 0..N-1) or none")
  address = environ["SSLAX_COORDINATOR_ADDRESS"]
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"SSLAX_COORDINATOR_ADDRESS={address!r} must be host:port")
  count = _int(environ, "SSLAX_NUM_PROCESSES")
  index = _int(environ, "SSLAX_PROCESS_ID", minimum=0)
  if index >= count:
    raise ValueError(f"SSLAX_PROCESS_ID={index} must be below SSLAX_NUM_PROCESSES={count}")
  return address, count, index


def detect(environ: Mapping[str, str], on_tpu_vm: bool) -> Plan | None:
  """The plan for these environment variables (see the module docstring); None: one process.

  `on_tpu_vm` is JAX's finding at import (libtpu installed and a TPU chip attached)."""
  mode = environ.get("SSLAX_DISTRIBUTED", "auto")
  if mode not in ("auto", "off"):
    raise ValueError(f"SSLAX_DISTRIBUTED={mode!r} must be 'auto' (default) or 'off'")
  timeouts = dict(initialization_timeout=_int(environ, "SSLAX_INIT_TIMEOUT", DEFAULT_INIT_TIMEOUT),
                  heartbeat_timeout=_int(environ, "SSLAX_HEARTBEAT_TIMEOUT",
                                         DEFAULT_HEARTBEAT_TIMEOUT))
  explicit = _explicit(environ)
  if explicit is not None:
    return Plan("explicit", *explicit, **timeouts)
  if mode == "off":
    return None
  if all(name in environ for name in SLURM) and _int(environ, "SLURM_NTASKS") > 1:
    return Plan("slurm", **timeouts)
  if "OMPI_MCA_orte_hnp_uri" in environ and _int(environ, "OMPI_COMM_WORLD_SIZE", 1) > 1:
    return Plan("ompi", **timeouts)
  if on_tpu_vm:
    tpu_workers = environ.get("TPU_PROCESS_ADDRESSES", environ.get("TPU_WORKER_HOSTNAMES"))
    return Plan("gketpu" if tpu_workers is not None else "gcetpu", **timeouts)
  return None


def _on_tpu_vm() -> bool:
  """Whether jax found libtpu and a TPU chip when it was imported."""
  return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


def initialize(environ: Mapping[str, str] | None = None) -> Plan | None:
  """Joins the multi-host run the environment describes; a no-op for a single process.

  Must run before any JAX computation or device query. Raises ValueError for bad variables."""
  environ = os.environ if environ is None else environ
  plan = detect(environ, _on_tpu_vm())
  if plan is None or jax.distributed.is_initialized():
    return plan
  who = (f"process {plan.process_id} of {plan.num_processes} at {plan.coordinator_address}"
         if plan.cluster == "explicit" else f"one of the processes of this {plan.cluster} job")
  print(f"sslax: joining a multi-host run as {who}; waiting up to {plan.initialization_timeout} s "
        "(SSLAX_INIT_TIMEOUT) for all of them. An abort after that means a process never "
        f"joined; one {plan.heartbeat_timeout} s (SSLAX_HEARTBEAT_TIMEOUT) after a peer died "
        "means that peer failed: see its log.", flush=True)
  jax.distributed.initialize(
      plan.coordinator_address, plan.num_processes, plan.process_id,
      cluster_detection_method="deactivate" if plan.cluster == "explicit" else plan.cluster,
      initialization_timeout=plan.initialization_timeout,
      heartbeat_timeout_seconds=plan.heartbeat_timeout, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT)
  print(f"sslax: process {jax.process_index()} of {jax.process_count()} joined, "
        f"{jax.local_device_count()} local of {jax.device_count()} devices.", flush=True)
  return plan
