"""Device mesh, sharding rules and host-to-global batches.

The mesh has three named axes: `data` (pure data parallel), `fsdp` (data parallel whose
parameters are also sharded) and `tensor` (model parallel). Batches are split over `data` and
`fsdp`. Parameters get their sharding from (regex over the parameter path, rule) pairs in the
config, so sharding is declared rather than coded.
"""
import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(sizes: dict[str, int], num_devices: int) -> tuple[int, ...]:
  """Axis sizes in AXES order; one axis may be -1 ("the rest of the devices")."""
  unknown = set(sizes) - set(AXES)
  if unknown:
    raise ValueError(f"unknown mesh axes {sorted(unknown)}; valid axes are {AXES}")
  shape = [int(sizes.get(name, 1)) for name in AXES]
  named = dict(zip(AXES, shape, strict=True))
  if shape.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {named}")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(f"mesh {named} does not divide {num_devices} devices")
    shape[shape.index(-1)] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ValueError(f"mesh {named} needs {math.prod(shape)} devices, "
                     f"but {num_devices} are present; set one axis to -1")
  return tuple(shape)


def make_mesh(sizes: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh over all (or the given) devices with Auto axes, so XLA propagates shardings."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(dict(sizes), len(devices))
  return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data-parallel axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_divisor(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  """Raises a one-line error when the global batch cannot be split over devices and hosts."""
  divisor = math.lcm(batch_divisor(mesh), jax.process_count())
  if global_batch % divisor:
    suggestion = max(divisor, global_batch // divisor * divisor)
    raise ValueError(f"batch_size={global_batch} must be a multiple of {divisor} "
                     f"(data x fsdp = {batch_divisor(mesh)} devices, {jax.process_count()} "
                     f"processes); try batch_size={suggestion}")


def to_global(local_batch: Any, mesh: Mesh) -> Any:
  """Turns this process's rows of the batch (numpy) into one global jax.Array per leaf."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local_batch)


def path_name(path: tuple[Any, ...]) -> str:
  """'encoder/stage1_block0/conv1/kernel' for a pytree key path."""
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
  return "/".join(parts)


def _spec_for(shape: tuple[int, ...], rule: Any, mesh: Mesh) -> P:
  """A PartitionSpec from a rule: 'replicated', 'fsdp' or an explicit tuple of axis names."""
  if rule in (None, "replicated"):
    return P()
  if rule == "fsdp":
    # Shard the largest dimension that divides evenly over the fsdp axis; small arrays stay whole.
    size = mesh.shape["fsdp"]
    candidates = [d for d in np.argsort(shape)[::-1] if shape[d] % size == 0 and shape[d] >= size]
    if size == 1 or not candidates:
      return P()
    spec = [None] * len(shape)
    spec[candidates[0]] = "fsdp"
    return P(*spec)
  spec = tuple(rule)
  if len(spec) != len(shape):
    raise ValueError(f"sharding rule {rule} has {len(spec)} entries for an array of shape {shape}")
  return P(*spec)


def param_shardings(abstract: Any, mesh: Mesh, rules: Sequence[tuple[str, Any]]) -> Any:
  """NamedShardings for a pytree of arrays: the first rule whose regex matches the path wins.

  Under a `blocks` path segment (scanned layers, sslax/models/stack.py) arrays carry a leading
  layer axis: the rule applies to the trailing dimensions and the layer axis stays unsharded,
  so one rule set serves `block3/attn/query/kernel` and `blocks/attn/query/kernel`.
  """
  compiled = [(re.compile(pattern), rule) for pattern, rule in rules]

  def one(path, leaf):
    name = path_name(path)
    rule = next((r for pattern, r in compiled if pattern.search(name)), "replicated")
    if "blocks" in name.split("/"):
      return NamedSharding(mesh, P(None, *_spec_for(tuple(leaf.shape[1:]), rule, mesh)))
    return NamedSharding(mesh, _spec_for(tuple(leaf.shape), rule, mesh))

  return jax.tree_util.tree_map_with_path(one, abstract)
