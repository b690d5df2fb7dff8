"""Tests for sslax.data.image_ops: shapes, ranges, identities, determinism and known values.

Run `python tests/test_image_ops.py` by hand for a single-core throughput check of `augment`.
"""
import colorsys
import math
import time

import ml_collections
import numpy as np
import pytest
from PIL import Image

from sslax.data import image_ops as ops

SIMCLR = dict(size=16, flip_p=0.5, jitter_p=0.8, grayscale_p=0.2)
EVERYTHING = dict(size=16, rotation_degrees=20.0, rotation_p=0.5, blur_p=0.5, solarize_p=0.2,
                  noise_p=0.5)


def _image(c: int, h: int = 24, w: int = 20, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


def _rng(seed: int = 0) -> np.random.Generator:
  return np.random.default_rng(seed)


CROP_ONLY = dict(size=16, flip_p=0, jitter_p=0, grayscale_p=0, mean=(0,), std=(1,))
ONE_OP = {"crop": {}, "flip": dict(flip_p=1.0), "jitter": dict(jitter_p=1.0),
          "gray": dict(grayscale_p=1.0), "blur": dict(blur_p=1.0, blur_sigma=(1.0, 2.0)),
          "solarize": dict(solarize_p=1.0),
          "rotation": dict(rotation_degrees=15.0), "noise": dict(noise_p=1.0)}


def _random_ops(image, seed=0):
  """The crop followed by each random op at probability 1 (unnormalised), as name -> output."""
  return {name: ops.augment(image, _rng(seed), {**CROP_ONLY, **extra})
          for name, extra in ONE_OP.items()}


def test_to_float():
  gray = ops.to_float(np.array([[0, 255], [51, 102]], np.uint8))
  assert gray.shape == (2, 2, 1) and gray.dtype == np.float32
  np.testing.assert_allclose(gray[..., 0], [[0, 1], [0.2, 0.4]], atol=1e-7)
  assert ops.to_float(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5, 3)


@pytest.mark.parametrize("c", [1, 3])
def test_random_ops_shape_dtype_range_and_no_mutation(c):
  image = _image(c)
  before = image.copy()
  for name, out in _random_ops(image).items():
    assert out.shape == (16, 16, c) and out.dtype == np.float32, name
    assert out.min() >= 0 and out.max() <= 1, name
    assert not np.shares_memory(out, image), name
  np.testing.assert_array_equal(image, before)


def test_random_ops_deterministic_per_seed():
  image = _image(3)
  for name, out in _random_ops(image).items():
    np.testing.assert_array_equal(out, _random_ops(image)[name], err_msg=name)
  a, b = (ops.augment(image, _rng(s), EVERYTHING) for s in (1, 1))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, ops.augment(image, _rng(2), EVERYTHING))


def test_each_random_op_is_its_deterministic_op_on_the_crop_with_the_drawn_parameter():
  image = _image(3)
  views = _random_ops(image)
  crop = views["crop"]
  draws = {name: ops.draw_view(image, _rng(), {**CROP_ONLY, **extra})
           for name, extra in ONE_OP.items()}
  np.testing.assert_array_equal(views["flip"], crop[:, ::-1])
  np.testing.assert_array_equal(views["gray"], ops.grayscale(crop))
  np.testing.assert_array_equal(views["solarize"], ops.solarize(crop))
  np.testing.assert_array_equal(views["rotation"], ops.rotate(crop, draws["rotation"]["rotate"]))
  np.testing.assert_array_equal(views["blur"], ops.blur(crop, draws["blur"]["blur_sigma"]))
  np.testing.assert_array_equal(views["noise"], np.clip(crop + draws["noise"]["noise"], 0, 1))
  jittered = crop
  for op, factor in zip(draws["jitter"]["jitter_op"], draws["jitter"]["jitter_factor"],
                        strict=True):
    jittered = ops.JITTER_OPS[op](jittered, factor)
  np.testing.assert_array_equal(views["jitter"], jittered)
  assert sorted(draws["jitter"]["jitter_op"]) == [0, 1, 2, 3]  # All four, in a random order.
  for name, view in views.items():
    assert name == "crop" or not np.allclose(view, crop), name


@pytest.mark.parametrize("c,shape", [(1, (28, 28)), (3, (40, 36)), (3, (17, 23))])
def test_batched_views_equal_per_image_views_bit_for_bit(c, shape):
  """finish_views over a batch of draw_view outputs == augment image by image: the training
  pipeline's batched path gives exactly the views of the per-record one."""
  images = np.random.default_rng(3).random((40, *shape, c), dtype=np.float32)  # > CHUNK.
  spec = dict(EVERYTHING, size=12, saturation=0.4, hue=0.1, solarize_p=0.5, grayscale_p=0.3,
              rotation_p=0.6, mean=(0.4,), std=(0.2,))
  per_image = np.stack([ops.augment(x, _rng(i), spec) for i, x in enumerate(images)])
  drawn = [ops.draw_view(x, _rng(i), spec) for i, x in enumerate(images)]
  batched = ops.finish_views({k: np.stack([d[k] for d in drawn]) for k in drawn[0]}, spec)
  np.testing.assert_array_equal(batched, per_image)
  coins = {k: np.stack([d[k] for d in drawn]) for k in ("flip", "grayscale", "noise_on")}
  assert all(0 < v.sum() < len(images) for v in coins.values())  # Both branches exercised.


def test_batched_pixel_ops_take_one_parameter_per_image():
  images = np.random.default_rng(4).random((5, 12, 10, 3), dtype=np.float32)
  f = np.linspace(0.3, 1.7, 5)
  for op, values in [(ops.rotate, 20 * f), (ops.blur, f), (ops.adjust_brightness, f),
                     (ops.adjust_contrast, f), (ops.adjust_saturation, f),
                     (ops.adjust_hue, 0.3 * (f - 1))]:
    batched = op(images, values)
    for i in range(5):
      np.testing.assert_array_equal(batched[i], op(images[i], values[i]), err_msg=op.__name__)


def test_sample_crop_box_statistics():
  rng, scale, ratio = _rng(), (0.2, 0.6), (3 / 4, 4 / 3)
  boxes = np.array([ops.sample_crop_box(100, 120, rng, scale, ratio) for _ in range(2000)])
  top, left, height, width = boxes.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + height <= 100).all() and (left + width <= 120).all()
  area = height * width / (100 * 120)
  assert area.min() >= scale[0] - 0.015 and area.max() <= scale[1] + 0.015  # Rounding slack.
  assert abs(area.mean() - 0.4) < 0.01  # Uniform in scale.
  log_aspect = np.log(width / height)
  assert np.abs(log_aspect).max() <= math.log(4 / 3) + 0.03
  assert abs(log_aspect.mean()) < 0.02  # Log-uniform: symmetric about 1.
  assert len(set(map(tuple, boxes))) > 1000  # Positions vary too.


def test_sample_crop_box_falls_back_to_clamped_central_crop():
  # Scale near 1 with ratio 1 cannot fit a 10x100 image: central crop, ratio clamped to 1.
  assert ops.sample_crop_box(10, 100, _rng(), (0.9, 1.0), (1.0, 1.0)) == (0, 45, 10, 10)


def test_random_resized_crop_full_scale_is_identity():
  image = _image(3, 16, 16)
  out = ops.random_resized_crop(image, _rng(), 16, scale=(1, 1), ratio=(1, 1))
  np.testing.assert_allclose(out, image, atol=1e-6)


@pytest.mark.parametrize("size", [7, 16, 45])
def test_resize_matches_pil_bilinear(size):
  image = _image(3, 24, 20)
  out = ops.resize(image, size)
  assert out.shape == (size, size, 3) and out.dtype == np.float32
  for ch in range(3):
    pil = Image.fromarray(np.ascontiguousarray(image[..., ch])).resize(
        (size, size), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(out[..., ch], np.asarray(pil), atol=1e-5)


def test_center_crop():
  image = _image(1, 10, 8)
  np.testing.assert_array_equal(ops.center_crop(image, 4), image[3:7, 2:6])
  with pytest.raises(ValueError):
    ops.center_crop(image, 9)


@pytest.mark.parametrize("c", [1, 3])
def test_neutral_adjustments_are_identities(c):
  image = _image(c)
  for out in [ops.adjust_brightness(image, 1.0), ops.adjust_contrast(image, 1.0),
              ops.adjust_saturation(image, 1.0), ops.adjust_hue(image, 0.0),
              ops.adjust_hue(image, 1.0)]:  # A full turn.
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_adjustment_extremes():
  image = _image(3)
  luma = image @ ops.LUMA
  np.testing.assert_array_equal(ops.adjust_brightness(image, 0.0), 0)
  np.testing.assert_allclose(ops.adjust_contrast(image, 0.0), np.full_like(image, luma.mean()),
                             atol=1e-6)
  np.testing.assert_allclose(ops.adjust_saturation(image, 0.0), np.repeat(luma[..., None], 3, -1),
                             atol=1e-6)
  assert ops.adjust_brightness(image, 3.0).max() == 1.0  # Clipped.


def test_hue_shift_known_colours_and_colorsys():
  red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
  np.testing.assert_allclose(ops.adjust_hue(red, 1 / 3), [[[0, 1, 0]]], atol=1e-6)
  np.testing.assert_allclose(ops.adjust_hue(red, -1 / 3), [[[0, 0, 1]]], atol=1e-6)
  image = _image(3, 8, 8)
  image[0, :3] = [[0.5, 0.5, 0.5], [0.2, 0.2, 0.7], [0.6, 0.6, 0.1]]  # Grey and ties.
  for delta in (0.37, -0.12):
    expected = [colorsys.hsv_to_rgb((h + delta) % 1, s, v)
                for h, s, v in (colorsys.rgb_to_hsv(*px) for px in image.reshape(-1, 3))]
    np.testing.assert_allclose(ops.adjust_hue(image, delta).reshape(-1, 3), expected, atol=1e-5)


def _jitter(image, seed=0, **strengths):
  """The colour jitter alone (probability 1, the whole image kept, unnormalised)."""
  spec = dict(CROP_ONLY, size=image.shape[0], crop_scale=(1, 1), crop_ratio=(1, 1), jitter_p=1.0,
              **{"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, **strengths})
  return ops.augment(image, _rng(seed), spec)


def test_color_jitter_changes_image_and_only_colour_ops_touch_gray():
  image = _image(3, 16, 16)
  np.testing.assert_allclose(_jitter(image), image, atol=1e-6)  # All strengths 0: identity.
  assert not np.allclose(_jitter(image, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
                         image)
  gray = _image(1, 16, 16)
  # Saturation and hue are no-ops on one channel; brightness/contrast still apply.
  np.testing.assert_allclose(_jitter(gray, saturation=0.9, hue=0.5), gray, atol=1e-6)
  assert not np.allclose(_jitter(gray, brightness=0.5), gray)
  # Hue deltas go both ways: red turns towards green (delta > 0) or blue (delta < 0).
  red = np.zeros((4, 4, 3), np.float32)
  red[..., 0] = 1
  shifted = np.array([_jitter(red, s, hue=0.1)[0, 0] for s in range(20)])
  assert (shifted[:, 1] > 0).any() and (shifted[:, 2] > 0).any()


def test_grayscale_uses_luma():
  image = _image(3)
  out = ops.grayscale(image)
  expected = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
  for ch in range(3):
    np.testing.assert_allclose(out[..., ch], expected, atol=1e-6)
  gray = _image(1)
  np.testing.assert_array_equal(ops.grayscale(gray), gray)


def test_gaussian_blur():
  kernel = ops.gaussian_kernel(1.5, 7)
  assert kernel.shape == (7,) and abs(kernel.sum() - 1) < 1e-6
  np.testing.assert_allclose(kernel, kernel[::-1])
  constant = np.full((20, 30, 3), 0.3, np.float32)
  np.testing.assert_allclose(ops.blur(constant, 1.3), constant, atol=1e-6)
  image = _image(3, 64, 64)
  blurred = ops.blur(image, 2.0)
  assert blurred.std() < 0.5 * image.std()
  assert abs(blurred.mean() - image.mean()) < 0.01


def test_solarize():
  image = _image(3)
  np.testing.assert_array_equal(ops.solarize(image, threshold=1.1), image)
  out = ops.solarize(image, threshold=0.5)
  np.testing.assert_allclose(out, np.where(image >= 0.5, 1 - image, image))


def test_rotation():
  image = _image(3, 16, 16)
  np.testing.assert_array_equal(ops.rotate(image, 0.0), image)
  np.testing.assert_allclose(ops.rotate(image, 90.0), np.rot90(image), atol=1e-5)  # CCW.
  constant = np.full((21, 21, 1), 0.7, np.float32)
  out = ops.rotate(constant, 30.0)
  np.testing.assert_allclose(out[5:16, 5:16], 0.7, atol=1e-6)  # Interior stays constant.
  assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 0  # Corners come from outside: zero fill.


def test_gaussian_noise():
  image = np.full((64, 64, 1), 0.5, np.float32)
  spec = dict(CROP_ONLY, size=64, crop_scale=(1, 1), crop_ratio=(1, 1), noise_p=1.0)
  out = ops.augment(image, _rng(), dict(spec, noise_std=0.05))
  assert abs((out - image).std() - 0.05) < 0.005
  assert ops.augment(image, _rng(), dict(spec, noise_std=1.0)).max() <= 1.0


def test_normalize():
  image = _image(3)
  mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
  out = ops.normalize(image, mean, std)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out * np.array(std) + np.array(mean), image, atol=1e-6)
  np.testing.assert_allclose(ops.normalize(image, (0.5,), (0.5,)), 2 * image - 1, atol=1e-6)
  with pytest.raises(ValueError):
    ops.normalize(image, (0.5, 0.5), (0.5, 0.5))


@pytest.mark.parametrize("c", [1, 3])
def test_augment_views(c):
  image = _image(c, 32, 32)
  for spec in [SIMCLR, ml_collections.ConfigDict(EVERYTHING)]:
    view = ops.augment(image, _rng(), spec)
    assert view.shape == (16, 16, c) and view.dtype == np.float32
    assert view.min() >= -1 and view.max() <= 1  # [0, 1] under mean 0.5, std 0.5.


def test_augment_skips_probability_zero_ops_without_drawing():
  image = _image(3, 32, 32)
  spec = dict(size=16, flip_p=0, jitter_p=0, grayscale_p=0, mean=(0,), std=(1,))
  rng = _rng()
  view = ops.augment(image, rng, spec)
  reference_rng = _rng()
  np.testing.assert_array_equal(view, ops.random_resized_crop(image, reference_rng, 16))
  assert rng.random() == reference_rng.random()  # Same state: nothing else was drawn.


def test_eval_view():
  image = _image(3, 40, 30)
  spec = ml_collections.ConfigDict(dict(size=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2)))
  out = ops.eval_view(image, spec)
  np.testing.assert_array_equal(out, ops.eval_view(image, spec))
  np.testing.assert_allclose(out, ops.normalize(ops.resize(image, 16), spec.mean, spec.std))


def _throughput(shape: tuple[int, int, int], n: int = 2000) -> float:
  """Views/s of `augment` with the SimCLR spec, best of 3 in CPU time of this one thread."""
  image = _image(shape[2], shape[0], shape[1])
  rng, spec = _rng(), dict(SIMCLR, size=shape[0])
  best = math.inf
  for _ in range(3):
    start = time.process_time()
    for _ in range(n):
      ops.augment(image, rng, spec)
    best = min(best, time.process_time() - start)
  return n / best


if __name__ == "__main__":
  for shape in [(32, 32, 3), (28, 28, 1)]:
    print(f"{shape}: {_throughput(shape):.0f} views/s")
