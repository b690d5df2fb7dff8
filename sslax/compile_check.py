"""Compile a run's train step ahead of time for a mesh of devices and report its memory.

  python -m sslax.compile_check --config=configs/simclr_cifar10.py --devices=64 \
      [--config.mesh.fsdp=8] [--config.batch_size=4096] [--accum=4]
  python -m sslax.compile_check --config=configs/mae_imagenet.py --topology=v5e-256

Nothing is trained and no data larger than one example is read: the train state and the global
batch are abstract (shapes, dtypes, shardings), the step is lowered and compiled by XLA for the
config's mesh, and XLA's memory analysis gives the bytes one device needs for its arguments (its
shard of the state and batch), outputs and temporaries. A run that will not fit is found here,
before accelerators are booked.

`--devices=N` compiles for N simulated CPU devices: arguments and outputs are exact sizes of the
shards, temporaries an estimate (CPU kernels and layouts differ from TPU and GPU ones).
`--topology=v5e-256` (also v4-, v5p-, v6e-; or an explicit `v5e:16x16`) compiles with the TPU
compiler itself for that slice, on a machine without TPUs, through libtpu's ahead-of-time
topology (`pip install libtpu`, the version jax[tpu] pins); the figures are then the TPU's own.
"""
import os
import tempfile
from typing import Any

import jax
import numpy as np
from absl import app, flags

from sslax import config as config_lib
from sslax import optim, parallel
from sslax import state as state_lib
from sslax import train as train_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method
from sslax.step import make_train_step

_DEVICES = flags.DEFINE_integer("devices", None, "Simulated devices the step is compiled for; "
                                "default: the devices this process has.")
_TOPOLOGY = flags.DEFINE_string("topology", None, "A TPU slice (v5e-256, v4-32, v5p-128, "
                                 "v6e-64 or v5e:16x16) to compile for with libtpu, instead of "
                                 "CPU devices.")
_ACCUM = flags.DEFINE_integer("accum", None, "Gradient accumulation micro-batches per step; "
                              "default: config.grad_accum_steps, else 1.")


# Chip grids of TPU slices by chip count. Names count TensorCores on v4 and v5p (two per chip)
# and chips on v5e and v6e (Cloud TPU documentation, "TPU versions").
_GRIDS_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
             256: "16x16"}
_GRIDS_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
             256: "4x8x8", 512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16"}
_CORES_PER_CHIP = {"v4": 2, "v5p": 2, "v5e": 1, "v6e": 1}
# A two-core chip is one JAX device ("megacore"), as on a real v4/v5p slice.
_CHIP_CONFIG = {"v4": "megacore", "v5p": "megacore", "v5e": "default", "v6e": "default"}


def tpu_topology_name(slice_name: str) -> str:
  """'v5e-256' -> 'v5e:16x16', 'v4-32' -> 'v4:2x4x4'; an explicit 'v5e:16x16' is kept."""
  version, explicit, grid = slice_name.partition(":")
  if explicit and version in _CORES_PER_CHIP and grid:
    return slice_name
  version, _, count = slice_name.partition("-")
  if version not in _CORES_PER_CHIP or not count.isdigit():
    raise ValueError(f"--topology={slice_name!r}: expected <version>-<size> with version one of "
                     f"{sorted(_CORES_PER_CHIP)} (e.g. v5e-256, v4-32), or v5e:16x16")
  chips = int(count) // _CORES_PER_CHIP[version]
  grids = _GRIDS_3D if _CORES_PER_CHIP[version] == 2 else _GRIDS_2D
  if chips not in grids or int(count) % _CORES_PER_CHIP[version]:
    sizes = sorted(n * _CORES_PER_CHIP[version] for n in grids)
    raise ValueError(f"--topology={slice_name!r}: no {version} slice of that size; sizes: "
                     f"{sizes}, or give the chip grid, e.g. {version}:{next(iter(grids.values()))}")
  return f"{version}:{grids[chips]}"


def tpu_devices(slice_name: str) -> list:
  """The devices of a TPU slice for ahead-of-time compilation on a machine without TPUs."""
  from jax.experimental import topologies
  name = tpu_topology_name(slice_name)
  try:
    topology = topologies.get_topology_desc(platform="tpu", topology_name=name,
                                            chip_config_name=_CHIP_CONFIG[name.split(":")[0]],
                                            chips_per_host_bounds=(2, 2, 1), num_slices=1)
  except Exception as e:  # jax raises RuntimeError/ValueError kinds depending on what is missing.
    raise RuntimeError(f"--topology={slice_name}: libtpu could not describe {name} ({e}); "
                       "install the libtpu that jax[tpu] pins: pip install 'jax[tpu]'") from e
  return list(topology.devices)


def _sample_batch(method, config, scratch: str) -> Any:
  """One example through the run's views. Only its shapes matter, so an image dataset that is
  not on this machine (ImageNet before the pod is booked) is replaced by one blank image."""
  try:
    source, views = train_lib.pretrain_data(method, config, scratch)
  except (ValueError, FileNotFoundError) as e:
    if hasattr(method, "data"):
      raise
    channels = config.data.get("channels", 3)
    print(f"compile_check: the data is not here ({str(e).splitlines()[0]}); shapes come from "
          f"one blank 256x256x{channels} image through the run's views")
    source = sources.ArraySource(np.zeros((1, 256, 256, channels), np.uint8))
    views = method.views()
  return pipeline.sample_batch(source, views)


def compile_report(config, grad_accum_steps: int | None = None,
                   devices: list | None = None) -> dict[str, Any]:
  """Per-device memory (bytes) and FLOPs of the compiled train step on `devices` (default: this
  process's) arranged as config.mesh, accumulating over `grad_accum_steps` (default: the
  config's, else 1) micro-batches."""
  accum = grad_accum_steps or config.get("grad_accum_steps", 1)
  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}), devices)
  parallel.check_batch_size(config.batch_size, mesh)
  method = get_method(config)
  with tempfile.TemporaryDirectory() as scratch:  # Text methods train a tokenizer into it.
    sample = _sample_batch(method, config, scratch)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  abstract, shardings = state_lib.state_shardings(method, tx, sample, config.seed, mesh,
                                                  config.get("sharding_rules", ()))
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((config.batch_size, *x.shape[1:]),
                                                      x.dtype,
                                                      sharding=parallel.batch_sharding(mesh)),
                       sample)
  compiled = make_train_step(method, tx, schedule, mesh, shardings, accum).lower(
      abstract, batch).compile()
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis() or {}
  cost = cost[0] if isinstance(cost, list) else cost
  params = sum(x.size for x in jax.tree.leaves(abstract["params"]))
  return {"devices": mesh.size, "platform": mesh.devices.flat[0].device_kind,
          "mesh": dict(mesh.shape), "global_batch": config.batch_size,
          "grad_accum_steps": accum,
          "params": int(params),
          "argument_bytes": int(memory.argument_size_in_bytes),
          "output_bytes": int(memory.output_size_in_bytes),
          "alias_bytes": int(memory.alias_size_in_bytes),
          "temp_bytes": int(memory.temp_size_in_bytes),
          "peak_bytes_estimate": int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                                     - memory.alias_size_in_bytes + memory.temp_size_in_bytes),
          "flops_per_device": float(cost.get("flops", 0.0))}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise SystemExit(f"sslax: unexpected arguments {argv[1:]}")
  if _DEVICES.value:  # Read when the CPU backend starts, which nothing has asked for yet.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={_DEVICES.value}")
    jax.config.update("jax_platforms", "cpu")
  config = config_lib.config_from_flags()
  config_lib.quiet_library_logs()
  with config_lib.one_line_errors():
    devices = tpu_devices(_TOPOLOGY.value) if _TOPOLOGY.value else None
    report = compile_report(config, _ACCUM.value, devices)
  mib = 2 ** 20
  target = f"{_TOPOLOGY.value} ({report['platform']})" if _TOPOLOGY.value else "CPU"
  print(f"train step of {config.method} compiled for {report['devices']} {target} devices, mesh "
        f"{report['mesh']}, global batch {report['global_batch']} in "
        f"{report['grad_accum_steps']} micro-batch(es), "
        f"{report['params']:,} parameters")
  for key in ("argument_bytes", "output_bytes", "alias_bytes", "temp_bytes",
              "peak_bytes_estimate"):
    print(f"  per device {key:<20} {report[key] / mib:12.1f} MiB")
  print(f"  per device flops per step  {report['flops_per_device']:.3e}")


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
