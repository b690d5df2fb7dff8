"""Compile a run's train step ahead of time for a mesh of N devices and report its memory.

  python -m sslax.compile_check --config=configs/simclr_cifar10.py --devices=64 \
      [--config.mesh.fsdp=8] [--config.batch_size=4096] [--accum=4]

Nothing is trained and no data larger than one example is read: the train state and the global
batch are abstract (shapes, dtypes, shardings), the step is lowered and compiled by XLA for the
config's mesh over N simulated CPU devices, and XLA's memory analysis gives the bytes one device
needs for its arguments (its shard of the state and batch), outputs and temporaries. A run that
will not fit is found here, before accelerators are booked. CPU kernels and layouts differ from
TPU and GPU ones, so take the temporaries as an estimate; arguments and outputs are exact sizes
of the shards. TPU topology names (v5e-256) need libtpu, which this machine does not have: give
the device count.
"""
import os
import tempfile
from typing import Any

import jax
from absl import app, flags

from sslax import config as config_lib
from sslax import optim, parallel
from sslax import state as state_lib
from sslax import train as train_lib
from sslax.data import pipeline
from sslax.methods import get_method
from sslax.step import make_train_step

_DEVICES = flags.DEFINE_integer("devices", None, "Simulated devices the step is compiled for; "
                                "default: the devices this process has.")
_ACCUM = flags.DEFINE_integer("accum", None, "Gradient accumulation micro-batches per step; "
                              "default: config.grad_accum_steps, else 1.")


def compile_report(config, grad_accum_steps: int | None = None) -> dict[str, Any]:
  """Per-device memory (bytes) and FLOPs of the compiled train step on this process's devices
  arranged as config.mesh, accumulating over `grad_accum_steps` (default: the config's, else 1)
  micro-batches."""
  accum = grad_accum_steps or config.get("grad_accum_steps", 1)
  mesh = parallel.make_mesh(config.get("mesh", {"data": -1}))
  parallel.check_batch_size(config.batch_size, mesh)
  method = get_method(config)
  with tempfile.TemporaryDirectory() as scratch:  # Text methods train a tokenizer into it.
    source, views = train_lib.pretrain_data(method, config, scratch)
    sample = pipeline.sample_batch(source, views)
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
  return {"devices": mesh.size, "mesh": dict(mesh.shape), "global_batch": config.batch_size,
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
    report = compile_report(config, _ACCUM.value)
  mib = 2 ** 20
  print(f"train step of {config.method} compiled for {report['devices']} devices, mesh "
        f"{report['mesh']}, global batch {report['global_batch']} in "
        f"{report['grad_accum_steps']} micro-batch(es), "
        f"{report['params']:,} parameters")
  for key in ("argument_bytes", "output_bytes", "alias_bytes", "temp_bytes",
              "peak_bytes_estimate"):
    print(f"  per device {key:<20} {report[key] / mib:12.1f} MiB")
  print(f"  per device flops per step  {report['flops_per_device']:.3e}")


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
