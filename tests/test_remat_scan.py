"""Rematerialisation and scanned layers (sslax/models/stack.py) in the ViT and the text Transformer.

Every policy and both layouts are the same function: the outputs and gradients of a scanned model
given the unscanned model's parameters stacked equal the unscanned ones, under every remat
policy. Remat changes what XLA keeps: compiled temporary memory and recomputed FLOPs. The layout's
readers follow: sharding rules shard the trailing dimensions of stacked parameters, MAE encodes a
subset of tokens through scanned blocks, layer-wise lr decay refuses scanned blocks.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from method_harness import REPO

from sslax import config as config_lib
from sslax import parallel
from sslax.evals.finetune import layer_scales
from sslax.methods import get_method
from sslax.methods.mlm import text_encoder
from sslax.models import make_encoder
from sslax.models.stack import stack_block_params, unstack_block_params
from sslax.models.transformer import TextTransformer
from sslax.models.vit import VisionTransformer

VIT = dict(patch_size=4, hidden_dim=16, depth=2, num_heads=4, mlp_dim=32)
TEXT = dict(vocab_size=40, hidden_dim=16, depth=2, num_heads=2, mlp_dim=32, max_len=8)
POLICIES = ("none", "full", "dots_saveable")
# The ViT recipes' tensor-parallel rules: heads and MLP units over `tensor`.
TP_RULES = tuple(config_lib.load_config(f"{REPO}/configs/mae_imagenet.py").sharding_rules)


def _images(shape=(8, 8, 12, 3)) -> jax.Array:
  return jnp.asarray(np.random.default_rng(1).standard_normal(shape, dtype=np.float32))


def _tokens() -> tuple[jax.Array, jax.Array]:
  """input_ids [4, 8] and an attention mask with padding in two rows."""
  ids = jnp.asarray(np.random.default_rng(2).integers(0, 40, (4, 8)), jnp.int32)
  mask = jnp.ones((4, 8), jnp.int32).at[0, 5:].set(0).at[2, 3:].set(0)
  return ids, mask


def _random_params(abstract):
  """Random numpy values for abstract parameters: any values define the function, and XLA:CPU
  compiles the models' random initialisers slowly."""
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda a: (0.3 * rng.standard_normal(a.shape)).astype(np.float32), abstract)


@functools.cache
def _vit_params():
  """Parameters of the unscanned tiny ViT."""
  model = VisionTransformer(**VIT)
  return _random_params(jax.eval_shape(
      lambda: model.init(jax.random.key(0), _images(), train=False))["params"])


@functools.cache
def _vit_run(remat: str, scan_layers: bool):
  """The tiny ViT's CLS output and gradients (unscanned layout), and its compiled gradient's
  temporary bytes and FLOPs (XLA's estimates)."""
  model = VisionTransformer(**VIT, remat=remat, scan_layers=scan_layers)
  params = _vit_params()
  if scan_layers:
    params = stack_block_params(params)

  def run(p):
    def loss(p):
      out = model.apply({"params": p}, _images(), train=True)
      return jnp.sum(jnp.sin(out)), out
    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(p)
    return out, grads

  compiled = jax.jit(run).lower(params).compile()
  out, grads = jax.device_get(compiled(params))
  return (out, unstack_block_params(grads) if scan_layers else grads,
          compiled.memory_analysis().temp_size_in_bytes, compiled.cost_analysis()["flops"])


def _assert_trees_close(actual, expected):
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6),
               actual, expected)


@pytest.mark.parametrize(("remat", "scan_layers"), [
    ("full", False), ("none", True), ("full", True), ("dots_saveable", True)])
def test_vit_policies_and_layouts_are_one_function(remat, scan_layers):
  """Same outputs and gradients as the plain unscanned ViT (scanned: its params stacked)."""
  out, grads, _, _ = _vit_run("none", False)
  _assert_trees_close(_vit_run(remat, scan_layers)[:2], (out, grads))
  assert np.all(np.isfinite(out)) and np.any(grads["block1"]["mlp"]["fc1"]["kernel"])


def test_remat_lowers_compiled_memory_and_recomputes():
  """Scanned: full keeps least, dots_saveable (the matmul outputs) more, none most. Unscanned,
  XLA:CPU's temporaries stay those of none (see sslax/models/stack.py), but the recomputed
  forward pass shows in the FLOPs."""
  temp = {r: _vit_run(r, True)[2] for r in POLICIES}
  assert temp["full"] < temp["dots_saveable"] < temp["none"]
  assert _vit_run("full", False)[3] > 1.1 * _vit_run("none", False)[3]


@pytest.mark.slow
def test_text_policies_and_layouts_are_one_function():
  """Remat recomputes dropout with the same masks (train=True, one rng); scan with the stacked
  params is the unscanned function (train=False: scan draws each layer's masks differently)."""
  ids, mask = _tokens()
  base = TextTransformer(**TEXT, dropout_rate=0.2)
  params = _random_params(jax.eval_shape(
      lambda: base.init(jax.random.key(0), ids, mask, train=False))["params"])

  def grads(remat, scan_layers, train):
    model = TextTransformer(**TEXT, dropout_rate=0.2, remat=remat, scan_layers=scan_layers)
    p = stack_block_params(params) if scan_layers else params

    def loss(p):
      hidden = model.apply({"params": p}, ids, mask, train=train,
                           rngs={"dropout": jax.random.key(3, impl="rbg")})
      return jnp.sum(jnp.where(mask[..., None] > 0, jnp.sin(hidden), 0.0))
    g = jax.device_get(jax.jit(jax.value_and_grad(loss))(p))
    return (g[0], unstack_block_params(g[1])) if scan_layers else g

  _assert_trees_close(grads("dots_saveable", True, True), grads("none", True, True))
  _assert_trees_close(grads("full", True, False), grads("none", False, False))


def test_scanned_parameter_layout_and_config_plumbing():
  model = make_encoder({"name": "vit_tiny", "patch_size": 4, "hidden_dim": 16, "depth": 3,
                        "num_heads": 4, "remat": "dots_saveable", "scan_layers": True})
  assert (model.remat, model.scan_layers) == ("dots_saveable", True)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), _images(), train=False))["params"]
  assert not any(k.startswith("block") and k != "blocks" for k in params)
  blocks = params["blocks"]
  assert blocks["attn"]["query"]["kernel"].shape == (3, 16, 4, 4)
  assert blocks["attn"]["out"]["kernel"].shape == (3, 4, 4, 16)
  assert blocks["mlp"]["fc1"]["kernel"].shape == (3, 16, 64)
  assert blocks["norm1"]["scale"].shape == (3, 16)
  assert "bias" not in blocks["attn"]["key"]
  assert make_encoder({"name": "vit_tiny"}).remat == "none"
  assert not make_encoder({"name": "vit_tiny"}).scan_layers

  config = ml_collections.ConfigDict({
      "data": {"vocab_size": 40, "seq_len": 8},
      "model": {"text": dict(hidden_dim=16, depth=2, num_heads=2, remat="full",
                             scan_layers=True)}})
  text = text_encoder(config, causal=True, num_segments=0)
  assert (text.remat, text.scan_layers) == ("full", True)
  ids, mask = _tokens()
  text_params = jax.eval_shape(lambda: text.init(jax.random.key(0), ids, mask, train=False))
  assert text_params["params"]["blocks"]["mlp"]["fc2"]["kernel"].shape == (2, 64, 16)
  assert set(jax.eval_shape(unstack_block_params, text_params["params"])) == {
      "token_embed", "pos_embed", "block0", "block1", "norm"}

  with pytest.raises(ValueError, match="remat='some'; use one of none, full, dots_saveable"):
    jax.eval_shape(lambda: VisionTransformer(**VIT, remat="some").init(
        jax.random.key(0), _images(), train=False))
  with pytest.raises(ValueError, match="no block"):
    stack_block_params({"norm": {}})


def test_sharding_rules_apply_to_the_trailing_dims_of_stacked_params():
  """One rule set for both layouts: the layer axis stays whole, and a tensor-parallel scanned
  ViT over 8 devices computes what it computes on one."""
  params = stack_block_params(_vit_params())
  mesh = parallel.make_mesh({"data": 2, "tensor": 4})
  shardings = parallel.param_shardings(params, mesh, TP_RULES)
  specs = {parallel.path_name(path): s.spec
           for path, s in jax.tree_util.tree_leaves_with_path(shardings)}
  assert specs["blocks/attn/query/kernel"] == P(None, None, "tensor", None)
  assert specs["blocks/attn/out/kernel"] == P(None, "tensor", None, None)
  assert specs["blocks/mlp/fc1/bias"] == P(None, "tensor")
  assert specs["blocks/norm1/scale"] == P(None)
  assert specs["patch_embed/kernel"] == P()
  fsdp = parallel.param_shardings(params, parallel.make_mesh({"fsdp": 8}), ((".*", "fsdp"),))
  # [2, 16, 32]: the largest trailing dimension that 8 divides, never the layer axis.
  assert fsdp["blocks"]["mlp"]["fc1"]["kernel"].spec == P(None, None, "fsdp")
  with pytest.raises(ValueError, match="has 2 entries for an array of shape"):
    parallel.param_shardings(_vit_params(), mesh, (("attn/query/kernel", (None, "tensor")),))

  model = VisionTransformer(**VIT, scan_layers=True)
  sharded = jax.device_put(params, shardings)
  assert sharded["blocks"]["mlp"]["fc1"]["kernel"].addressable_shards[0].data.shape == (2, 16, 8)
  fn = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False),
               in_shardings=(shardings, parallel.batch_sharding(mesh)),
               out_shardings=parallel.replicated(mesh))
  np.testing.assert_allclose(fn(sharded, _images()), _vit_run("none", False)[0],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_mae_reconstructs_the_same_with_a_scanned_encoder():
  """MAE encodes the visible quarter of the tokens through the blocks (`encode`)."""
  images = _images((4, 28, 28, 1))
  outputs = []
  for scan_layers in (False, True):
    config = config_lib.load_config(f"{REPO}/configs/mae_mnist.py:tiny")
    config.model.encoder.update(depth=2, hidden_dim=32, scan_layers=scan_layers,
                                remat="full" if scan_layers else "none")
    method = get_method(config)
    if not outputs:
      params = _random_params(jax.eval_shape(method.init, jax.random.key(0),
                                             {"views": (images,)})[0])
    else:
      params = {**params, "encoder": stack_block_params(params["encoder"])}
    outputs.append(jax.jit(method.reconstruct)(params, images, jax.random.key(4)))
  _assert_trees_close(outputs[1], outputs[0])


def test_layer_decay_refuses_scanned_blocks():
  scanned = {"encoder": stack_block_params(_vit_params())}
  with pytest.raises(ValueError, match="blocks are scanned.*layer_decay=1"):
    layer_scales(scanned, 0.75)
  assert set(jax.tree.leaves(layer_scales(scanned, 1.0))) == {1.0}
  scales = layer_scales({"encoder": _vit_params()}, 0.5)
  assert scales["encoder"]["block1"]["mlp"]["fc1"]["kernel"] == 0.5


@pytest.mark.parametrize("name", ["mae_imagenet", "gpt_small"])
def test_paper_configs_build_scanned_and_rematerialised(name):
  """Their command-line overrides give scanned state shapes that their sharding rules fit."""
  section = "encoder" if name == "mae_imagenet" else "text"
  config = config_lib.load_config(f"{REPO}/configs/{name}.py", **{
      f"model.{section}.scan_layers": True, f"model.{section}.remat": "dots_saveable"})
  method = get_method(config)
  if name == "mae_imagenet":
    batch = {"views": (jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32),)}
  else:
    batch = {"input_ids": jax.ShapeDtypeStruct((2, config.data.seq_len), jnp.int32)}
  params = jax.eval_shape(method.init, jax.random.key(0), batch)[0]
  tower = params["encoder" if name == "mae_imagenet" else "decoder"]
  assert tower["blocks"]["attn"]["query"]["kernel"].shape == (12, 768, 12, 64)
  mesh = parallel.make_mesh({"data": 2, "tensor": 4})
  shardings = parallel.param_shardings(params, mesh, config.sharding_rules)
  spec = shardings["encoder" if name == "mae_imagenet" else "decoder"]["blocks"]["mlp"]["fc1"]
  assert spec["kernel"].spec == P(None, None, "tensor")
