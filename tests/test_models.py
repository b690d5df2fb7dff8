"""Tests for sslax.models: shapes, parameter counts/names, BatchNorm behaviour, dtypes, sharding.

Full-size models are only traced (jax.eval_shape); numerics run on tiny models whose init and
apply are jitted once per module, because XLA:CPU compiles random initialisers slowly.
"""
import functools
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sslax.models import (
  ENCODER_NAMES,
  BasicBlock,
  BottleneckBlock,
  MLPHead,
  ResNet,
  SmallCNN,
  make_encoder,
  make_resnet,
  resnet18,
  resnet34,
  resnet50,
)

# Two stages of one basic block each: an identity block and a projection block.
TINY_RESNET = ResNet(stage_sizes=(1, 1), block="basic", width=4, cifar_stem=True)
TINY_CNN = SmallCNN(widths=(4, 8))
TINY_HEAD = MLPHead(hidden_dims=(16,), out_dim=8, last_bn=True)
# name -> (model, input shape); batch 16 = 2 examples per simulated device.
TINY = {"resnet": (TINY_RESNET, (16, 8, 8, 3)), "cnn": (TINY_CNN, (16, 8, 8, 1)),
        "head": (TINY_HEAD, (16, 12))}


def _normal(shape: tuple[int, ...], seed: int = 1) -> jax.Array:
  """Test inputs from NumPy: XLA:CPU needs ~10 s to compile a rank-4 jax.random.normal."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _inputs(shape: tuple[int, ...]) -> jax.Array:
  """Normal inputs whose 2-example shards differ in mean, so per-shard BN stats would differ."""
  offsets = np.repeat(np.arange(shape[0] // 2, dtype=np.float32), 2)
  return _normal(shape) + offsets.reshape((-1,) + (1,) * (len(shape) - 1))


@pytest.fixture(scope="module")
def jitted():
  """Per tiny model: jitted init(rng), train apply and eval apply (compiled once, reused)."""
  fns = {}
  for name, (model, shape) in TINY.items():
    fns[name] = (
      jax.jit(lambda rng, model=model, shape=shape: model.init(rng, jnp.zeros(shape), train=False)),
      jax.jit(partial(model.apply, train=True, mutable=["batch_stats"])),
      jax.jit(partial(model.apply, train=False)),
    )
  return fns


@pytest.fixture(scope="module")
def tiny_vars(jitted):
  """Initial variables of each tiny model (rng 0)."""
  return {name: fns[0](jax.random.key(0)) for name, fns in jitted.items()}


@functools.cache  # linen modules hash by value, so tests share traces of equal models
def _abstract_init(model: nn.Module, shape: tuple[int, ...]) -> dict:
  """Shapes and dtypes of model.init's variables, traced without computing anything."""
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def _num_params(variables: dict) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("model, shape, expected", [
  (resnet18(width=4, cifar_stem=True), (2, 16, 16, 3), (2, 32)),
  (make_resnet(50, width=2, cifar_stem=True), (2, 8, 8, 1), (2, 64)),
  (SmallCNN(), (2, 28, 28, 1), (2, 256)),
  (SmallCNN(widths=(8, 16), convs_per_stage=3), (2, 28, 28, 1), (2, 16)),
  (MLPHead(hidden_dims=(2048,), out_dim=128), (2, 512), (2, 128)),
  (MLPHead(hidden_dims=(), out_dim=8, use_bn=False), (2, 16), (2, 8)),
])
def test_output_shapes(model, shape, expected):
  variables = _abstract_init(model, shape)
  out = jax.eval_shape(partial(model.apply, train=False), variables, jnp.zeros(shape))
  assert out.shape == expected
  if not isinstance(model, MLPHead):
    assert model.num_features == expected[1]


@pytest.mark.parametrize("model, size, spatial", [
  (resnet50(), 224, (56, 28, 14, 7)),  # ImageNet stem: /4 before stage 1
  (resnet18(cifar_stem=True), 32, (32, 16, 8, 4)),  # CIFAR stem keeps the resolution
])
def test_resnet_stage_resolutions(model, size, spatial):
  shape = (1, size, size, 3)
  variables = _abstract_init(model, shape)
  _, state = jax.eval_shape(
    partial(model.apply, train=False, capture_intermediates=True, mutable=["intermediates"]),
    variables, jnp.zeros(shape))
  expansion = 4 if model.block == "bottleneck" else 1
  for i, (size_i, n) in enumerate(zip(spatial, model.stage_sizes, strict=True), start=1):
    out = state["intermediates"][f"stage{i}_block{n - 1}"]["__call__"][0]
    assert out.shape == (1, size_i, size_i, 64 * 2 ** (i - 1) * expansion)


@pytest.mark.parametrize("model, shape, expected", [
  # torchvision totals minus the 1000-way fc; CIFAR stem = 3x3x3x64 instead of 7x7x3x64 conv.
  (resnet18(cifar_stem=True), (1, 32, 32, 3), 11_168_832),
  (resnet34(), (1, 224, 224, 3), 21_284_672),
  (resnet50(), (1, 224, 224, 3), 23_508_032),
])
def test_parameter_counts(model, shape, expected):
  assert _num_params(_abstract_init(model, shape)) == expected


def test_parameter_names():
  params = _abstract_init(resnet18(width=4, cifar_stem=True), (2, 16, 16, 3))["params"]
  assert set(params) == {"stem_conv", "stem_bn"} | {
    f"stage{i}_block{j}" for i in range(1, 5) for j in range(2)}
  assert set(params["stage1_block0"]) == {"conv1", "bn1", "conv2", "bn2"}
  assert set(params["stage2_block0"]) == {"conv1", "bn1", "conv2", "bn2", "shortcut_conv",
                                          "shortcut_bn"}
  assert set(params["stem_conv"]) == {"kernel"}  # convs have no bias
  params = _abstract_init(make_resnet(50, width=2, cifar_stem=True), (2, 8, 8, 1))["params"]
  assert set(params["stage1_block0"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3",
                                          "shortcut_conv", "shortcut_bn"}  # 2 -> 8 channels
  assert set(params["stage1_block1"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"}
  params = _abstract_init(SmallCNN(widths=(4, 8), convs_per_stage=2), (1, 8, 8, 1))["params"]
  assert set(params) == {f"stage{s}_{kind}{c}" for s in (1, 2) for kind in ("conv", "bn")
                         for c in (0, 1)}
  params = _abstract_init(MLPHead(hidden_dims=(8, 8), out_dim=4, last_bn=True), (1, 4))["params"]
  assert set(params) == {"hidden0_dense", "hidden0_bn", "hidden1_dense", "hidden1_bn",
                         "output_dense"}  # output_bn has no affine parameters
  assert set(params["hidden0_dense"]) == {"kernel"}  # no bias in front of a BN
  assert set(params["output_dense"]) == {"kernel"}


def test_conv_init_is_he_normal_fan_out(tiny_vars):
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tiny_vars["resnet"])
             if path[-1].key == "kernel"]
  assert len(kernels) == 6
  # Each kernel divided by its target std sqrt(2 / (kh * kw * out)) should be standard normal.
  z = np.concatenate([np.ravel(k) / np.sqrt(2 / (k.shape[0] * k.shape[1] * k.shape[3]))
                      for k in kernels])
  assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1


def test_invalid_block_and_depth():
  with pytest.raises(ValueError, match="bottleneck"):
    ResNet(stage_sizes=(1,), block="wide")
  with pytest.raises(ValueError, match="18, 34, 50"):
    make_resnet(101)


@pytest.mark.parametrize("name", list(TINY))
def test_train_updates_batch_stats_eval_does_not(name, jitted, tiny_vars):
  _, train_apply, eval_apply = jitted[name]
  variables, x = tiny_vars[name], _inputs(TINY[name][1])
  _, state = train_apply(variables, x)
  changed = jax.tree.map(lambda new, old: not np.allclose(new, old),
                         state["batch_stats"], variables["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # Eval mode reads the running averages: applying with batch_stats immutable must not raise, and
  # each example's output does not depend on the rest of the batch.
  out = eval_apply(variables, x)
  np.testing.assert_allclose(out[:4], eval_apply(variables, x[:4]), atol=1e-5)


def test_zero_init_residual_basic_block_starts_as_shortcut(tiny_vars):
  """At init the residual branch outputs 0, so a block computes relu(shortcut(x))."""
  x = _normal((2, 8, 8, 4), seed=2)
  block_vars = lambda name: {c: v[name] for c, v in tiny_vars["resnet"].items()}  # noqa: E731
  identity = BasicBlock(features=4)
  out = jax.jit(partial(identity.apply, train=False))(block_vars("stage1_block0"), x)
  np.testing.assert_allclose(out, nn.relu(x), atol=1e-6)
  # Also in train mode, where BN normalises with the batch statistics.
  out, _ = jax.jit(partial(identity.apply, train=True, mutable=["batch_stats"]))(
    block_vars("stage1_block0"), x)
  np.testing.assert_allclose(out, nn.relu(x), atol=1e-6)
  # Projection: 1x1 stride-2 conv, then BN at its init running stats (mean 0, var 1).
  v = block_vars("stage2_block0")
  out = jax.jit(partial(BasicBlock(features=8, strides=2).apply, train=False))(v, x)
  kernel, bn = v["params"]["shortcut_conv"]["kernel"][0, 0], v["params"]["shortcut_bn"]
  shortcut = x[:, ::2, ::2] @ kernel / np.sqrt(1 + 1e-5) * bn["scale"] + bn["bias"]
  np.testing.assert_allclose(out, nn.relu(shortcut), atol=1e-5)


def test_zero_init_residual_bottleneck():
  x = _normal((2, 4, 4, 8), seed=3)  # 8 = 4 * 2 channels: identity shortcut
  zero, plain = BottleneckBlock(features=2), BottleneckBlock(features=2, zero_init_residual=False)
  # One jit for both: the identical conv draws are compiled once.
  zero_vars, plain_vars = jax.jit(lambda rng: (zero.init(rng, x, train=False),
                                               plain.init(rng, x, train=False)))(jax.random.key(0))
  np.testing.assert_array_equal(zero_vars["params"]["bn3"]["scale"], 0.0)
  np.testing.assert_array_equal(plain_vars["params"]["bn3"]["scale"], 1.0)
  outs = jax.jit(lambda v0, v1: (zero.apply(v0, x, train=False), plain.apply(v1, x, train=False)))(
    zero_vars, plain_vars)
  np.testing.assert_allclose(outs[0], nn.relu(x), atol=1e-6)
  assert not np.allclose(outs[1], nn.relu(x), atol=1e-3)  # without zero init the branch counts


@pytest.mark.parametrize("model, shape", [
  (TINY_RESNET, (2, 8, 8, 3)), (TINY_CNN, (2, 8, 8, 1)), (TINY_HEAD, (2, 12))])
def test_bfloat16_activations_float32_params(model, shape):
  model = model.clone(dtype=jnp.bfloat16)
  variables = _abstract_init(model, shape)
  out, state = jax.eval_shape(
    partial(model.apply, train=True, capture_intermediates=True,
            mutable=["batch_stats", "intermediates"]), variables, jnp.zeros(shape))
  assert out.dtype == jnp.bfloat16
  assert {a.dtype for a in jax.tree.leaves(state["intermediates"])} == {jnp.dtype(jnp.bfloat16)}
  assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  assert {a.dtype for a in jax.tree.leaves(state["batch_stats"])} == {jnp.dtype(jnp.float32)}


def test_bfloat16_output_close_to_float32(jitted, tiny_vars):
  variables, x = tiny_vars["resnet"], _inputs(TINY["resnet"][1])
  ref = jitted["resnet"][2](variables, x)
  out = jax.jit(partial(TINY_RESNET.clone(dtype=jnp.bfloat16).apply, train=False))(variables, x)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=0.05 * float(jnp.abs(ref).max()))


@pytest.mark.parametrize("name", ["resnet", "head"])  # conv (4-D) and dense (2-D) BatchNorm
def test_batchnorm_uses_global_batch_when_sharded(name, jitted, tiny_vars):
  """jit over a batch sharded on 8 devices gives the single-device (global-batch) result."""
  _, train_apply, _ = jitted[name]
  variables, x = tiny_vars[name], _inputs(TINY[name][1])
  ref_out, ref_state = train_apply(variables, jax.device_put(x, jax.devices()[0]))

  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  data_sharding = NamedSharding(mesh, P("data"))
  out, state = train_apply(jax.device_put(variables, NamedSharding(mesh, P())),
                           jax.device_put(x, data_sharding))
  assert out.sharding.device_set == set(mesh.devices.flat)
  assert not out.sharding.is_fully_replicated  # really computed per shard
  np.testing.assert_allclose(out, ref_out, atol=1e-5)
  jax.tree.map(partial(np.testing.assert_allclose, atol=1e-5), state, ref_state)
  # Control: one shard's own statistics differ, so the comparison above would catch local BN.
  _, local_state = train_apply(variables, x[:2])
  assert not all(jax.tree.leaves(jax.tree.map(partial(np.allclose, atol=1e-3), local_state,
                                              ref_state)))


def test_determinism(jitted, tiny_vars):
  init, train_apply, _ = jitted["resnet"]
  again = init(jax.random.key(0))
  jax.tree.map(np.testing.assert_array_equal, again, tiny_vars["resnet"])
  other = init(jax.random.key(1))
  kernel = lambda v: v["params"]["stem_conv"]["kernel"]  # noqa: E731
  assert not np.allclose(kernel(other), kernel(again))
  x = _inputs(TINY["resnet"][1])
  jax.tree.map(np.testing.assert_array_equal, train_apply(again, x),
               train_apply(tiny_vars["resnet"], x))


def test_head_last_bn_standardises_output(jitted, tiny_vars):
  out, _ = jitted["head"][1](tiny_vars["head"], _inputs(TINY["head"][1]))
  np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.var(0), 1.0, atol=1e-2)  # eps=1e-5 in the denominator


def test_make_encoder():
  model = make_encoder({"name": "resnet18", "width": 8, "cifar_stem": True, "dtype": "bfloat16"})
  assert isinstance(model, ResNet)
  assert (model.stage_sizes, model.block, model.width, model.cifar_stem, model.dtype) == (
    (2, 2, 2, 2), "basic", 8, True, jnp.bfloat16)
  assert model.num_features == 64
  model = make_encoder(ml_collections.ConfigDict({"name": "resnet50", "widths": [1, 2]}))
  assert (model.stage_sizes, model.block, model.width, model.cifar_stem, model.dtype) == (
    (3, 4, 6, 3), "bottleneck", 64, False, jnp.float32)
  assert make_encoder({"name": "resnet34"}).stage_sizes == (3, 4, 6, 3)
  model = make_encoder(ml_collections.ConfigDict(
    {"name": "small_cnn", "widths": [8, 16], "convs_per_stage": 2, "width": 4}))
  assert isinstance(model, SmallCNN)
  assert (model.widths, model.convs_per_stage, model.num_features) == ((8, 16), 2, 16)
  assert make_encoder({"name": "small_cnn"}).widths == (32, 64, 128, 256)
  with pytest.raises(ValueError, match=", ".join(ENCODER_NAMES)):
    make_encoder({"name": "vit_b16"})
  with pytest.raises(ValueError, match="valid dtypes: float32, bfloat16"):
    make_encoder({"name": "resnet18", "dtype": "float16"})
