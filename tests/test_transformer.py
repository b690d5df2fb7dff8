"""Tests for sslax.models.transformer: layout, masks, rotary positions, tying, dropout, sharding.

Everything runs on a tiny model (vocab 64, 32 wide, 2 blocks of 4 heads, 16 tokens). One jitted
init makes the params of a superset configuration (learned positions, two segments, an untied
lm_head) and of both heads; each test takes the part its model has, because XLA:CPU compiles
random initialisers slowly.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from sslax import parallel
from sslax.losses import token_cross_entropy
from sslax.models.attention import apply_rotary
from sslax.models.transformer import TEXT_SIZES, MlmHead, NspHead, TextTransformer

TINY = dict(vocab_size=64, hidden_dim=32, depth=2, num_heads=4, mlp_dim=64, max_len=16)
BATCH, LENGTH = 4, 16
# Tensor parallelism over heads and MLP units, as in tests/test_vit.py.
TP_RULES = (
  ("attn/(query|key|value)/kernel", (None, "tensor", None)),
  ("attn/(query|key|value)/bias", ("tensor", None)),
  ("attn/out/kernel", ("tensor", None, None)),
  ("mlp/fc1/kernel", (None, "tensor")),
  ("mlp/fc1/bias", ("tensor",)),
  ("mlp/fc2/kernel", ("tensor", None)),
)


def _ids(seed=0, high=64) -> jax.Array:
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, high, (BATCH, LENGTH)), jnp.int32)


def _segments() -> jax.Array:
  return jnp.asarray(np.arange(LENGTH) >= LENGTH // 2, jnp.int32)[None].repeat(BATCH, 0)


def _shapes(params) -> dict[str, tuple[int, ...]]:
  return {parallel.path_name(path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def _params_for(model: TextTransformer, encoder: dict) -> dict:
  """The superset's encoder params that `model` has."""
  names = jax.eval_shape(lambda: model.init(jax.random.key(0), _ids(), train=False))["params"]
  return {name: encoder[name] for name in names}


@pytest.fixture(scope="module")
def params():
  """{"encoder", "mlm_head", "nsp_head"}: the encoder's are a superset of every test model's."""
  @jax.jit
  def init():
    keys = jax.random.split(jax.random.key(0), 3)
    model = TextTransformer(**TINY, num_segments=2, tie_embeddings=False)
    encoder = model.init(keys[0], _ids(), None, _segments(), train=False)["params"]
    hidden = jnp.zeros((BATCH, LENGTH, 32))
    mlm = MlmHead().init(keys[1], hidden, encoder["token_embed"]["embedding"])["params"]
    nsp = NspHead().init(keys[2], hidden)["params"]
    return {"encoder": encoder, "mlm_head": mlm, "nsp_head": nsp}
  return init()


def test_parameter_layout_and_output_shapes(params):
  expected = {"token_embed/embedding": (64, 32), "pos_embed": (16, 32),
              "segment_embed/embedding": (2, 32), "norm/scale": (32,), "norm/bias": (32,),
              "lm_head/kernel": (32, 64)}
  for i in range(2):
    b = f"block{i}"
    expected.update({f"{b}/norm1/scale": (32,), f"{b}/norm1/bias": (32,),
                     f"{b}/norm2/scale": (32,), f"{b}/norm2/bias": (32,),
                     f"{b}/attn/query/kernel": (32, 4, 8), f"{b}/attn/query/bias": (4, 8),
                     f"{b}/attn/key/kernel": (32, 4, 8),
                     f"{b}/attn/value/kernel": (32, 4, 8), f"{b}/attn/value/bias": (4, 8),
                     f"{b}/attn/out/kernel": (4, 8, 32), f"{b}/attn/out/bias": (32,),
                     f"{b}/mlp/fc1/kernel": (32, 64), f"{b}/mlp/fc1/bias": (64,),
                     f"{b}/mlp/fc2/kernel": (64, 32), f"{b}/mlp/fc2/bias": (32,)})
  assert _shapes(params["encoder"]) == expected
  assert _shapes(params["mlm_head"]) == {"dense/kernel": (32, 32), "dense/bias": (32,),
                                         "norm/scale": (32,), "norm/bias": (32,), "bias": (64,)}
  assert _shapes(params["nsp_head"]) == {"pooler/kernel": (32, 32), "pooler/bias": (32,),
                                         "classifier/kernel": (32, 2), "classifier/bias": (2,)}
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))

  gpt = TextTransformer(**TINY, causal=True, positions="rotary")
  gpt_params = _params_for(gpt, params["encoder"])
  assert set(gpt_params) == {"token_embed", "block0", "block1", "norm"}  # No pos_embed, lm_head.
  v = {"params": gpt_params}
  hidden = jax.eval_shape(lambda: gpt.apply(v, _ids(), train=False))
  assert hidden.shape == (BATCH, LENGTH, 32) and hidden.dtype == jnp.float32
  logits = jax.eval_shape(lambda h: gpt.apply(v, h, method="lm_logits"), hidden)
  assert logits.shape == (BATCH, LENGTH, 64)
  nsp = jax.eval_shape(lambda h: NspHead().apply({"params": params["nsp_head"]}, h), hidden)
  assert nsp.shape == (BATCH, 2)


def test_invalid_configurations_raise():
  def init(ids=None, segments=None, **overrides):
    model = TextTransformer(**{**TINY, **overrides})
    ids = _ids() if ids is None else ids
    return jax.eval_shape(lambda: model.init(jax.random.key(0), ids, None, segments, train=False))

  with pytest.raises(ValueError, match="positions='alibi'"):
    init(positions="alibi")
  with pytest.raises(ValueError, match="exceeds max_len=16"):
    init(ids=jnp.zeros((1, 17), jnp.int32))
  init(ids=jnp.zeros((1, 17), jnp.int32), positions="rotary")  # Rotary has no length limit.
  with pytest.raises(ValueError, match="num_segments=0"):
    init(segments=_segments())
  with pytest.raises(ValueError, match="not divisible by num_heads=3"):
    init(num_heads=3)
  with pytest.raises(ValueError, match="even head_dim"):
    init(hidden_dim=12, positions="rotary")


def _hidden_and_logits(model, params, ids, mask=None):
  hidden = model.apply({"params": params}, ids, mask, train=False)
  return hidden, model.apply({"params": params}, hidden, method="lm_logits")


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_causal_outputs_ignore_later_tokens(params, positions):
  model = TextTransformer(**TINY, causal=True, positions=positions)
  p = _params_for(model, params["encoder"])
  forward = jax.jit(lambda p, ids: _hidden_and_logits(model, p, ids))
  ids = _ids()
  hidden, logits = forward(p, ids)
  for t in (0, 6, 14):
    changed = ids.at[:, t + 1:].set((ids[:, t + 1:] + 1 + t) % 64)  # Every later token differs.
    new_hidden, new_logits = forward(p, changed)
    np.testing.assert_allclose(new_hidden[:, :t + 1], hidden[:, :t + 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(new_logits[:, :t + 1], logits[:, :t + 1], rtol=0, atol=1e-6)
    assert np.all(np.abs(new_hidden[:, t + 1] - hidden[:, t + 1]).max(axis=-1) > 1e-3)


def test_bidirectional_outputs_see_later_tokens(params):
  model = TextTransformer(**TINY)
  p = _params_for(model, params["encoder"])
  hidden, changed = jax.jit(jax.vmap(lambda ids: model.apply({"params": p}, ids, train=False)))(
      jnp.stack([_ids(), _ids().at[:, 10:].set((_ids()[:, 10:] + 1) % 64)]))
  assert np.all(np.abs(changed[:, :10] - hidden[:, :10]).max(axis=-1) > 1e-4)


def test_padding_tokens_do_not_change_real_outputs(params):
  """Bidirectional BERT with segments: ids at masked positions are invisible to the others."""
  model = TextTransformer(**TINY, num_segments=2)
  p = _params_for(model, params["encoder"])
  lengths = np.array([16, 11, 5, 1])
  real = np.arange(LENGTH)[None] < lengths[:, None]
  mask = jnp.asarray(real, jnp.int32)

  @jax.jit
  def forward(ids, mask):
    return model.apply({"params": p}, ids, mask, _segments(), train=False)

  ids = _ids()
  other = jnp.where(real, ids, (ids + 7) % 64)
  np.testing.assert_allclose(forward(other, mask)[real], forward(ids, mask)[real], rtol=0,
                             atol=1e-6)
  # Not vacuous: without the mask the padding's tokens reach the real positions.
  unmasked = jnp.ones_like(mask)
  assert np.abs(forward(other, unmasked)[real][16:] - forward(ids, unmasked)[real][16:]).min() > 0


def test_rotary_scores_depend_only_on_relative_position():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.standard_normal(8), jnp.float32) for _ in range(2))
  positions = jnp.arange(12)
  rotated_q = apply_rotary(jnp.broadcast_to(q, (1, 12, 1, 8)), positions)[0, :, 0]
  rotated_k = apply_rotary(jnp.broadcast_to(k, (1, 12, 1, 8)), positions)[0, :, 0]
  scores = rotated_q @ rotated_k.T  # [m, n]: q at position m against k at position n.
  np.testing.assert_allclose(scores[1:, 1:], scores[:-1, :-1], rtol=1e-5, atol=1e-5)
  assert len(np.unique(np.round(np.asarray(scores[0]), 4))) == 12  # It does depend on m - n.


def test_rotary_matches_complex_rotation():
  """Pair (x_i, x_{i + d/2}) as x_i + j x_{i + d/2}, multiplied by exp(j pos theta_i)."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 5, 3, 8)).astype(np.float32)
  positions = np.array([0, 1, 2, 7, 100])
  theta = 10000.0 ** (-np.arange(0, 8, 2) / 8)
  z = (x[..., :4] + 1j * x[..., 4:]) * np.exp(1j * positions[:, None, None] * theta)
  expected = np.concatenate([z.real, z.imag], axis=-1)
  np.testing.assert_allclose(apply_rotary(jnp.asarray(x), jnp.asarray(positions)), expected,
                             rtol=1e-5, atol=1e-5)
  assert apply_rotary(jnp.asarray(x, jnp.bfloat16), jnp.asarray(positions)).dtype == jnp.bfloat16


def test_rotary_model_sees_relative_positions_only(params):
  """Left-padding moves the real tokens to later positions: a rotary model's outputs at them are
  unchanged, a learned-position model's change."""
  pad = 6
  ids = _ids()[:, :LENGTH - pad]
  right = jnp.concatenate([ids, jnp.zeros((BATCH, pad), jnp.int32)], axis=1)
  left = jnp.concatenate([jnp.zeros((BATCH, pad), jnp.int32), ids], axis=1)
  right_mask, left_mask = (right * 0).at[:, :LENGTH - pad].set(1), (left * 0).at[:, pad:].set(1)

  def shift_error(positions):
    model = TextTransformer(**TINY, positions=positions)
    v = {"params": _params_for(model, params["encoder"])}
    out = jax.jit(lambda ids, mask: model.apply(v, ids, mask, train=False))
    return np.abs(out(right, right_mask)[:, :LENGTH - pad] - out(left, left_mask)[:, pad:]).max()

  assert shift_error("rotary") < 1e-5
  assert shift_error("learned") > 1e-2


def test_tied_and_untied_output_projections(params):
  """Tied logits are hidden @ embedding.T, so the loss's gradient reaches embedding rows of
  tokens absent from the input; untied ones use lm_head/kernel and leave those rows alone."""
  enc, head = params["encoder"], params["mlm_head"]
  rng = np.random.default_rng(2)
  head = {**head, "bias": jnp.asarray(rng.standard_normal(64), jnp.float32)}
  ids, labels = _ids(high=32), _ids(seed=1)  # Tokens 32.. are never inputs.
  tied = TextTransformer(**TINY, causal=True)
  untied = tied.clone(tie_embeddings=False)

  def lm_loss(p, model):
    return token_cross_entropy(_hidden_and_logits(model, p, ids)[1], labels)[0]

  def mlm_logits(p):
    hidden = tied.apply({"params": p}, ids, train=False)
    return MlmHead().apply({"params": head}, hidden, p["token_embed"]["embedding"])

  @jax.jit
  def outputs(tied_params, untied_params):
    mlm_grad = jax.grad(lambda p: token_cross_entropy(mlm_logits(p), labels)[0])(tied_params)
    return (_hidden_and_logits(tied, tied_params, ids),
            _hidden_and_logits(untied, untied_params, ids), mlm_logits(tied_params),
            jax.grad(lm_loss)(tied_params, tied), jax.grad(lm_loss)(untied_params, untied),
            mlm_grad)

  (hidden, logits), (untied_hidden, untied_logits), mlm, grad, untied_grad, mlm_grad = outputs(
      _params_for(tied, enc), _params_for(untied, enc))
  embedding = enc["token_embed"]["embedding"]
  np.testing.assert_allclose(logits, hidden @ embedding.T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(untied_logits, untied_hidden @ enc["lm_head"]["kernel"], rtol=1e-5,
                             atol=1e-5)
  x = nn.gelu(hidden @ head["dense"]["kernel"] + head["dense"]["bias"], approximate=True)
  x = nn.LayerNorm(epsilon=1e-6).apply({"params": head["norm"]}, x)
  np.testing.assert_allclose(mlm, x @ embedding.T + head["bias"], rtol=1e-5, atol=1e-5)
  for g in (grad, mlm_grad):
    assert np.all(np.abs(g["token_embed"]["embedding"][32:]).max(axis=1) > 0)
  assert not np.any(untied_grad["token_embed"]["embedding"][32:])
  assert np.all(np.abs(untied_grad["lm_head"]["kernel"][:, 32:]).max(axis=0) > 0)


def test_dropout_needs_train_and_a_dropout_rng(params):
  """Each dropout site (embeddings, both sub-layers of each block) zeroes about `rate` of its
  outputs in training, differently for each rng; evaluation is the rate-0 model."""
  model = TextTransformer(**TINY, num_segments=2, dropout_rate=0.1)
  v = {"params": _params_for(model, params["encoder"])}
  ids, segments = _ids(), _segments()

  @jax.jit
  def outputs():
    def train(seed):
      return model.apply(v, ids, None, segments, train=True, rngs={"dropout": jax.random.key(seed)},
                         capture_intermediates=lambda module, _: isinstance(module, nn.Dropout))
    evaluated = model.apply(v, ids, None, segments, train=False)
    no_dropout = model.clone(dropout_rate=0.0).apply(v, ids, None, segments, train=True)
    return train(1), train(2)[0], train(1)[0], evaluated, no_dropout

  (first, captured), second, again, evaluated, no_dropout = outputs()
  assert np.abs(first - second).max() > 1e-2
  np.testing.assert_array_equal(first, again)
  np.testing.assert_allclose(evaluated, no_dropout, rtol=1e-6, atol=1e-6)
  assert np.abs(first - evaluated).max() > 1e-2
  sites = {parallel.path_name(path): np.mean(np.asarray(out) == 0)
           for path, out in jax.tree_util.tree_leaves_with_path(captured["intermediates"])}
  assert len(sites) == 5 and all(0.05 < zeros < 0.15 for zeros in sites.values()), sites


def test_nsp_head_reads_the_first_position(params):
  head = params["nsp_head"]
  hidden = jnp.asarray(np.random.default_rng(4).standard_normal((BATCH, LENGTH, 32)), jnp.float32)
  nsp = jax.jit(lambda h: NspHead().apply({"params": head}, h))
  pooled = np.tanh(hidden[:, 0] @ head["pooler"]["kernel"] + head["pooler"]["bias"])
  expected = pooled @ head["classifier"]["kernel"] + head["classifier"]["bias"]
  np.testing.assert_allclose(nsp(hidden), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(nsp(hidden.at[:, 1:].set(0.0)), expected, rtol=1e-5, atol=1e-5)


def test_tensor_parallel_shardings_and_mlm_loss(params):
  """Heads and MLM units over `tensor`, the batch over `data`: the MLM loss is one device's."""
  model = TextTransformer(**TINY, num_segments=2)
  p = {"encoder": _params_for(model, params["encoder"]), "mlm_head": params["mlm_head"]}
  mesh = parallel.make_mesh({"data": 2, "tensor": 4})
  shardings = parallel.param_shardings(p, mesh, TP_RULES)
  specs = {parallel.path_name(path): s.spec
           for path, s in jax.tree_util.tree_leaves_with_path(shardings)}
  for i in range(2):
    b = f"encoder/block{i}"
    for name in ("query", "key", "value"):
      assert specs[f"{b}/attn/{name}/kernel"] == P(None, "tensor", None)
    for name in ("query", "value"):
      assert specs[f"{b}/attn/{name}/bias"] == P("tensor", None)
    assert specs[f"{b}/attn/out/kernel"] == P("tensor", None, None)
    assert specs[f"{b}/mlp/fc1/kernel"] == P(None, "tensor")
    assert specs[f"{b}/mlp/fc1/bias"] == P("tensor")
    assert specs[f"{b}/mlp/fc2/kernel"] == P("tensor", None)
    for name in ("attn/out/bias", "mlp/fc2/bias", "norm1/scale", "norm2/bias"):
      assert specs[f"{b}/{name}"] == P()
  for name in ("encoder/token_embed/embedding", "encoder/pos_embed", "encoder/norm/scale",
               "mlm_head/dense/kernel", "mlm_head/bias"):
    assert specs[name] == P()

  positions = jnp.asarray([[1, 4, 9]] * BATCH)  # Three "masked" positions per sequence.
  batch = {"ids": _ids(), "segments": _segments(), "positions": positions,
           "labels": jnp.take_along_axis(_ids(seed=3), positions, axis=1)}

  def loss(p, batch):
    hidden = model.apply({"params": p["encoder"]}, batch["ids"], None, batch["segments"],
                         train=False)
    picked = jnp.take_along_axis(hidden, batch["positions"][..., None], axis=1)
    logits = MlmHead().apply({"params": p["mlm_head"]}, picked,
                             p["encoder"]["token_embed"]["embedding"])
    return token_cross_entropy(logits, batch["labels"])[0]

  expected = jax.jit(loss)(p, batch)
  sharded = jax.device_put(p, shardings)
  fc1 = sharded["encoder"]["block0"]["mlp"]["fc1"]["kernel"]
  assert fc1.addressable_shards[0].data.shape == (32, 16)
  fn = jax.jit(loss, in_shardings=(shardings, parallel.batch_sharding(mesh)),
               out_shardings=parallel.replicated(mesh))
  np.testing.assert_allclose(fn(sharded, batch), expected, rtol=1e-5)


def test_bfloat16_compute_float32_params(params):
  model = TextTransformer(**TINY, causal=True, positions="rotary", dtype=jnp.bfloat16)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), _ids(), train=False))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract))
  p = _params_for(model, params["encoder"])

  @jax.jit
  def outputs(p):
    reference = model.clone(dtype=jnp.float32)
    return _hidden_and_logits(model, p, _ids()), _hidden_and_logits(reference, p, _ids())

  (hidden, logits), (ref_hidden, ref_logits) = outputs(p)
  assert hidden.dtype == logits.dtype == jnp.bfloat16
  np.testing.assert_allclose(hidden.astype(jnp.float32), ref_hidden, rtol=0.1, atol=0.1)
  np.testing.assert_allclose(logits.astype(jnp.float32), ref_logits, rtol=0.1, atol=0.1)


def test_text_sizes_use_64_wide_heads():
  """Every size in BERT and GPT-2 has 64-dimensional heads, an even width as rotary needs."""
  assert set(TEXT_SIZES) == {"bert_tiny", "bert_small", "bert_base", "gpt_small"}
  for hidden_dim, _, num_heads in TEXT_SIZES.values():
    assert hidden_dim == 64 * num_heads
