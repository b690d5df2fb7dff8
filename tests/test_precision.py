"""bfloat16 compute with float32 where precision matters.

With `dtype=bfloat16` the models compute in bfloat16, but the temperature-scaled softmax losses,
the coding-rate log-determinant, the EMA teacher, the DINO centre and the attention softmax must
run in float32. The checks read the traced programs (no bfloat16 value past the input casts,
every matmul at HIGHEST precision, which accelerators otherwise round to bfloat16 or TF32) and
compare values exactly against the float32 computation on the upcast inputs.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO

from sslax import config as config_lib
from sslax import losses
from sslax.methods import get_method, teacher
from sslax.models.attention import SelfAttention
from sslax.models.vit import VisionTransformer

BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)


def _eqns(jaxpr):
  """Every equation of a jaxpr, those of its sub-jaxprs (jit, custom_jvp, scan, ...) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, tuple | list) else (value,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          yield from _eqns(sub)


# Exact in any dtype (they move or cast values) or wrap sub-programs that _eqns walks.
EXACT = {"convert_element_type", "concatenate", "reshape", "broadcast_in_dim", "transpose",
         "slice", "squeeze", "gather", "dynamic_slice", "select_n", "copy", "pjit", "jit",
         "closed_call", "custom_jvp_call", "custom_vjp_call"}


def _assert_float32_program(fn, *args):
  """No bfloat16 arithmetic: every bfloat16 value comes from moving or casting the inputs, every
  matmul is float32 at HIGHEST."""
  eqns = list(_eqns(jax.make_jaxpr(fn)(*args).jaxpr))
  dots = [e for e in eqns if e.primitive.name == "dot_general"]
  assert dots, "expected a matmul"
  for eqn in eqns:
    if eqn.primitive.name not in EXACT:
      assert all(v.aval.dtype != BF16 for v in eqn.outvars if hasattr(v.aval, "dtype")), eqn
  for eqn in dots:
    assert all(v.aval.dtype == F32 for v in eqn.invars), eqn
    assert eqn.params["precision"] in ((jax.lax.Precision.HIGHEST,) * 2,
                                       jax.lax.Precision.HIGHEST), eqn


def _bf16(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), BF16)


LOSSES = {
  "nt_xent": (lambda a, b: losses.nt_xent(a, b, 0.1), ((8, 16), (8, 16))),
  "info_nce": (lambda a, b: losses.info_nce(a, b, 0.2), ((8, 16), (8, 16))),
  "dino_loss": (lambda s, t: losses.dino_loss(s, t, jnp.linspace(-1.0, 1.0, 12), 0.1, 0.04),
                ((4, 8, 12), (2, 8, 12))),
  "coding_rate": (lambda z: losses.coding_rate(z, 0.05), ((32, 6),)),
}


@pytest.mark.parametrize("name", LOSSES)
def test_losses_of_bfloat16_inputs_are_the_float32_losses(name):
  fn, shapes = LOSSES[name]
  args = [_bf16(shape, seed) for seed, shape in enumerate(shapes)]
  value = jax.jit(fn)(*args)
  assert value.dtype == F32
  np.testing.assert_array_equal(value, jax.jit(fn)(*(a.astype(F32) for a in args)))
  assert np.isfinite(value)
  _assert_float32_program(fn, *args)


def _softmax_exps(fn, *args):
  """The dtypes of the exp equations (the softmax) of fn's program."""
  return {e.outvars[0].aval.dtype for e in _eqns(jax.make_jaxpr(fn)(*args).jaxpr)
          if e.primitive.name == "exp"}


def test_attention_softmax_runs_in_float32_under_bfloat16():
  x = _bf16((2, 5, 16), 0)
  attn = SelfAttention(num_heads=4, dtype=jnp.bfloat16)
  variables = jax.eval_shape(lambda: attn.init(jax.random.key(0), x))
  assert _softmax_exps(lambda v: attn.apply(v, x), variables) == {F32}
  out = jax.eval_shape(lambda v: attn.apply(v, x), variables)
  assert out.dtype == BF16
  vit = VisionTransformer(patch_size=4, hidden_dim=16, depth=1, num_heads=4, mlp_dim=32,
                          dtype=jnp.bfloat16, scan_layers=True, remat="full")
  images = jnp.zeros((2, 8, 8, 3))
  variables = jax.eval_shape(lambda: vit.init(jax.random.key(0), images, train=False))
  grad = jax.grad(lambda v: jnp.sum(vit.apply(v, images, train=True).astype(F32)))
  assert _softmax_exps(grad, variables) == {F32}


def test_ema_of_float32_params_is_the_float32_formula():
  rng = np.random.default_rng(0)
  target = {"w": rng.standard_normal((7, 5)).astype(np.float32), "b": np.float32([0.3, -1.2])}
  online = jax.tree.map(lambda t: (t + rng.standard_normal(t.shape)).astype(np.float32), target)
  tau = teacher.cosine_momentum(jnp.int32(3), 10, 0.996)
  assert tau.dtype == F32
  out = jax.jit(teacher.ema)(target, online, tau)
  t32 = np.float32(tau)
  for key in target:
    assert out[key].dtype == F32
    expected = t32 * target[key] + (np.float32(1) - t32) * online[key]
    np.testing.assert_array_equal(teacher.ema(target, online, tau)[key], expected)  # Op by op.
    # Jitted, XLA:CPU fuses a multiply and the add into one FMA (one rounding fewer): 1 ulp, where
    # a bfloat16 step would be 2^16 ulps off.
    np.testing.assert_array_max_ulp(out[key], expected, maxulp=1)
  # A bfloat16 online copy cannot pull the float32 teacher down to bfloat16.
  mixed = jax.jit(teacher.ema)(target, jax.tree.map(lambda o: jnp.asarray(o, BF16), online), tau)
  assert all(leaf.dtype == F32 for leaf in jax.tree.leaves(mixed))


def test_dino_centre_and_simdino_loss_stay_float32_for_bfloat16_outputs():
  dino = get_method(config_lib.load_config(f"{REPO}/configs/dino_mnist.py:tiny"))
  k = dino.config.model.head.out_dim
  student, target = _bf16((4, 8, k), 1), _bf16((2, 8, k), 2)
  center = jnp.linspace(-0.5, 0.5, k, dtype=F32)
  step = jnp.int32(5)
  distill = jax.jit(dino.distill)
  loss, metrics, new = distill(student, target, {"center": center}, step)
  m = np.float32(dino.section.center_momentum)
  expected = m * np.asarray(center) + (np.float32(1) - m) * np.mean(
      np.asarray(target, np.float32), axis=(0, 1), dtype=np.float32)
  assert new["center"].dtype == loss.dtype == metrics["teacher_entropy"].dtype == F32
  np.testing.assert_allclose(new["center"], expected, rtol=1e-6, atol=1e-7)
  upcast = distill(student.astype(F32), target.astype(F32), {"center": center}, step)
  np.testing.assert_array_equal(loss, upcast[0])
  np.testing.assert_array_equal(new["center"], upcast[2]["center"])

  simdino = get_method(config_lib.load_config(f"{REPO}/configs/simdino_mnist.py:tiny"))
  feats, teacher_feats = _bf16((4, 8, 6), 3), _bf16((2, 8, 6), 4)

  def simdino_loss(s, t):
    return simdino.distill(s, t, {}, step)[0]
  value = jax.jit(simdino_loss)(feats, teacher_feats)
  assert value.dtype == F32
  np.testing.assert_array_equal(value, jax.jit(simdino_loss)(feats.astype(F32),
                                                             teacher_feats.astype(F32)))
  _assert_float32_program(simdino_loss, feats, teacher_feats)
