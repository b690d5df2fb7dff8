"""DINO and SimDINO: head, schedules, centre, frozen prototypes, EMA, losses, 8 == 1 device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one, train_and_evaluate

from sslax import config as config_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method
from sslax.methods.dino import group_by_shape
from sslax.models.heads import DINOHead

DINO_TINY = f"{REPO}/configs/dino_mnist.py:tiny"
SIMDINO_TINY = f"{REPO}/configs/simdino_mnist.py:tiny"


def setup(config_path, **overrides):
  config = config_lib.load_config(config_path, **overrides)
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  dataset = pipeline.train_dataset(source, method.views(), config.batch_size, config.seed)
  batch = jax.tree.map(jnp.asarray, dataset[0])
  params, model_state, extra = method.init(jax.random.key(0), batch)
  return config, method, batch, params, model_state, extra


def test_dino_head_outputs_cosines_to_unit_prototypes():
  head = DINOHead(out_dim=12, hidden_dim=16, bottleneck_dim=6, num_layers=3)
  x = jax.random.normal(jax.random.key(0), (5, 7))
  variables = head.init(jax.random.key(1), x, train=True)
  assert set(variables["params"]) == {"mlp0", "mlp1", "bottleneck", "last_layer"}
  logits = head.apply(variables, x, train=True)
  feats = head.apply(variables, x, train=True, features_only=True)
  np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), 1.0, rtol=1e-6)
  v = np.asarray(variables["params"]["last_layer"])
  np.testing.assert_allclose(logits, feats @ (v / np.linalg.norm(v, axis=0)), rtol=1e-5)
  # Scaling the prototypes (what weight decay does) leaves the logits unchanged.
  scaled = jax.tree.map(lambda p: p, variables)
  scaled["params"]["last_layer"] = 0.5 * variables["params"]["last_layer"]
  np.testing.assert_allclose(head.apply(scaled, x, train=True), logits, rtol=1e-6)


def test_multi_crop_views_and_their_forward_groups():
  config, method, batch, *_ = setup(DINO_TINY)
  shapes = [v.shape for v in batch["views"]]
  assert shapes == [(16, 28, 28, 1)] * 2 + [(16, 14, 14, 1)] * 2
  assert group_by_shape(batch["views"]) == [[0, 1], [2, 3]]
  assert method.views()[0]["blur_p"] == 1.0 and method.views()[1]["solarize_p"] == 0.2
  assert method.views()[2]["crop_scale"] == (0.2, 0.4)


def test_dino_loss_centre_and_schedules():
  config, method, batch, params, model_state, extra = setup(DINO_TINY)
  extra["center"] = jnp.linspace(-1.0, 1.0, config.model.head.out_dim)
  step = jnp.int32(1)
  loss, (metrics, _, new_extra) = method.loss(params, model_state, extra, batch, None, step)
  # The same quantities assembled by hand: student on all views, teacher on the globals.
  student, _ = method.forward(params, model_state, batch["views"])
  teacher, _ = method.forward(extra["teacher"], extra["teacher_state"], batch["views"][:2])
  assert student.shape == (4, 16, 32) and teacher.shape == (2, 16, 32)
  s = config.dino
  temperature = 0.04 + 0.5 * (0.07 - 0.04)  # Step 1 of a 2-step warm-up.
  np.testing.assert_allclose(metrics["teacher_temperature"], temperature, rtol=1e-6)
  expected = _dino_numpy(np.asarray(student), np.asarray(teacher), np.asarray(extra["center"]),
                         s.student_temperature, temperature)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  centre = 0.9 * np.asarray(extra["center"]) + 0.1 * np.asarray(teacher).mean(axis=(0, 1))
  np.testing.assert_allclose(new_extra["center"], centre, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(method.teacher_temperature(jnp.int32(10)), 0.07, rtol=1e-6)


def _dino_numpy(student, teacher, center, ts, tt):
  def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))
  terms = [np.mean(np.sum(-np.exp(log_softmax((teacher[t] - center) / tt))
                          * log_softmax(student[v] / ts), axis=-1))
           for t in range(len(teacher)) for v in range(len(student)) if v != t]
  return np.mean(terms)


def test_prototypes_are_frozen_for_the_first_steps_only():
  config, method, batch, params, model_state, extra = setup(DINO_TINY)

  def grads(step):
    def loss(p):
      return method.loss(p, model_state, extra, batch, None, jnp.int32(step))[0]
    return jax.grad(loss)(params)["head"]

  early, late = grads(config.dino.freeze_last_layer_steps - 1), grads(
      config.dino.freeze_last_layer_steps)
  assert not np.any(early["last_layer"]) and np.any(late["last_layer"])
  assert np.any(early["bottleneck"]["kernel"])


@pytest.mark.parametrize("config_path", [DINO_TINY, SIMDINO_TINY])
def test_teacher_is_an_ema_of_the_student(config_path):
  config, method, batch, params, model_state, extra = setup(config_path)
  moved = jax.tree.map(lambda p: p + 1.0, params)
  for step in (0, config.total_steps // 2):
    tau = 1 - (1 - 0.99) * (np.cos(np.pi * step / config.total_steps) + 1) / 2
    new = method.update_extra(moved, extra, jnp.int32(step))
    for t, p, n in zip(jax.tree.leaves(extra["teacher"]), jax.tree.leaves(moved),
                       jax.tree.leaves(new["teacher"]), strict=True):
      np.testing.assert_allclose(n, tau * t + (1 - tau) * p, rtol=1e-5, atol=1e-6)


def test_simdino_loss_is_alignment_minus_coding_rate():
  config, method, batch, params, model_state, extra = setup(SIMDINO_TINY)
  assert "last_layer" not in params["head"] and "center" not in extra
  loss, (metrics, *_) = method.loss(params, model_state, extra, batch, None, jnp.int32(0))
  student = np.asarray(method.forward(params, model_state, batch["views"])[0],
                       np.float64)
  teacher = np.asarray(method.forward(extra["teacher"], extra["teacher_state"],
                                      batch["views"][:2])[0], np.float64)
  np.testing.assert_allclose(np.linalg.norm(student, axis=-1), 1.0, rtol=1e-5)
  cos = [np.mean(np.sum(teacher[t] * student[v], -1)) for t in range(2) for v in range(4)
         if v != t]
  b, d = student.shape[1:]
  eps = config.simdino.eps
  rates = [0.5 * np.linalg.slogdet(np.eye(d) + d / (b * eps) * student[v].T @ student[v])[1]
           for v in range(2)]
  np.testing.assert_allclose(metrics["alignment"], np.mean(cos), rtol=1e-5)
  weight = config.simdino.coding_rate_weight
  np.testing.assert_allclose(loss, -np.mean(cos) - weight * np.mean(rates), rtol=1e-5)


def test_vit_student_sees_global_and_local_crops_with_one_position_table():
  """A learned-position ViT inits on the 28x28 globals and takes the 14x14 locals too (resized
  table), as DINO trains ViTs; the table gets gradient from both view sizes."""
  config = config_lib.load_config(DINO_TINY)
  config.model.encoder = dict(name="vit_tiny", patch_size=7, hidden_dim=16, depth=1, num_heads=2,
                              pos_embed="learned")
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  views = pipeline.train_dataset(source, method.views(), config.batch_size, config.seed)[0]
  batch = jax.tree.map(jnp.asarray, views)
  assert [v.shape[1] for v in batch["views"]] == [28, 28, 14, 14]
  params, model_state, extra = method.init(jax.random.key(0), batch)
  assert params["encoder"]["pos_embed"].shape == (1, 17, 16)

  def loss(p, views):
    return method.loss(p, model_state, extra, {**batch, "views": views}, None, jnp.int32(0))[0]

  grads = jax.jit(jax.grad(loss))(params, batch["views"])["encoder"]["pos_embed"]
  assert np.all(np.isfinite(grads)) and np.any(grads[0, 1:] != 0)
  # The locals alone reach every patch slot of the table through its resize.
  def local_sum(p):
    return jnp.sum(method.forward(p, model_state, batch["views"][2:])[0] ** 2)

  local_grads = jax.jit(jax.grad(local_sum))(params)["encoder"]["pos_embed"]
  assert np.all(np.any(local_grads[0, 1:] != 0, axis=-1))


@pytest.mark.parametrize("config_path", [DINO_TINY, SIMDINO_TINY])
def test_eight_devices_match_one_device(config_path):
  assert_eight_devices_match_one(config_lib.load_config(config_path, total_steps=3))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dino", "simdino"])
def test_end_to_end(name, tmp_path):
  rows, results = train_and_evaluate(f"{REPO}/configs/{name}_mnist.py:tiny", tmp_path)
  assert results["head_levels"] == ["head"]
  if name == "dino":
    assert all(0 < r["teacher_entropy"] <= np.log(32) + 1e-5 for r in rows)
