"""BERT (mlm) and GPT (gpt) on the embedded Wikipedia sample with tiny models: the examples the
pipeline builds, the losses against a direct computation, 8 devices == 1, train + resume."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from method_harness import REPO, assert_eight_devices_match_one

from sslax import checkpoint, evaluate, metrics, train
from sslax import config as config_lib
from sslax.data import pipeline, text_ops, tokenizer
from sslax.methods import get_method, mlm

BERT_TINY = f"{REPO}/configs/bert_wiki.py:tiny"
GPT_TINY = f"{REPO}/configs/gpt_wiki.py:tiny"


def _batch(config_path, workdir, **overrides):
  config = config_lib.load_config(config_path, **overrides)
  method = get_method(config)
  source, views = train.pretrain_data(method, config, str(workdir))
  batch = pipeline.train_dataset(source, views, config.batch_size, config.seed)[0]
  return config, method, source, jax.tree.map(jnp.asarray, batch)


def test_bert_examples_are_masked_pairs_with_a_tokenizer_in_the_workdir(tmp_path):
  config, _, source, batch = _batch(BERT_TINY, tmp_path)
  assert os.path.exists(tmp_path / "tokenizer.json")
  assert source.report["train_articles"] + source.report["heldout_articles"] == \
      source.report["kept"]
  ids, labels = np.asarray(batch["input_ids"]), np.asarray(batch["mlm_labels"])
  assert ids.shape == labels.shape == (config.batch_size, config.data.seq_len)
  assert np.all(ids[:, 0] == tokenizer.CLS_ID)
  real = np.asarray(batch["attention_mask"]) == 1
  assert np.all(ids[~real] == tokenizer.PAD_ID)
  selected = labels != text_ops.IGNORE_ID
  assert selected.any() and not (selected & ~real).any()  # Padding never carries a label.
  assert np.all(labels[selected] >= tokenizer.NUM_SPECIAL)
  assert set(np.asarray(batch["next_sentence_label"]).tolist()) <= {0, 1}


def test_mlm_loss_is_masked_cross_entropy_plus_nsp(tmp_path):
  config, method, _, batch = _batch(BERT_TINY, tmp_path, **{"mlm.nsp_weight": 0.5})
  params, state, extra = jax.jit(method.init)(jax.random.key(0), batch)
  rng = jax.random.key(1)
  loss, (m, _, _) = jax.jit(method.loss)(params, state, extra, batch, rng, jnp.int32(0))
  # By hand, with the same dropout rng: logits at every position, log-softmax at the labelled
  # ones only (the method gathers at most max_predictions of them per sequence).
  hidden = jax.jit(lambda p: method._hidden(p, batch, train=True, rng=rng))(params)
  mlm_logits = method.mlm_logits(params, hidden)
  nsp_logits = method.nsp_head.apply({"params": params["nsp_head"]}, hidden)
  labels = np.asarray(batch["mlm_labels"])
  assert (labels >= 0).sum(1).max() <= mlm.max_predictions(config)
  rows, cols = np.nonzero(labels >= 0)
  log_probs = np.asarray(jax.nn.log_softmax(mlm_logits, -1))
  mlm_loss = -np.mean(log_probs[rows, cols, labels[rows, cols]])
  nsp = float(optax.softmax_cross_entropy_with_integer_labels(
      nsp_logits, batch["next_sentence_label"]).mean())
  np.testing.assert_allclose(float(m["mlm_loss"]), mlm_loss, rtol=1e-5)
  np.testing.assert_allclose(float(loss), mlm_loss + 0.5 * nsp, rtol=1e-5)
  assert 0 <= float(m["mlm_accuracy"]) <= 1 and 0 <= float(m["nsp_accuracy"]) <= 1


def test_gpt_targets_are_the_inputs_shifted_and_the_loss_is_next_token(tmp_path):
  config, method, _, batch = _batch(GPT_TINY, tmp_path)
  ids, targets = np.asarray(batch["input_ids"]), np.asarray(batch["targets"])
  assert ids.shape == targets.shape == (config.batch_size, config.data.seq_len)
  np.testing.assert_array_equal(ids[:, 1:], targets[:, :-1])
  params, state, extra = jax.jit(method.init)(jax.random.key(0), batch)
  loss, (m, _, _) = jax.jit(method.loss)(params, state, extra, batch, jax.random.key(1),
                                         jnp.int32(0))
  np.testing.assert_allclose(float(m["perplexity"]), np.exp(float(loss)), rtol=1e-5)
  # With dropout off, the loss is the mean negative log-likelihood of the next tokens.
  log_probs = np.asarray(jax.nn.log_softmax(method.logits(params, batch["input_ids"]), -1))
  nll = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
  assert abs(nll - np.log(config.data.vocab_size)) < 0.5  # Near-uniform at initialisation.
  features = method.features(params, state, batch)
  assert features.shape == (config.batch_size, config.model.text["hidden_dim"])


def test_bert_on_8_devices_equals_one(tmp_path):
  # GPT's step differs only in its loss, checked above; the sharded Transformer is checked with
  # tensor parallelism in test_transformer.py.
  assert_eight_devices_match_one(config_lib.load_config(BERT_TINY), workdir=str(tmp_path))


@pytest.mark.slow
def test_text_run_resumes_to_the_same_losses(tmp_path):
  # BERT's examples are the random ones (pairs, masks); GPT's packed records are fixed.
  path = BERT_TINY
  whole = tmp_path / "whole"
  train.train(config_lib.load_config(path), str(whole))
  cut = tmp_path / "cut"
  train.train(config_lib.load_config(path, total_steps=2), str(cut))
  train.train(config_lib.load_config(path), str(cut))  # Resumes at step 2, same tokenizer file.
  assert checkpoint.Checkpointer(str(cut / "checkpoints")).all_steps() == [2, 4]
  losses = [[r["loss"] for r in metrics.read_metrics(d)] for d in (whole, cut)]
  assert len(losses[0]) == 4 and np.all(np.isfinite(losses[0]))
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
  # Evaluation reads the checkpoint and the workdir's tokenizer: held-out pretext metrics and
  # the article probe, for the trained and the initial weights, and the bag-of-tokens baseline.
  results = evaluate.evaluate(str(cut), overrides={
      "evaluators": ["knn", "linear", "pretext", "finetune"], "knn_sweep_ks": []})
  assert results["step"] == 4 and results["test_examples"] > 0
  for prefix in ("", "random_init_", "bag_of_tokens_"):
    for key in ("knn_top1", "linear_top1"):
      assert 0.0 <= results[prefix + key] <= 1.0
  for prefix in ("", "random_init_"):
    assert 0.0 <= results[prefix + "heldout_mlm_accuracy"] <= 1.0
    assert results[prefix + "heldout_mlm_loss"] > 0
  assert results["heldout_mlm_loss"] != results["random_init_heldout_mlm_loss"]
  assert 0.0 <= results["finetune_top1"] <= 1.0 and 0.0 <= results["random_init_finetune_top1"]
  assert results["finetune_protocol"]["steps"] == 3
  # A labelled set of one's own replaces the article task, through the same evaluation.
  rows = [f"the river flows past the old city number {i}\triver" for i in range(10)] + \
      [f"scientists found a new painting in the museum {i}\tart" for i in range(10)]
  (tmp_path / "labels.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
  results = evaluate.evaluate(str(cut), overrides={**evaluate.parse_eval_overrides(
      [f"probe_data.train={tmp_path / 'labels.tsv'}"]), "evaluators": ["linear"]})
  assert results["probe"] == f"2 labels of {tmp_path / 'labels.tsv'}"
  assert (results["train_examples"], results["test_examples"]) == (16, 4)
  assert "finetune_top1" not in results and 0.0 <= results["linear_top1"] <= 1.0


@pytest.mark.slow
def test_gpt_trains_and_evaluates_end_to_end(tmp_path):
  train.train(config_lib.load_config(GPT_TINY), str(tmp_path))
  assert os.path.exists(tmp_path / "tokenizer.json")  # Byte-level BPE, trained into the run.
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [2, 4]
  results = evaluate.evaluate(str(tmp_path), overrides={
      "evaluators": ["knn", "linear", "pretext", "finetune"], "knn_sweep_ks": []})
  assert results["step"] == 4
  for prefix in ("", "random_init_"):
    np.testing.assert_allclose(results[prefix + "heldout_perplexity"],
                               np.exp(results[prefix + "heldout_lm_loss"]), rtol=1e-6)
    for key in ("knn_top1", "linear_top1", "finetune_top1"):
      assert 0.0 <= results[prefix + key] <= 1.0
  # Four steps already lower the held-out perplexity of the tiny model.
  assert results["heldout_perplexity"] < results["random_init_heldout_perplexity"]
