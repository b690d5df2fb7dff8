"""Recommendation: interaction parsing, leave-one-out, CL4SRec augmentations, ranking metrics,
SASRec's next-item and CL4SRec's contrastive losses against numpy, 8 devices == 1, and a tiny
train + evaluate run on the embedded MovieLens-100k."""
import jax
import method_harness
import numpy as np
import pytest

from sslax import config as config_lib
from sslax import evaluate, train
from sslax.data import interactions, sequence_ops
from sslax.evals import ranking
from sslax.methods import get_method

REPO = method_harness.REPO
LOG = """user_id:token\titem_id:token\trating:float\ttimestamp:float
u1\tA\t5\t30
u1\tB\t4\t10
u2\tA\t3\t5
u1\tC\t1\t20
broken line
u2\tC\t2\t5
u2\tD\t2\tnot-a-time
u1\tD\t3\t40
u2\tB\t4\t7
u3\tB\t4\t1
\tA\t1\t2
u3\tD\t5\t3
"""


@pytest.fixture
def log_path(tmp_path):
  path = tmp_path / "log.inter"
  path.write_text(LOG)
  return str(path)


def test_parse_and_leave_one_out_exact(log_path):
  log = interactions.read_log(log_path, rating="rating")
  assert log.skipped == 3  # Too few fields, a non-numeric time, an empty user.
  assert log.users == ["u1", "u1", "u2", "u1", "u2", "u1", "u2", "u3", "u3"]
  np.testing.assert_array_equal(log.ratings, [5, 4, 3, 1, 2, 3, 4, 4, 5])
  split = interactions.leave_one_out(log)
  # Time order: u3:B@1, u3:D@3, u2:A@5, u2:C@5 (tie: file order), u2:B@7, u1:B@10, C@20, A@30,
  # D@40; ids by first appearance: B=1, D=2, A=3, C=4.
  assert split.item_tokens == ["B", "D", "A", "C"] and split.num_items == 4
  # Users in order of their first interaction: u3, u2 (2 ratings: all train), u1.
  assert [seq.tolist() for seq in split.train] == [[1, 2], [3], [1, 4]]
  np.testing.assert_array_equal(split.valid, [0, 4, 3])
  np.testing.assert_array_equal(split.test, [0, 1, 2])
  assert len(interactions.train_records(split)) == 2  # u2 has one training item: no pair.


def test_columns_by_index_and_filters(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text("1,10,100\n1,11,101\n1,12,102\n2,10,50\n2,11,51\n3,12,1\n3,13,2\n")
  log = interactions.read_log(str(path), user=0, item=1, time=2, header=False)
  assert log.skipped == 0 and len(log.users) == 7
  # Min 2: item 13 goes, then user 3 (one item left), then item 12 (one user left): k-core
  # filtering repeats until nothing changes. Left: users 2 and 1 with items 10 -> 1, 11 -> 2.
  split = interactions.leave_one_out(log, min_user=2, min_item=2)
  assert split.num_items == 2 and [s.tolist() for s in split.train] == [[1, 2], [1, 2]]
  with pytest.raises(ValueError, match="no header"):
    interactions.read_log(str(path), header=False)
  with pytest.raises(FileNotFoundError, match="set data.path"):
    interactions.read_log(str(tmp_path / "missing.csv"))


def test_next_item_example_pads_and_shifts():
  example = interactions.NextItemExample(4, 9).random_map({"items": np.array([5, 6, 7])},
                                                          np.random.default_rng(0))
  np.testing.assert_array_equal(example["input_ids"], [0, 0, 5, 6])
  np.testing.assert_array_equal(example["targets"], [0, 0, 6, 7])
  long = interactions.NextItemExample(2, 9).random_map({"items": np.arange(1, 7)},
                                                       np.random.default_rng(0))
  np.testing.assert_array_equal(long["input_ids"], [4, 5])
  np.testing.assert_array_equal(long["targets"], [5, 6])


def test_augmentations():
  items = np.arange(1, 21, dtype=np.int32)
  for seed in range(20):
    rng = np.random.default_rng(seed)
    cropped = sequence_ops.crop(items, rng, 0.6)
    assert len(cropped) == 12 and np.all(np.diff(cropped) == 1)  # A contiguous run.
    masked = sequence_ops.mask(items, rng, 0.3, 99)
    assert (masked == 99).sum() == 6
    np.testing.assert_array_equal(masked[masked != 99], items[masked != 99])
    shuffled = sequence_ops.reorder(items, rng, 0.6)
    np.testing.assert_array_equal(np.sort(shuffled), items)  # Same multiset.
    moved = np.flatnonzero(shuffled != items)
    assert len(moved) == 0 or moved[-1] - moved[0] < 12  # Only inside one run of 12.
  assert len(sequence_ops.crop(np.array([3]), np.random.default_rng(0), 0.2)) == 1
  kinds = {len(sequence_ops.random_view(items, np.random.default_rng(s), 99, 0.6, 0.3, 0.6))
           for s in range(30)}
  assert kinds == {12, 20}  # Crops and same-length masks/reorders both drawn.


def test_hit_and_ndcg_against_hand_computed():
  scores = np.array([[0.9, 0.1, 0.5, 0.3],   # target col 2: one item above -> rank 1
                     [0.2, 0.2, 0.1, 0.0],   # target col 1: tie with col 0 -> rank 1
                     [0.0, 0.1, 0.2, 0.3]])  # target col 0: three above -> rank 3
  ranks = ranking.target_ranks(scores, np.array([2, 1, 0]))
  np.testing.assert_array_equal(ranks, [1, 1, 3])
  got = ranking.hit_ndcg(ranks, [1, 2, 4])
  assert got["hr@1"] == 0 and got["hr@2"] == pytest.approx(2 / 3) and got["hr@4"] == 1
  assert got["ndcg@2"] == pytest.approx(2 / np.log2(3) / 3)
  assert got["ndcg@4"] == pytest.approx((2 / np.log2(3) + 1 / np.log2(5)) / 3)
  # History items (1-based ids) but the target are removed: row 2 loses items 2 and 3.
  masked = ranking.mask_history(scores, [np.array([1]), np.array([2]), np.array([1, 2, 3])],
                                np.array([2, 1, 0]))
  assert np.isneginf(masked[0, 0]) and masked[1, 1] == 0.2 and masked[2, 0] == 0.0
  assert ranking.target_ranks(masked, np.array([2, 1, 0]))[2] == 1


def _tiny_method(log_path, weight=0.3, dropout=0.0):
  config = config_lib.load_config(f"{REPO}/configs/cl4srec_ml100k.py:tiny")
  config.data.source, config.data.path = "file", log_path
  config.sasrec.contrastive_weight = weight
  config.model.text.dropout_rate = dropout
  return get_method(config)


def _nt_xent_reference(a, b, temperature):
  z = np.concatenate([a, b]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  logits = z @ z.T / temperature
  np.fill_diagonal(logits, -np.inf)
  n = len(a)
  positive = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
  log_norm = np.log(np.exp(logits).sum(1))
  return -np.mean(logits[np.arange(2 * n), positive] - log_norm)


def test_losses_against_numpy(log_path):
  method = _tiny_method(log_path)
  batch = {"input_ids": np.array([[0, 0, 0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 3, 4, 1]]),
           "targets": np.array([[0, 0, 0, 0, 0, 0, 2, 3], [0, 0, 0, 0, 0, 4, 1, 2]]),
           "view_a": np.array([[0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 3, 5, 1]]),
           "view_b": np.array([[0, 0, 0, 0, 0, 0, 2, 1], [0, 0, 0, 0, 0, 0, 4, 1]])}
  params, state, extra = method.init(jax.random.key(0), batch)
  # Jitted: one cached compilation instead of many eager ops.
  loss, (metrics, _, _) = jax.jit(method.loss)(params, state, extra, batch, jax.random.key(1), 0)
  hidden = np.asarray(jax.jit(method.hidden, static_argnames="train")(
      params, batch["input_ids"], train=False), np.float64)
  table = np.asarray(params["encoder"]["token_embed"]["embedding"], np.float64)
  logits = hidden @ table[1:5].T  # Items 1..4: neither padding nor the mask token (5).
  rows, cols = np.nonzero(batch["targets"])
  picked = logits[rows, cols, batch["targets"][rows, cols] - 1]
  log_norm = np.log(np.exp(logits[rows, cols]).sum(-1))
  next_ref = np.mean(log_norm - picked)
  np.testing.assert_allclose(metrics["next_item_loss"], next_ref, rtol=1e-5)
  ends = [np.asarray(jax.jit(method.features)(params, state, batch[k]), np.float64)
          for k in ("view_a", "view_b")]
  contrastive_ref = _nt_xent_reference(*ends, method.temperature)
  np.testing.assert_allclose(metrics["contrastive_loss"], contrastive_ref, rtol=1e-5)
  np.testing.assert_allclose(loss, next_ref + 0.3 * contrastive_ref, rtol=1e-5)
  plain = _tiny_method(log_path, weight=0.0)
  plain_loss, (plain_metrics, _, _) = jax.jit(plain.loss)(params, state, extra, batch,
                                                          jax.random.key(1), 0)
  np.testing.assert_allclose(plain_loss, next_ref, rtol=1e-5)
  assert "contrastive_loss" not in plain_metrics


def test_contrastive_eight_devices_match_one():
  """Global negatives: the loss curve and state on 8 devices equal one device's."""
  config = config_lib.load_config(f"{REPO}/configs/cl4srec_ml100k.py:tiny")
  method_harness.assert_eight_devices_match_one(config, num_steps=3)


@pytest.mark.slow
def test_tiny_train_and_evaluate(tmp_path):
  config = config_lib.load_config(f"{REPO}/configs/cl4srec_ml100k.py:tiny")
  train.train(config, str(tmp_path))
  results = evaluate.evaluate(str(tmp_path))
  assert results["users"] == 943 and results["items"] == 1682
  for prefix in ("", "random_init_", "popularity_"):
    for split in ("valid", "test"):
      for protocol in ("", "unseen_"):
        key = f"{prefix}{split}_{protocol}"
        hr = [results[f"{key}hr@{k}"] for k in (5, 10, 20)]
        assert 0 <= hr[0] <= hr[1] <= hr[2] <= 1 and results[f"{key}ndcg@10"] <= hr[1]
  # Popularity needs no training: it beats chance (10 / 1682 = 0.006) on ml-100k.
  assert results["popularity_test_hr@10"] > 0.03
  assert (tmp_path / "eval_results.md").exists()
