"""CLIP: the loss against numpy, the logit-scale clamp, global-batch negatives (8 devices == 1),
EOS pooling, the four pair sources, zero-shot and retrieval against brute force, train +
evaluate end to end."""
import io
import json
import math
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from method_harness import REPO, assert_eight_devices_match_one
from PIL import Image

from sslax import config as config_lib
from sslax import evaluate, losses, parallel, train
from sslax import state as state_lib
from sslax.data import pairs, pipeline, tokenizer
from sslax.evals import probe_data, zeroshot
from sslax.methods import get_method
from sslax.models.dual_tower import pool_text
from sslax.step import make_train_step

TINY = f"{REPO}/configs/clip_mnist.py:tiny"


def _numpy_clip_loss(image, text, logit_scale, max_scale=100.0):
  i = image / np.linalg.norm(image, axis=1, keepdims=True)
  t = text / np.linalg.norm(text, axis=1, keepdims=True)
  logits = min(math.exp(logit_scale), max_scale) * i.astype(np.float64) @ t.T

  def cross_entropy(rows):  # Row r's target is column r.
    shifted = rows - rows.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -np.mean(np.diagonal(log_probs))

  return 0.5 * (cross_entropy(logits) + cross_entropy(logits.T))


def test_clip_loss_matches_numpy_and_its_negatives_span_the_sharded_global_batch():
  rng = np.random.default_rng(0)
  image, text = rng.normal(size=(16, 6)), rng.normal(size=(16, 6))
  for scale in (0.0, math.log(1 / 0.07)):
    np.testing.assert_allclose(losses.clip_loss(image, text, scale),
                               _numpy_clip_loss(image, text, scale), rtol=1e-5)
  # Sharded over 8 devices, every row of the other shards is a negative: the same value.
  mesh = parallel.make_mesh({"data": -1})
  rows = NamedSharding(mesh, P("data"))
  sharded = jax.jit(losses.clip_loss)(jax.device_put(image.astype(np.float32), rows),
                                      jax.device_put(text.astype(np.float32), rows), 2.0)
  np.testing.assert_allclose(sharded, _numpy_clip_loss(image, text, 2.0), rtol=1e-5)
  # bf16 embeddings still give a float32 loss.
  assert losses.clip_loss(jnp.asarray(image, jnp.bfloat16), text, 2.0).dtype == jnp.float32


def test_logit_scale_is_clamped_at_100():
  rng = np.random.default_rng(1)
  image, text = rng.normal(size=(8, 4)), rng.normal(size=(8, 4))
  at_clamp = losses.clip_loss(image, text, math.log(100.0))
  np.testing.assert_allclose(losses.clip_loss(image, text, 10.0), at_clamp, rtol=1e-6)
  np.testing.assert_allclose(at_clamp, _numpy_clip_loss(image, text, 10.0), rtol=1e-5)
  grad = jax.grad(losses.clip_loss, argnums=2)
  assert float(grad(image, text, 10.0)) == 0.0 and float(grad(image, text, 2.0)) != 0.0


def test_eos_pooling_ignores_padding_and_the_logit_scale_starts_at_1_over_007(tmp_path):
  hidden = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  np.testing.assert_array_equal(pool_text(hidden, mask, "eos"), hidden[[0, 1], [2, 4]])
  np.testing.assert_array_equal(pool_text(hidden, mask, "cls"), hidden[:, 0])
  np.testing.assert_allclose(pool_text(hidden, mask, "mean")[0], hidden[0, :3].mean(0))
  config = config_lib.load_config(TINY)
  method = get_method(config)
  tok = method.tokenizer(str(tmp_path))
  assert (tmp_path / "tokenizer.json").exists()
  short = pairs.tokenize_captions(tok, ["a handwritten 7.", "the number seven."], 10)
  assert np.all(short["input_ids"][:, 0] == tokenizer.CLS_ID)
  last = short["attention_mask"].sum(1) - 1
  assert np.all(short["input_ids"][[0, 1], last] == tokenizer.SEP_ID)
  longer = pairs.tokenize_captions(tok, ["a handwritten 7.", "the number seven."], 16)
  batch = {"image": jnp.zeros((2, 28, 28, 1)), **longer}
  params, state, _ = jax.jit(method.init)(jax.random.key(0), batch)
  np.testing.assert_allclose(params["logit_scale"], math.log(1 / 0.07), rtol=1e-6)
  assert params["logit_scale"].shape == ()  # 0-d: never weight-decayed (optim.decay_mask).
  text = jax.jit(lambda inputs: method.features(params, state, inputs, "text"))
  np.testing.assert_allclose(text(short), text(longer), atol=1e-5)


def test_eight_devices_match_one_with_global_negatives(tmp_path):
  assert_eight_devices_match_one(config_lib.load_config(TINY), workdir=str(tmp_path))


@pytest.mark.slow
def test_gradient_accumulation_is_gradcache_and_equals_the_full_batch_step():
  config = config_lib.load_config(TINY)  # A ViT: no batch norm couples a micro-batch's rows.
  config.model.encoder = dict(name="vit_tiny", patch_size=7, hidden_dim=16, depth=1,
                              num_heads=2, mlp_dim=32, dtype="float32")
  method = get_method(config)
  rng = np.random.default_rng(3)
  ids = rng.integers(5, 40, (32, 16)).astype(np.int32)
  mask = (np.arange(16) < rng.integers(3, 16, (32, 1))).astype(np.int32)
  batch = {"image": rng.normal(size=(32, 28, 28, 1)).astype(np.float32),
           "input_ids": ids * mask, "attention_mask": mask}
  mesh = parallel.make_mesh({"data": -1})
  tx = optax.sgd(1.0)
  sample = jax.tree.map(lambda x: x[:2], batch)
  _, shardings = state_lib.state_shardings(method, tx, sample, 0, mesh, ())
  runs = []
  for k in (1, 4):
    state = state_lib.create_state(method, tx, sample, 0, shardings)
    step = make_train_step(method, tx, lambda s: 1.0, mesh, shardings, k)
    runs.append(jax.device_get(step(state, parallel.to_global(batch, mesh))))
  (full, full_metrics), (accumulated, metrics) = runs
  np.testing.assert_allclose(metrics["loss"], full_metrics["loss"], rtol=1e-6)
  assert full["params"]["logit_scale"] != np.float32(math.log(1 / 0.07))  # It has a gradient.
  for a, b in zip(jax.tree.leaves(accumulated["params"]), jax.tree.leaves(full["params"]),
                  strict=True):  # Steps of SGD(1.0) move parameters by up to ~10.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_embedded_digits_draw_one_templated_caption_per_example_and_epoch(tmp_path):
  source = pairs.make_pair_source({"source": "mnist_embedded"}, "pretrain")
  heldout = pairs.make_pair_source({"source": "mnist_embedded"}, "heldout")
  assert (len(source), len(heldout)) == (4000, 1000)
  record = next(source[i] for i in range(len(source)) if source[i]["label"] == 7)
  assert len(record["captions"]) == 2 * len(pairs.DIGIT_TEMPLATES)
  assert {"a handwritten 7.", "a photo of the digit seven."} <= set(record["captions"])
  config = config_lib.load_config(TINY)
  method = get_method(config)
  records, transform = method.data("pretrain", str(tmp_path))
  # Online evaluation and plots read the labelled digits through probe_data: 64 of each split
  # (data.probe_examples), spread over the classes.
  splits = probe_data.labelled_splits(method, config, str(tmp_path), {})
  assert splits.train_x.shape == (64, 28, 28, 1) and splits.num_classes == 10
  assert set(splits.train_y.tolist()) == set(splits.test_y.tolist()) == set(range(10))
  tok = tokenizer.load_tokenizer(str(tmp_path / "tokenizer.json"))
  # The pipeline's first two epochs over the same record: captions drawn anew, reproducibly.
  stream = pipeline.train_dataset(records, transform, 1, config.seed)
  drawn = [tokenizer.decode(tok, stream[epoch * len(records)]["input_ids"][0])
           for epoch in range(6)]
  assert len(set(drawn)) > 1 and drawn == [
      tokenizer.decode(tok, stream[e * len(records)]["input_ids"][0]) for e in range(6)]
  example = stream[0]
  assert example["image"].shape == (1, 28, 28, 1)
  assert example["input_ids"].shape == example["attention_mask"].shape == (1, 16)


def _png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def _image(value: int) -> np.ndarray:
  return np.full((12, 12, 3), value, np.uint8)


def test_folder_pairs_keep_captioned_images_and_count_the_rest(tmp_path):
  for name, value in (("cat", 10), ("dog", 200)):
    (tmp_path / name).mkdir()
    (tmp_path / name / "a.png").write_bytes(_png(_image(value)))
    (tmp_path / name / "a.txt").write_text(f"a {name}\n\na small {name}\n")
  (tmp_path / "cat" / "nocap.png").write_bytes(_png(_image(1)))
  (tmp_path / "dog" / "empty.png").write_bytes(_png(_image(2)))
  (tmp_path / "dog" / "empty.txt").write_text(" \n")
  (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
  (tmp_path / "dog" / "broken.txt").write_text("a broken dog")
  source = pairs.make_pair_source({"source": "folder", "path": str(tmp_path)}, "pretrain")
  assert source.report == {"found": 5, "missing_caption": 1, "empty_caption": 1,
                           "missing_image": 0, "corrupt_image": 1, "kept": 2}
  assert source.class_names == ("cat", "dog")
  cat, dog = source[0], source[1]
  assert cat["captions"] == ("a cat", "a small cat") and cat["label"] == 0
  assert dog["captions"] == ("a dog", "a small dog") and dog["label"] == 1
  np.testing.assert_array_equal(dog["image"], _image(200))
  assert sorted(source.texts()) == ["a cat", "a dog", "a small cat", "a small dog"]
  with pytest.raises(FileNotFoundError, match="data.path"):
    pairs.make_pair_source({"source": "folder", "path": str(tmp_path / "none")}, "pretrain")
  # The method trains its tokenizer on these captions and builds examples and prompts from them.
  config = config_lib.load_config(TINY)
  config.data = {**config.data.to_dict(), "source": "folder", "path": str(tmp_path),
                 "heldout_path": str(tmp_path)}
  method, workdir = get_method(config), tmp_path / "run"
  records, transform = method.data("pretrain", str(workdir))
  batch = pipeline.sample_batch(records, transform)
  assert batch["image"].shape == (2, 28, 28, 3)
  tok = method.tokenizer(str(workdir))
  assert tokenizer.decode(tok, batch["input_ids"][0]) in ("a cat", "a small cat")
  data = method.pair_eval_data(str(workdir), {"retrieval_examples": 10})
  assert data.class_names == ("cat", "dog") and data.templates == pairs.GENERIC_PROMPTS
  prompts = [tokenizer.decode(tok, ids) for ids in data.prompts["input_ids"]]
  assert len(prompts) == 2 * len(data.templates)  # Class-major: cat's templates, then dog's.
  assert all("cat" in p for p in prompts[:len(data.templates)])
  assert all("dog" in p for p in prompts[len(data.templates):])
  np.testing.assert_array_equal(data.splits.test_y, [0, 1])
  assert data.pair_images.shape == (2, 28, 28, 3) and data.pair_texts["input_ids"].shape == (2, 16)


def test_jsonl_and_tsv_pairs(tmp_path):
  (tmp_path / "img").mkdir()
  for i in range(3):
    (tmp_path / "img" / f"{i}.png").write_bytes(_png(_image(50 * i)))
  (tmp_path / "img" / "bad.png").write_bytes(b"\x89PNG broken")
  lines = [{"image": "img/0.png", "caption": "zero", "label": "a"},
           {"image": "img/1.png", "caption": ["one", "uno", ""], "label": "b"},
           {"image": "img/2.png", "caption": "   ", "label": "a"},
           {"image": "img/missing.png", "caption": "gone"},
           {"image": "img/bad.png", "caption": "bad"}]
  (tmp_path / "train.jsonl").write_text(
      "\n".join(json.dumps(line) for line in lines) + "\n{not json\n[1, 2]\n")
  source = pairs.make_pair_source({"source": "pairs_file", "path": str(tmp_path / "train.jsonl")},
                                  "pretrain")
  assert source.report == {"lines": 7, "malformed": 2, "empty_caption": 1, "missing_image": 1,
                           "corrupt_image": 1, "kept": 2}
  assert [source[i]["captions"] for i in range(2)] == [("zero",), ("one", "uno")]
  assert source.class_names == ("a", "b") and [int(source[i]["label"]) for i in (0, 1)] == [0, 1]
  # TSV, held out: labels map to the training classes, an unknown one is -1; header skipped.
  (tmp_path / "test.tsv").write_text("image\tcaption\tlabel\nimg/2.png\ttwo\tb\n"
                                     "img/0.png\tnought\tz\nimg/1.png\n")
  cfg = {"source": "pairs_file", "path": str(tmp_path / "train.jsonl"),
         "heldout_path": str(tmp_path / "test.tsv")}
  heldout = pairs.make_pair_source(cfg, "heldout", classes=source.class_names)
  assert heldout.report["malformed"] == 1 and len(heldout) == 2
  assert [(heldout[i]["captions"], int(heldout[i]["label"])) for i in (0, 1)] == [
      (("two",), 1), (("nought",), -1)]
  np.testing.assert_array_equal(heldout[0]["image"], _image(100))
  with pytest.raises(ValueError, match=r"\.jsonl or \.tsv"):
    pairs.make_pair_source({"source": "pairs_file", "path": str(tmp_path / "x.csv")}, "pretrain")


@pytest.fixture(scope="module")
def tiny_pairs_tfds(tmp_path_factory):
  """A prepared array_record TFDS dataset of 8x8 images, captions and 3 classes."""
  import tensorflow_datasets as tfds

  captions = ["a dark square", "", "a grey square", "a light square"]
  with tfds.core.registered.skip_registration():

    class TinyPairs(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version("1.0.0")

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3)), "caption": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=["dark", "grey", "light"])}))

      def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

      def _generate_examples(self):
        for i, caption in enumerate(captions):
          yield i, {"image": _png(np.full((8, 8, 3), 60 * i, np.uint8)), "caption": caption,
                    "label": min(i, 2)}

  data_dir = tmp_path_factory.mktemp("tfds_pairs")
  TinyPairs(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return str(data_dir)


def test_tfds_pairs_skip_empty_captions_and_pickle_small(tiny_pairs_tfds):
  cfg = {"source": "tfds", "name": "tiny_pairs", "data_dir": tiny_pairs_tfds, "split": "train"}
  source = pairs.make_pair_source(cfg, "pretrain")
  assert source.report == {"pairs": 4, "empty_caption": 1, "kept": 3}
  assert source.class_names == ("dark", "grey", "light")
  got = sorted((int(source[i]["label"]), source[i]["captions"], int(source[i]["image"][0, 0, 0]))
               for i in range(3))
  assert got == [(0, ("a dark square",), 0), (2, ("a grey square",), 120),
                 (2, ("a light square",), 180)]
  clone = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(clone[1]["image"], source[1]["image"])
  with pytest.raises(ValueError, match="no text feature 'text'"):
    pairs.make_pair_source({**cfg, "text_key": "text"}, "pretrain")


def test_zeroshot_and_retrieval_match_brute_force():
  rng = np.random.default_rng(2)
  classes, templates, dim = 4, 3, 5
  prompts = rng.normal(size=(classes * templates, dim))
  images = rng.normal(size=(30, dim))
  labels = rng.integers(0, classes, 30)
  class_emb = zeroshot.class_embeddings(prompts, templates)
  for c in range(classes):
    unit = [p / np.linalg.norm(p) for p in prompts[c * templates:(c + 1) * templates]]
    mean = np.mean(unit, axis=0)
    np.testing.assert_allclose(class_emb[c], mean / np.linalg.norm(mean), rtol=1e-12)
  predicted = zeroshot.zeroshot_predict(images, class_emb)
  cos = [[image @ e / np.linalg.norm(image) for e in class_emb] for image in images]
  np.testing.assert_array_equal(predicted, np.argmax(cos, axis=1))
  texts = images + 0.7 * rng.normal(size=images.shape)
  scores = zeroshot.pair_retrieval(images, texts, labels)
  unit_i = images / np.linalg.norm(images, axis=1, keepdims=True)
  unit_t = texts / np.linalg.norm(texts, axis=1, keepdims=True)
  sims = unit_i @ unit_t.T
  for k in (1, 5, 10):
    i2t = np.mean([np.sum(np.delete(sims[i], i) >= sims[i, i]) < k for i in range(30)])
    t2i = np.mean([np.sum(np.delete(sims[:, i], i) >= sims[i, i]) < k for i in range(30)])
    same = np.mean([(labels[np.argsort(-sims[i])[:k]] == labels[i]).any() for i in range(30)])
    assert scores[f"image_to_text_recall@{k}"] == i2t
    assert scores[f"text_to_image_recall@{k}"] == t2i
    assert scores[f"image_to_text_same_class@{k}"] == same
  assert 0 < scores["image_to_text_recall@1"] < scores["image_to_text_recall@10"] < 1
  assert "image_to_text_same_class@1" not in zeroshot.pair_retrieval(images, texts, -labels - 1)


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path):
  config = config_lib.load_config(TINY)
  train.train(config, str(tmp_path))
  results = evaluate.evaluate(str(tmp_path))
  assert results["train_examples"] == results["test_examples"] == 64
  assert results["retrieval_pairs"] == 48 and results["classes"][7] == "seven"
  for prefix in ("", "random_init_"):
    for key in ("zeroshot_top1", "image_to_text_recall@10", "text_to_image_recall@1",
                "knn_top1", "linear_top1"):
      assert 0.0 <= results[prefix + key] <= 1.0
    assert np.isfinite(results[prefix + "heldout_loss"])
  assert results["heldout_loss"] != results["random_init_heldout_loss"]
  assert "raw_pixels_knn_top1" in results
  table = (tmp_path / "eval_results.md").read_text()
  assert "zero-shot top-1" in table and "Zero-shot (image-text methods)" in table
  assert os.path.exists(tmp_path / "eval_results.json")
