"""Tests for sslax.data.sources: embedded MNIST, arrays, image folders, TFDS and dispatch."""
import hashlib
import io
import json
import pickle

import ml_collections
import numpy as np
import pytest
from PIL import Image

from sslax.data import sources


def _digests(images: np.ndarray) -> set[bytes]:
  return {hashlib.blake2b(image.tobytes()).digest() for image in images}


# --- mnist_embedded -------------------------------------------------------------------------


def test_mnist_split_sizes_are_stratified():
  splits = sources.mnist_embedded()
  assert {k: len(v) for k, v in splits.items()} == {"pretrain": 4000, "train": 4000, "test": 1000}
  np.testing.assert_array_equal(np.bincount(splits["train"].labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(splits["test"].labels), [100] * 10)


def test_mnist_pretrain_is_train_without_labels():
  splits = sources.mnist_embedded()
  np.testing.assert_array_equal(splits["pretrain"].images, splits["train"].images)
  assert (splits["pretrain"].labels == -1).all()
  assert splits["pretrain"][7]["label"] == -1


def test_mnist_test_digits_are_not_in_train():
  splits = sources.mnist_embedded()
  test = _digests(splits["test"].images)
  assert len(test) == 1000
  assert not test & _digests(splits["train"].images)


def test_mnist_records_look_like_mnist():
  record = sources.mnist_embedded()["test"][0]
  assert record["image"].dtype == np.uint8 and record["image"].shape == (28, 28, 1)
  assert record["label"].dtype == np.int32 and record["label"].shape == ()
  images = sources.mnist_embedded()["train"].images
  assert images.max() == 255 and images.min() == 0
  # Dark background with a bright stroke: corners are empty, about a fifth of pixels are lit.
  assert (images[:, 0, 0] == 0).all()
  assert 0.1 < (images > 127).mean() < 0.3


def test_mnist_split_is_deterministic_and_cached():
  first, second = sources.mnist_embedded(), sources.mnist_embedded()
  assert first["test"].images is second["test"].images
  sources._mnist_splits.cache_clear()
  again = sources.mnist_embedded()
  np.testing.assert_array_equal(again["test"].images, first["test"].images)
  np.testing.assert_array_equal(again["train"].labels, first["train"].labels)


def test_mnist_records_are_copies():
  source = sources.mnist_embedded()["train"]
  record = source[0]
  record["image"][:] = 7
  assert not (source[0]["image"] == 7).all()


# --- ArraySource ----------------------------------------------------------------------------


def test_array_source_adds_channel_axis_and_pickles():
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  source = pickle.loads(pickle.dumps(sources.ArraySource(images)))
  assert len(source) == 2
  assert source[1]["image"].shape == (3, 4, 1) and source[1]["label"] == -1
  np.testing.assert_array_equal(source[1]["image"][..., 0], images[1])


def test_array_source_rejects_bad_input():
  with pytest.raises(ValueError, match="uint8"):
    sources.ArraySource(np.zeros((2, 3, 3), np.float32))
  with pytest.raises(ValueError, match="one integer label per image"):
    sources.ArraySource(np.zeros((2, 3, 3), np.uint8), np.zeros(3))


# --- ImageFolderSource ----------------------------------------------------------------------


def _write_image(path, shape, seed, fmt="PNG"):
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  Image.fromarray(pixels).save(path, format=fmt)
  return pixels


@pytest.fixture
def class_folder(tmp_path):
  """cat/ and dog/ with 4 good images, 1 corrupt, 1 duplicate, 1 too small and a text file."""
  root = tmp_path / "images"
  _write_image(root / "cat" / "a.png", (16, 12, 3), 0)
  _write_image(root / "cat" / "b.JPG", (10, 14, 3), 1, fmt="JPEG")
  _write_image(root / "cat" / "tiny.png", (4, 4, 3), 2)
  (root / "cat" / "notes.txt").write_text("not an image")
  _write_image(root / "dog" / "c.png", (9, 20), 3)
  _write_image(root / "dog" / "deep" / "d.jpeg", (8, 8, 3), 4, fmt="JPEG")
  (root / "dog" / "dup.png").write_bytes((root / "cat" / "a.png").read_bytes())
  (root / "dog" / "bad.png").write_bytes(np.random.default_rng(5).bytes(300))
  return root


def test_image_folder_cleans_and_labels(class_folder):
  source = sources.ImageFolderSource(class_folder)
  assert source.report == {"found": 7, "kept": 4, "corrupt": 1, "duplicate": 1, "too_small": 1}
  assert source.classes == ["cat", "dog"]
  assert [p.split("images/")[1] for p in source.paths] == [
      "cat/a.png", "cat/b.JPG", "dog/c.png", "dog/deep/d.jpeg"]
  np.testing.assert_array_equal(source.labels, [0, 0, 1, 1])
  shapes = [source[i]["image"].shape for i in range(len(source))]
  assert shapes == [(16, 12, 3), (10, 14, 3), (9, 20, 3), (8, 8, 3)]
  assert source[2]["label"].dtype == np.int32 and source[2]["label"] == 1
  np.testing.assert_array_equal(source[0]["image"], np.asarray(Image.open(source.paths[0])))


def test_image_folder_grayscale_and_min_size(class_folder):
  source = sources.ImageFolderSource(class_folder, min_size=4, channels=1)
  assert source.report["too_small"] == 0 and len(source) == 5
  assert all(source[i]["image"].shape[-1] == 1 for i in range(len(source)))


def test_image_folder_without_classes_is_unlabelled(tmp_path):
  pixels = _write_image(tmp_path / "x.PNG", (10, 10, 3), 0)
  _write_image(tmp_path / "sub" / "y.jpg", (12, 10, 3), 1, fmt="JPEG")
  source = sources.ImageFolderSource(tmp_path)
  assert len(source) == 2 and source.classes == []
  assert (source.labels == -1).all()
  np.testing.assert_array_equal(source[1]["image"], pixels)  # Sorted: sub/y.jpg, x.PNG.


def test_image_folder_skips_file_corrupted_after_construction(class_folder, caplog):
  source = sources.ImageFolderSource(class_folder)
  expected_next, expected_first = source[1], source[0]
  with open(source.paths[0], "wb") as f:
    f.write(b"garbage")
  np.testing.assert_array_equal(source[0]["image"], expected_next["image"])
  assert "Skipping unreadable image" in caplog.text
  (class_folder / "dog" / "deep" / "d.jpeg").unlink()
  with open(source.paths[0], "wb") as f:  # Restore a.png: the last record wraps around to it.
    Image.fromarray(expected_first["image"]).save(f, format="PNG")
  np.testing.assert_array_equal(source[3]["image"], expected_first["image"])
  with pytest.raises(IndexError):
    source[4]


def test_image_folder_pickles(class_folder):
  source = sources.ImageFolderSource(class_folder)
  clone = pickle.loads(pickle.dumps(source))
  assert clone.report == source.report
  np.testing.assert_array_equal(clone[3]["image"], source[3]["image"])


def test_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist: point the data path"):
    sources.ImageFolderSource(tmp_path / "missing")
  (tmp_path / "bad.png").write_bytes(b"not a png")
  with pytest.raises(ValueError, match="No usable images.*'corrupt': 1"):
    sources.ImageFolderSource(tmp_path)
  with pytest.raises(ValueError, match="use 1 .grayscale. or 3"):
    sources.ImageFolderSource(tmp_path, channels=4)


# --- TfdsSource -----------------------------------------------------------------------------


def _png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
  """Prepares a tiny array_record TFDS dataset; returns (data_dir, split -> [(image, label)])."""
  import tensorflow_datasets as tfds

  rng = np.random.default_rng(0)
  examples = {split: [(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), i % 3) for i in range(n)]
              for split, n in (("train", 5), ("test", 3))}

  # Not registered: readers find the prepared files by name, as a separate process would.
  with tfds.core.registered.skip_registration():

    class TinyDigits(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version("1.0.0")

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1)),
            "label": tfds.features.ClassLabel(num_classes=3)}))

      def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in examples}

      def _generate_examples(self, split):
        # Without TensorFlow, TFDS cannot PNG-encode arrays itself: hand it encoded bytes.
        for key, (image, label) in enumerate(examples[split]):
          yield key, {"image": _png(image[..., 0]), "label": label}

  data_dir = tmp_path_factory.mktemp("tfds")
  TinyDigits(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return data_dir, examples


def _as_sorted(records):
  return sorted((int(label), image.tobytes()) for image, label in records)


def test_tfds_source_reads_generated_records(tiny_tfds):
  data_dir, examples = tiny_tfds
  for split in ("train", "test"):
    source = sources.TfdsSource("tiny_digits", split, data_dir=data_dir)
    records = [source[i] for i in range(len(source))]
    assert all(r["image"].dtype == np.uint8 and r["image"].shape == (8, 8, 1) for r in records)
    assert all(r["label"].dtype == np.int32 for r in records)
    assert _as_sorted((r["image"], r["label"]) for r in records) == _as_sorted(examples[split])


def test_tfds_source_missing_label_key_is_unlabelled(tiny_tfds):
  source = sources.TfdsSource("tiny_digits", "test", data_dir=tiny_tfds[0], label_key="none")
  assert source[0]["label"] == -1


def test_tfds_source_pickle_round_trip(tiny_tfds):
  source = sources.TfdsSource("tiny_digits", "train", data_dir=tiny_tfds[0])
  payload = pickle.dumps(source)
  assert len(payload) < 20_000
  clone = pickle.loads(payload)
  assert len(clone) == len(source)
  for i in range(len(source)):
    np.testing.assert_array_equal(clone[i]["image"], source[i]["image"])
    assert clone[i]["label"] == source[i]["label"]


def test_tfds_source_errors(tiny_tfds, tmp_path):
  data_dir = tiny_tfds[0]
  with pytest.raises(ValueError, match="'no_such_dataset' not found") as info:
    sources.TfdsSource("no_such_dataset", "train", data_dir=data_dir)
  assert "\n" not in str(info.value)
  with pytest.raises(ValueError, match="not prepared.*tfds build mnist"):
    sources.TfdsSource("mnist", "train", data_dir=tmp_path)
  with pytest.raises(ValueError, match="Unknown split 'valid'"):
    sources.TfdsSource("tiny_digits", "valid", data_dir=data_dir)
  with pytest.raises(ValueError, match="no feature 'img'"):
    sources.TfdsSource("tiny_digits", "train", data_dir=data_dir, image_key="img")


def test_tfds_source_rejects_tfrecord_data(tiny_tfds, tmp_path):
  copy = tmp_path / "tiny_digits" / "1.0.0"
  copy.mkdir(parents=True)
  for path in (tiny_tfds[0] / "tiny_digits" / "1.0.0").iterdir():
    (copy / path.name).write_bytes(path.read_bytes())
  info = json.loads((copy / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (copy / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="stored as tfrecord: rebuild"):
    sources.TfdsSource("tiny_digits", "train", data_dir=tmp_path)


# --- make_source ----------------------------------------------------------------------------


def test_make_source_mnist_with_split_mapping():
  cfg = ml_collections.ConfigDict({"source": "mnist_embedded", "splits": {"eval": "test"}})
  assert len(sources.make_source(cfg, "eval")) == 1000
  assert (sources.make_source(cfg, "pretrain").labels == -1).all()
  with pytest.raises(ValueError, match=r"no split 'valid'.*\['pretrain', 'test', 'train'\]"):
    sources.make_source(cfg, "valid")


def test_make_source_arrays():
  images = np.zeros((3, 5, 5, 3), np.uint8)
  cfg = {"source": "arrays", "arrays": {"train": (images, np.array([0, 1, 2]))}}
  assert sources.make_source(cfg, "train")[2]["label"] == 2
  with pytest.raises(ValueError, match="needs cfg.arrays"):
    sources.make_source({"source": "arrays"}, "train")


def test_make_source_folder_uses_split_subfolder(tmp_path):
  _write_image(tmp_path / "train" / "a.png", (10, 10, 3), 0)
  _write_image(tmp_path / "train" / "b.png", (10, 10, 3), 1)
  _write_image(tmp_path / "test" / "c.png", (10, 10, 3), 2)
  cfg = ml_collections.ConfigDict({"source": "folder", "path": str(tmp_path), "channels": 1,
                                   "splits": {"pretrain": "train"}})
  pretrain = sources.make_source(cfg, "pretrain")
  assert len(pretrain) == 2 and pretrain[0]["image"].shape == (10, 10, 1)
  assert len(sources.make_source(cfg, "test")) == 1
  whole = sources.make_source({"source": "folder", "path": str(tmp_path / "test")}, "train")
  assert len(whole) == 1


def test_make_source_tfds(tiny_tfds):
  cfg = {"source": "tfds", "name": "tiny_digits", "data_dir": str(tiny_tfds[0]),
         "splits": {"pretrain": "train"}}
  assert len(sources.make_source(cfg, "pretrain")) == 5


def test_make_source_unknown_kind():
  with pytest.raises(ValueError, match="Unknown data source 'hdf5'.*'arrays', 'folder'"):
    sources.make_source({"source": "hdf5"}, "train")
