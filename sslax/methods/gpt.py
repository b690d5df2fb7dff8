"""GPT's causal language model: Radford et al. 2018 and 2019 ("Improving Language Understanding
by Generative Pre-Training", "Language Models are Unsupervised Multitask Learners").

A decoder-only Transformer reads packed sequences of the corpus (documents joined by [SEP]) and
predicts every next token under a causal mask; the loss is the mean next-token cross-entropy,
reported with its perplexity. The output matrix is the token embedding when
`model.text.tie_embeddings` (GPT-2), else its own.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslax import losses
from sslax.data import text_corpus, text_ops
from sslax.methods.mlm import mean_pool, text_encoder


class Method:
  """config.model.text; config.data.{source, path, vocab_size, seq_len, heldout_fraction,
  tokenizer}."""

  tokenizer_kind = "bpe"

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.decoder = text_encoder(config, causal=True, num_segments=0)

  def data(self, split: str, workdir: str) -> tuple[Any, Any]:
    """Packed chunks of the training ("pretrain") or held-out ("heldout") articles."""
    corpus = text_corpus.prepare(self.config.data, workdir, self.tokenizer_kind,
                                 self.config.seed)
    docs = corpus.train if split == "pretrain" else corpus.heldout
    records = text_corpus.packed_records(docs, self.config.data.seq_len)
    records.report = corpus.report
    return records, text_corpus.NextTokenExample()

  def _hidden(self, params, input_ids, train, rng=None):
    rngs = {"dropout": rng} if train else {}
    return self.decoder.apply({"params": params["decoder"]}, input_ids, train=train, rngs=rngs)

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    params = self.decoder.init(rng, batch["input_ids"], train=False)["params"]
    return {"decoder": params}, {}, {}

  def logits(self, params, input_ids):
    """Next-token logits [B, T, V] in float32, inference mode."""
    hidden = self._hidden(params, input_ids, train=False)
    return self.decoder.apply({"params": params["decoder"]}, hidden,
                              method=self.decoder.lm_logits).astype(jnp.float32)

  def _losses(self, params, batch, train, rng=None):
    hidden = self._hidden(params, batch["input_ids"], train=train, rng=rng)
    logits = self.decoder.apply({"params": params["decoder"]}, hidden,
                                method=self.decoder.lm_logits)
    loss, accuracy = losses.token_cross_entropy(logits, batch["targets"])
    return {"lm_loss": loss, "next_token_accuracy": accuracy, "perplexity": jnp.exp(loss)}

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    metrics = self._losses(params, batch, train=True, rng=rng)
    return metrics["lm_loss"], (metrics, model_state, extra)

  def loss_weight(self, batch):
    """The labelled targets: the loss is their mean, so accumulation weights micro-batches by it."""
    return jnp.sum(batch["targets"] != text_ops.IGNORE_ID)

  def pretext_metrics(self, params, model_state, batch):
    """Next-token loss, accuracy and perplexity without dropout (held-out evaluation)."""
    del model_state
    return self._losses(params, batch, train=False)

  def encode_sentences(self, sentences, seq_len):
    """Token-id sentences -> a feature batch: each sentence padded (cut to fit)."""
    ids, mask = text_ops.pad_batch(sentences, seq_len)
    return {"input_ids": ids, "attention_mask": mask}

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, batch, level="encoder"):
    """Sequence features [B, D]: the mean of the final states over real tokens."""
    del model_state, level
    hidden = self._hidden(params, batch["input_ids"], train=False)
    mask = batch.get("attention_mask", jnp.ones(batch["input_ids"].shape, jnp.int32))
    return mean_pool(hidden, mask)
