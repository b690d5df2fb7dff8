"""Tests for sslax.models.vit: shapes, position tables, parameter layout, sharding, freezing, dtype.

Numerics run on a tiny ViT (16 wide, 2 blocks of 4 heads, 4x4 patches on 8x12 images: a 2x3 grid)
whose init is jitted once per module, because XLA:CPU compiles random initialisers slowly.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from sslax import parallel
from sslax.models import ENCODER_NAMES, VisionTransformer, make_encoder
from sslax.models.vit import PatchEmbed, patchify, resize_pos_embed, sincos_pos_embed

TINY = dict(patch_size=4, hidden_dim=16, depth=2, num_heads=4, mlp_dim=32)
SHAPE = (16, 8, 12, 3)  # 2 examples per simulated device; a non-square 2x3 patch grid.
# Tensor parallelism over heads and MLP units, as a config's sharding_rules would declare it.
TP_RULES = (
  ("attn/(query|key|value)/kernel", (None, "tensor", None)),
  ("attn/(query|key|value)/bias", ("tensor", None)),
  ("attn/out/kernel", ("tensor", None, None)),
  ("mlp/fc1/kernel", (None, "tensor")),
  ("mlp/fc1/bias", ("tensor",)),
  ("mlp/fc2/kernel", ("tensor", None)),
)


def _images(shape=SHAPE, seed=1) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


@pytest.fixture(scope="module")
def learned():
  """(model, params) of the tiny ViT with learned position embeddings and CLS pooling."""
  model = VisionTransformer(**TINY)
  params = jax.jit(lambda: model.init(jax.random.key(0), _images(), train=False))()["params"]
  return model, params


def test_output_shapes():
  for pool, size in (("cls", (8, 8)), ("mean", (8, 12))):
    model = VisionTransformer(**TINY, pool=pool, pos_embed="sincos")
    x = jnp.zeros((2, *size, 1))
    variables = jax.eval_shape(lambda m=model, x=x: m.init(jax.random.key(0), x, train=False))
    assert jax.eval_shape(lambda v, m=model, x=x: m.apply(v, x, train=True),
                          variables).shape == (2, 16)
    tokens = jax.eval_shape(lambda v, m=model, x=x: m.apply(v, x, method="embed"), variables)
    assert tokens.shape == (2, (size[0] // 4) * (size[1] // 4), 16)
    subset = jnp.zeros((2, 3, 16))
    encoded = jax.eval_shape(lambda v, m=model, t=subset: m.apply(v, t, False, method="encode"),
                             variables)
    assert encoded.shape == (2, 4, 16)
  assert VisionTransformer(**TINY).num_features == 16
  with pytest.raises(ValueError, match="not divisible by patch_size=4"):
    jax.eval_shape(lambda: VisionTransformer(**TINY).init(
        jax.random.key(0), jnp.zeros((1, 8, 10, 1)), train=False))


@jax.jit
def _pooled_and_encoded(params, x):
  """(CLS-pooled, mean-pooled, encoded tokens) of the tiny learned-position ViT."""
  v = {"params": params}
  model = VisionTransformer(**TINY)
  encoded = model.apply(v, model.apply(v, x, method="embed"), False, method="encode")
  return (model.apply(v, x, train=False),
          VisionTransformer(**TINY, pool="mean").apply(v, x, train=False), encoded)


def test_pooling_reads_the_encoded_tokens(learned):
  _, params = learned
  cls, mean, encoded = _pooled_and_encoded(params, _images())
  np.testing.assert_allclose(cls, encoded[:, 0], rtol=1e-6)
  np.testing.assert_allclose(mean, jnp.mean(encoded[:, 1:], axis=1), rtol=1e-5, atol=1e-6)


def test_sincos_table_matches_direct_formula():
  grid_h, grid_w, dim = 3, 5, 8
  table = sincos_pos_embed(grid_h, grid_w, dim)
  quarter = dim // 4
  for i in range(grid_h):
    for j in range(grid_w):
      expected = []
      for pos in (i, j):
        freqs = [10000 ** (-k / quarter) for k in range(quarter)]
        expected += [math.sin(pos * f) for f in freqs] + [math.cos(pos * f) for f in freqs]
      np.testing.assert_allclose(table[i * grid_w + j], expected, rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="divisible by 4"):
    sincos_pos_embed(2, 2, 6)


def test_sincos_embed_adds_the_fixed_table(learned):
  _, params = learned
  model = VisionTransformer(**TINY, pos_embed="sincos")
  variables = {"params": {k: v for k, v in params.items() if k != "pos_embed"}}
  x = _images()
  patches = PatchEmbed(4, 16).apply({"params": params["patch_embed"]}, x)
  np.testing.assert_allclose(model.apply(variables, x, method="embed") - patches,
                             np.broadcast_to(sincos_pos_embed(2, 3, 16), patches.shape),
                             atol=1e-5)


@jax.jit
def _encode(params, tokens):
  return VisionTransformer(**TINY).apply({"params": params}, tokens, False, method="encode")


def test_learned_position_embedding_layout(learned):
  """Slots 1.. of pos_embed go to the patches in `embed`; slot 0 to the CLS token in `encode`."""
  model, params = learned
  x = _images()
  patches = PatchEmbed(4, 16).apply({"params": params["patch_embed"]}, x)
  np.testing.assert_allclose(model.apply({"params": params}, x, method="embed"),
                             patches + params["pos_embed"][:, 1:], rtol=1e-6)
  tokens = _images((2, 3, 16))
  shifted = {**params, "pos_embed": params["pos_embed"].at[0, 0].add(1.0)}
  same_cls = {**params, "cls_token": params["cls_token"] + 1.0,
              "pos_embed": params["pos_embed"].at[0, 0].add(-1.0)}
  out = _encode(params, tokens)
  assert not np.allclose(_encode(shifted, tokens), out)
  np.testing.assert_allclose(_encode(same_cls, tokens), out, atol=1e-4)


def test_learned_table_is_resized_for_other_view_sizes():
  """Init on 16x16 images (a 4x4 grid); 8x8 local crops get the table resized to 2x2 (DINO)."""
  model = VisionTransformer(**TINY)
  params = jax.jit(lambda: model.init(jax.random.key(0), _images((2, 16, 16, 3)),
                                      train=False))()["params"]
  assert params["pos_embed"].shape == (1, 17, 16)
  small = _images((2, 8, 8, 3))
  patches = PatchEmbed(4, 16).apply({"params": params["patch_embed"]}, small)
  table = jax.image.resize(params["pos_embed"][0, 1:].reshape(4, 4, 16), (2, 2, 16), "bicubic")
  np.testing.assert_allclose(model.apply({"params": params}, small, method="embed"),
                             patches + table.reshape(4, 16), rtol=1e-5, atol=1e-6)
  assert model.apply({"params": params}, small, train=False).shape == (2, 16)
  # A position-independent table stays one: resizing invents no position signal.
  constant = jnp.broadcast_to(jnp.arange(16.0), (16, 16))
  np.testing.assert_allclose(resize_pos_embed(constant, 2, 3), np.broadcast_to(np.arange(16.0),
                                                                               (6, 16)), rtol=1e-5)


def test_a_non_square_learned_table_cannot_be_resized(learned):
  model, params = learned  # Initialised on a 2x3 grid.
  with pytest.raises(ValueError, match="not a square grid"):
    model.apply({"params": params}, _images((2, 8, 8, 3)), train=False)


def test_patch_embed_is_a_strided_conv():
  """patchify + matmul computes a p x p, stride-p conv with the same [p, p, C, D] kernel."""
  x = _images((2, 8, 12, 3))
  module = PatchEmbed(4, 5)
  params = module.init(jax.random.key(0), x)["params"]
  conv = jax.lax.conv_general_dilated(x, params["kernel"], (4, 4), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(module.apply({"params": params}, x),
                             conv.reshape(2, 6, 5) + params["bias"], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(patchify(x, 4)[:, 4], x[:, 4:8, 4:8].reshape(2, -1))


def test_parameter_paths_and_shapes(learned):
  _, params = learned
  shapes = {parallel.path_name(path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  expected = {"patch_embed/kernel": (4, 4, 3, 16), "patch_embed/bias": (16,),
              "cls_token": (1, 1, 16), "pos_embed": (1, 7, 16),
              "norm/scale": (16,), "norm/bias": (16,)}
  for i in range(2):
    b = f"block{i}"
    expected.update({f"{b}/norm1/scale": (16,), f"{b}/norm1/bias": (16,),
                     f"{b}/norm2/scale": (16,), f"{b}/norm2/bias": (16,),
                     f"{b}/attn/out/kernel": (4, 4, 16), f"{b}/attn/out/bias": (16,),
                     f"{b}/mlp/fc1/kernel": (16, 32), f"{b}/mlp/fc1/bias": (32,),
                     f"{b}/mlp/fc2/kernel": (32, 16), f"{b}/mlp/fc2/bias": (16,)})
    for name in ("query", "key", "value"):
      expected[f"{b}/attn/{name}/kernel"] = (16, 4, 4)
    expected.update({f"{b}/attn/query/bias": (4, 4), f"{b}/attn/value/bias": (4, 4)})
  assert shapes == expected
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


def test_sincos_model_has_no_position_parameter():
  model = VisionTransformer(**TINY, pos_embed="sincos")
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), _images(), train=False))["params"]
  assert "pos_embed" not in params and "cls_token" in params


def test_tensor_parallel_param_shardings(learned):
  _, params = learned
  mesh = parallel.make_mesh({"data": 2, "tensor": 4})
  shardings = parallel.param_shardings(params, mesh, TP_RULES)
  specs = {parallel.path_name(path): s.spec
           for path, s in jax.tree_util.tree_leaves_with_path(shardings)}
  for i in range(2):
    for name in ("query", "key", "value"):
      assert specs[f"block{i}/attn/{name}/kernel"] == P(None, "tensor", None)
    for name in ("query", "value"):
      assert specs[f"block{i}/attn/{name}/bias"] == P("tensor", None)
    assert specs[f"block{i}/attn/out/kernel"] == P("tensor", None, None)
    assert specs[f"block{i}/mlp/fc1/kernel"] == P(None, "tensor")
    assert specs[f"block{i}/mlp/fc1/bias"] == P("tensor")
    assert specs[f"block{i}/mlp/fc2/kernel"] == P("tensor", None)
    for name in ("attn/out/bias", "mlp/fc2/bias", "norm1/scale", "norm2/bias"):
      assert specs[f"block{i}/{name}"] == P()
  for name in ("patch_embed/kernel", "cls_token", "pos_embed", "norm/scale"):
    assert specs[name] == P()


def test_tensor_parallel_forward_matches_one_device(learned):
  model, params = learned
  x = _images()
  expected = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False))(params, x)
  mesh = parallel.make_mesh({"data": 2, "tensor": 4})
  shardings = parallel.param_shardings(params, mesh, TP_RULES)
  sharded = jax.device_put(params, shardings)
  assert sharded["block0"]["mlp"]["fc1"]["kernel"].addressable_shards[0].data.shape == (16, 8)
  fn = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False),
               in_shardings=(shardings, parallel.batch_sharding(mesh)),
               out_shardings=parallel.replicated(mesh))
  np.testing.assert_allclose(fn(sharded, x), expected, rtol=1e-5, atol=1e-5)


def test_freeze_patch_embed_zeroes_only_its_gradient(learned):
  _, params = learned
  x = _images()

  @jax.jit
  def grads(params):
    def loss(p, frozen):
      model = VisionTransformer(**TINY, freeze_patch_embed=frozen)
      return jnp.sum(model.apply({"params": p}, x, train=True) ** 2)
    return jax.grad(loss)(params, True), jax.grad(loss)(params, False)

  frozen, free = grads(params)
  for path, g in jax.tree_util.tree_leaves_with_path(frozen):
    name = parallel.path_name(path)
    if name.startswith("patch_embed/"):
      assert not np.any(g), name
      assert np.any(free["patch_embed"][name.split("/")[1]]), name
    else:
      assert np.any(g), name


def test_bfloat16_compute_float32_params(learned):
  _, params = learned
  model = VisionTransformer(**TINY, dtype=jnp.bfloat16)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), _images(), train=False))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract))

  @jax.jit
  def outputs(params, x):
    v = {"params": params}
    return (model.apply(v, x, train=False), model.apply(v, x, method="embed"),
            VisionTransformer(**TINY).apply(v, x, train=False))

  out, tokens, reference = outputs(params, _images())
  assert out.dtype == tokens.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), reference, rtol=0.1, atol=0.1)


def test_make_encoder_vit_sizes_and_overrides():
  sizes = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
           "vit_large": (1024, 24, 16)}
  for name, (dim, depth, heads) in sizes.items():
    assert name in ENCODER_NAMES
    model = make_encoder({"name": name})
    assert (model.hidden_dim, model.depth, model.num_heads, model.mlp_dim) == (
        dim, depth, heads, 4 * dim)
    assert (model.patch_size, model.pos_embed, model.pool, model.freeze_patch_embed) == (
        16, "learned", "cls", False)
  model = make_encoder({"name": "vit_small", "patch_size": 7, "hidden_dim": 64, "depth": 3,
                        "num_heads": 2, "pos_embed": "sincos", "pool": "mean",
                        "freeze_patch_embed": True, "dtype": "bfloat16"})
  assert (model.patch_size, model.hidden_dim, model.depth, model.num_heads, model.mlp_dim) == (
      7, 64, 3, 2, 256)
  assert (model.pos_embed, model.pool, model.freeze_patch_embed, model.dtype) == (
      "sincos", "mean", True, jnp.bfloat16)
  assert make_encoder({"name": "vit_base", "mlp_dim": 100}).mlp_dim == 100
  with pytest.raises(ValueError, match="not divisible by num_heads=3"):
    jax.eval_shape(lambda: make_encoder({"name": "vit_tiny", "hidden_dim": 16}).init(
        jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False))
  with pytest.raises(ValueError, match="pos_embed='rope'"):
    jax.eval_shape(lambda: make_encoder({"name": "vit_tiny", "pos_embed": "rope"}).init(
        jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False))

