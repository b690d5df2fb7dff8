"""The Grain pipeline: reproducible batches, exact iterator resume, per-process sharding."""
import jax
import numpy as np
import pytest

from sslax import parallel
from sslax.data import pipeline, sources

SPEC = dict(size=12, crop_scale=(0.5, 1.0), flip_p=0.5, jitter_p=0.8, brightness=0.4,
            contrast=0.4, saturation=0.0, hue=0.0, grayscale_p=0.0, mean=(0.5,), std=(0.5,))


@pytest.fixture(scope="module")
def source():
  images = np.random.default_rng(0).integers(0, 256, size=(20, 16, 16, 1), dtype=np.uint8)
  return sources.ArraySource(images)


def views_of(batch):
  return np.stack(batch["views"])


def test_batches_have_the_views_shapes_and_are_reproducible(source):
  ds = pipeline.train_dataset(source, [SPEC, SPEC], global_batch=8, seed=3, process_index=0,
                              process_count=1)
  batch = ds[0]
  assert len(batch["views"]) == 2
  assert batch["views"][0].shape == (8, 12, 12, 1) and batch["views"][0].dtype == np.float32
  assert not np.allclose(batch["views"][0], batch["views"][1])  # Two different augmentations.
  again = pipeline.train_dataset(source, [SPEC, SPEC], 8, seed=3, process_index=0,
                                 process_count=1)
  np.testing.assert_array_equal(views_of(again[5]), views_of(ds[5]))
  other_seed = pipeline.train_dataset(source, [SPEC, SPEC], 8, seed=4, process_index=0,
                                      process_count=1)
  assert not np.allclose(views_of(other_seed[0]), views_of(batch))


def test_each_epoch_sees_every_record_once_in_a_new_order(source):
  identity = dict(size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                  jitter_p=0.0, grayscale_p=0.0, mean=(0.0,), std=(1.0,))
  ds = pipeline.train_dataset(source, [identity], global_batch=4, seed=0, process_index=0,
                              process_count=1)
  images = source.images.astype(np.float32) / 255

  def record_ids(batches):
    views = np.concatenate([b["views"][0] for b in batches])
    return [int(np.argmin(np.abs(images - v).sum(axis=(1, 2, 3)))) for v in views]

  epoch0, epoch1 = record_ids([ds[i] for i in range(5)]), record_ids([ds[i] for i in range(5, 10)])
  assert sorted(epoch0) == sorted(epoch1) == list(range(20))
  assert epoch0 != epoch1


def test_process_shards_concatenate_to_the_single_process_batch(source):
  single = pipeline.train_dataset(source, [SPEC, SPEC], global_batch=8, seed=1, process_index=0,
                                  process_count=1)
  shards = [pipeline.train_dataset(source, [SPEC, SPEC], global_batch=8, seed=1, process_index=p,
                                   process_count=4) for p in range(4)]
  for step in (0, 3, 7):
    joined = np.concatenate([views_of(s[step]) for s in shards], axis=1)
    np.testing.assert_array_equal(joined, views_of(single[step]))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_restored_iterator_continues_with_the_same_batches(source, num_workers):
  ds = pipeline.train_dataset(source, [SPEC, SPEC], global_batch=4, seed=2, process_index=0,
                              process_count=1)
  it = pipeline.make_iterator(ds, num_workers=num_workers)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [views_of(next(it)) for _ in range(3)]
  np.testing.assert_array_equal(expected[0], views_of(ds[3]))  # Workers do not change batches.
  resumed = pipeline.make_iterator(ds, num_workers=num_workers)
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(views_of(next(resumed)), want)
  for iterator in (it, resumed):
    getattr(iterator, "close", lambda: None)()


def test_host_batch_becomes_a_global_array_sharded_over_the_batch_axes(source):
  ds = pipeline.train_dataset(source, [SPEC, SPEC], global_batch=16, seed=0, process_index=0,
                              process_count=1)
  mesh = parallel.make_mesh({"data": 2, "fsdp": 4})
  batch = parallel.to_global(ds[0], mesh)
  view = batch["views"][0]
  assert view.shape == (16, 12, 12, 1)
  assert {s.data.shape for s in view.addressable_shards} == {(2, 12, 12, 1)}
  np.testing.assert_array_equal(jax.device_get(view), ds[0]["views"][0])


def test_batch_size_that_does_not_split_is_a_clear_error():
  mesh = parallel.make_mesh({"data": -1})
  with pytest.raises(ValueError, match=r"batch_size=12 must be a multiple of 8.*try batch_size=8"):
    parallel.check_batch_size(12, mesh)


def test_eval_arrays_are_deterministic_views_with_labels():
  src = sources.ArraySource(np.full((3, 16, 16, 1), 255, np.uint8), np.array([0, 1, 2]))
  images, labels = pipeline.eval_arrays(src, SPEC)
  assert images.shape == (3, 12, 12, 1)
  np.testing.assert_allclose(images, 1.0)  # (1 - 0.5) / 0.5
  np.testing.assert_array_equal(labels, [0, 1, 2])


def test_multi_crop_specs_put_globals_first_and_share_the_base():
  base = {"size": 28, "blur_p": 0.5, "crop_scale": (0.4, 1.0)}
  specs = pipeline.multi_crop_specs(base, [{"blur_p": 1.0}, {"solarize_p": 0.2}],
                                    {"size": 12, "crop_scale": (0.05, 0.4)}, num_local_views=3)
  assert [s["size"] for s in specs] == [28, 28, 12, 12, 12]
  assert specs[0]["blur_p"] == 1.0 and specs[1] == {**base, "solarize_p": 0.2}
  assert specs[4] == {"size": 12, "blur_p": 0.5, "crop_scale": (0.05, 0.4)}
  with pytest.raises(ValueError, match="needs a local_view"):
    pipeline.multi_crop_specs(base, [{}], None, num_local_views=2)


def test_multi_crop_batches_have_one_array_per_view_with_its_size():
  source = sources.ArraySource(np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64))
  specs = pipeline.multi_crop_specs({"size": 28}, [{}, {}], {"size": 12}, num_local_views=2)
  batch = pipeline.train_dataset(source, specs, global_batch=4, seed=0)[0]
  assert [v.shape for v in batch["views"]] == [(4, 28, 28, 1)] * 2 + [(4, 12, 12, 1)] * 2
