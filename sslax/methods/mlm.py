"""BERT's masked language model with next-sentence prediction: Devlin et al. 2019, "BERT:
Pre-training of Deep Bidirectional Transformers for Language Understanding".

Each example is a sentence pair `[CLS] A [SEP] B [SEP]` from one document, where B follows A
half of the time and comes from another document otherwise (NSP); 15% of its non-special tokens
are selected, of which 80% become [MASK], 10% a random token and 10% stay, drawn anew every time
the example is seen (RoBERTa's dynamic masking, Liu et al. 2019). The loss is
`mlm_weight * MLM + nsp_weight * NSP`: MLM's cross-entropy over the selected tokens of the global
batch, NSP's over the [CLS] pooler. The MLM output matrix is the token embedding (tied).

The MLM head runs only at the selected positions, gathered on device into a fixed
`max_predictions` per sequence (BERT's max_predictions_per_seq; the pipeline caps the selection
at the same number): at 128 tokens and 8k words the [B, T, V] logits of every position cost more
than the encoder itself.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslax import losses
from sslax.data import text_corpus, text_ops, tokenizer
from sslax.models.transformer import MlmHead, NspHead, TextTransformer


def text_encoder(config: ml_collections.ConfigDict, causal: bool, num_segments: int
                 ) -> TextTransformer:
  """The Transformer of `config.model.text` (hidden_dim, depth, num_heads, mlp_dim, max_len,
  positions, dropout_rate, tie_embeddings, dtype, remat, scan_layers) over
  `config.data.vocab_size` tokens."""
  m = config.model.text
  return TextTransformer(
      vocab_size=config.data.vocab_size, hidden_dim=m.hidden_dim, depth=m.depth,
      num_heads=m.num_heads, mlp_dim=m.get("mlp_dim", 4 * m.hidden_dim),
      max_len=m.get("max_len", config.data.seq_len), causal=causal,
      positions=m.get("positions", "learned"), num_segments=num_segments,
      dropout_rate=m.get("dropout_rate", 0.1), tie_embeddings=m.get("tie_embeddings", True),
      dtype=jnp.dtype(m.get("dtype", "float32")), remat=m.get("remat", "none"),
      scan_layers=bool(m.get("scan_layers", False)))


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """[B, T, D] states -> [B, D]: the mean over real (unpadded) tokens, in float32."""
  weights = attention_mask.astype(jnp.float32)[..., None]
  return jnp.sum(hidden.astype(jnp.float32) * weights, 1) / jnp.maximum(weights.sum(1), 1.0)


def max_predictions(config: ml_collections.ConfigDict) -> int:
  """config.mlm.max_predictions, else a quarter of the sequence: with 15% selected by Bernoulli
  draws over 128 tokens the cap of 32 binds in under 0.1% of sequences."""
  return config.mlm.get("max_predictions") or math.ceil(config.data.seq_len / 4)


class Method:
  """config.mlm.{mask_prob, max_predictions, mlm_weight, nsp_weight}; config.model.text;
  config.data.{source, path, vocab_size, seq_len, heldout_fraction, tokenizer}."""

  tokenizer_kind = "wordpiece"

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.encoder = text_encoder(config, causal=False, num_segments=2)
    dtype = self.encoder.dtype
    self.mlm_head, self.nsp_head = MlmHead(dtype=dtype), NspHead(dtype=dtype)

  def data(self, split: str, workdir: str) -> tuple[Any, Any]:
    """Sentence-pair records of the training ("pretrain") or held-out ("heldout") articles."""
    corpus = text_corpus.prepare(self.config.data, workdir, self.tokenizer_kind,
                                 self.config.seed)
    docs = corpus.train if split == "pretrain" else corpus.heldout
    seq_len = self.config.data.seq_len
    records = text_corpus.nsp_records(docs, seq_len)
    records.report = corpus.report
    return records, text_corpus.MlmNspExample(docs, seq_len, corpus.tokenizer.get_vocab_size(),
                                              self.config.mlm.mask_prob,
                                              max_predictions(self.config))

  def _hidden(self, params, batch, train, rng=None):
    rngs = {"dropout": rng} if train else {}
    return self.encoder.apply({"params": params["encoder"]}, batch["input_ids"],
                              batch["attention_mask"], batch["token_type_ids"], train=train,
                              rngs=rngs)

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, mlm_rng, nsp_rng = jax.random.split(rng, 3)
    encoder = self.encoder.init(enc_rng, batch["input_ids"], batch["attention_mask"],
                                batch["token_type_ids"], train=False)["params"]
    hidden = self.encoder.apply({"params": encoder}, batch["input_ids"], batch["attention_mask"],
                                batch["token_type_ids"], train=False)
    embedding = encoder["token_embed"]["embedding"]
    params = {"encoder": encoder,
              "mlm_head": self.mlm_head.init(mlm_rng, hidden, embedding)["params"],
              "nsp_head": self.nsp_head.init(nsp_rng, hidden)["params"]}
    return params, {}, {}

  def mlm_logits(self, params, hidden):
    """[..., D] final states -> [..., V] masked-LM logits in float32."""
    embedding = params["encoder"]["token_embed"]["embedding"]
    return self.mlm_head.apply({"params": params["mlm_head"]}, hidden,
                               embedding).astype(jnp.float32)

  def _losses(self, params, batch, train, rng=None):
    hidden = self._hidden(params, batch, train=train, rng=rng)
    labels = batch["mlm_labels"]
    k = min(max_predictions(self.config), labels.shape[1])
    # The selected positions first (top_k of a 0/1 indicator); slots past a sequence's count
    # hold unselected positions, whose labels are IGNORE_ID.
    _, positions = jax.lax.top_k((labels != text_ops.IGNORE_ID).astype(jnp.int32), k)
    picked = jnp.take_along_axis(hidden, positions[..., None], axis=1)
    mlm_loss, mlm_accuracy = losses.token_cross_entropy(
        self.mlm_logits(params, picked), jnp.take_along_axis(labels, positions, axis=1))
    nsp_logits = self.nsp_head.apply({"params": params["nsp_head"]}, hidden).astype(jnp.float32)
    nsp_labels = batch["next_sentence_label"]
    nsp_loss = optax.softmax_cross_entropy_with_integer_labels(nsp_logits, nsp_labels).mean()
    return {"mlm_loss": mlm_loss, "mlm_accuracy": mlm_accuracy, "nsp_loss": nsp_loss,
            "nsp_accuracy": jnp.mean(jnp.argmax(nsp_logits, -1) == nsp_labels)}

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    metrics = self._losses(params, batch, train=True, rng=rng)
    c = self.config.mlm
    loss = c.mlm_weight * metrics["mlm_loss"] + c.nsp_weight * metrics["nsp_loss"]
    return loss, (metrics, model_state, extra)

  def pretext_metrics(self, params, model_state, batch):
    """MLM and NSP loss and accuracy without dropout (held-out evaluation)."""
    del model_state
    return self._losses(params, batch, train=False)

  def encode_sentences(self, sentences, seq_len):
    """Token-id sentences -> a feature batch: `[CLS] sentence [SEP]`, padded (cut to fit)."""
    ids, mask = text_ops.pad_batch(
        [[tokenizer.CLS_ID, *s[:seq_len - 2], tokenizer.SEP_ID] for s in sentences], seq_len)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder", "cls")

  def features(self, params, model_state, batch, level="encoder"):
    """Sentence features [B, D]: the mean of the final states over real tokens ("encoder"), or
    the [CLS] state ("cls")."""
    del model_state
    hidden = self._hidden(params, batch, train=False)
    if level == "cls":
      return hidden[:, 0].astype(jnp.float32)
    return mean_pool(hidden, batch["attention_mask"])
