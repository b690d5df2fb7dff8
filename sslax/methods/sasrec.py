"""SASRec next-item prediction (Kang and McAuley 2018, "Self-Attentive Sequential
Recommendation") with CL4SRec's contrastive term (Xie et al. 2022, "Contrastive Learning for
Sequential Recommendation").

The sequence encoder is the causal text Transformer (sslax/models/transformer.py: learned
positions, pre-norm blocks, dropout) over item ids, 0 the padding (left, so the last position
always holds the latest item) and N + 1 the mask token of the augmentations. A position's
next-item scores are its final state times the shared item embedding of items 1..N; the loss is
the FULL softmax cross-entropy over all N items at every position with a target (the paper uses
a binary cross-entropy against one sampled negative; with 1,682 items the full softmax is
cheap). CL4SRec adds `sasrec.contrastive_weight` (lambda) x NT-Xent (Chen et al. 2020) between
the last-position states of two augmented views of each training sequence (crop / mask /
reorder, sslax/data/sequence_ops.py, drawn in the data pipeline with numpy generators), over the
GLOBAL batch: under a sharded jit every other sequence on every device is a negative (8 devices
== 1 tested). lambda = 0 is plain SASRec and builds no views.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import losses
from sslax.data import interactions
from sslax.models.transformer import TextTransformer


class Method:
  """config.data (sslax.data.interactions.load_split, data.max_len); config.model.text
  (hidden_dim, depth, num_heads, mlp_dim, dropout_rate); config.sasrec.{contrastive_weight,
  temperature, crop_eta, mask_gamma, reorder_beta}."""

  ranking_eval = True  # sslax.evaluate sends this method to sslax.evals.ranking.

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.split = interactions.load_split(config.data)
    self.num_items = self.split.num_items
    self.max_len = int(config.data.max_len)
    s = config.sasrec
    self.weight, self.temperature = float(s.contrastive_weight), float(s.temperature)
    self.batch_coupled = self.weight > 0  # NT-Xent couples the whole batch.
    m = config.model.text
    self.encoder = TextTransformer(
        vocab_size=self.num_items + 2, hidden_dim=m.hidden_dim, depth=m.depth,
        num_heads=m.num_heads, mlp_dim=m.get("mlp_dim", 4 * m.hidden_dim), max_len=self.max_len,
        causal=True, positions="learned", dropout_rate=m.get("dropout_rate", 0.2),
        tie_embeddings=True, dtype=jnp.dtype(m.get("dtype", "float32")))

  def augment_rates(self) -> dict[str, float] | None:
    s = self.config.sasrec
    if self.weight <= 0:
      return None
    return {"eta": float(s.crop_eta), "gamma": float(s.mask_gamma), "beta": float(s.reorder_beta)}

  def data(self, split: str, workdir: str | None) -> tuple[Any, Any]:
    """Training sequences (one record per user) and their example transform."""
    del split, workdir  # Held-out targets are scored by sslax.evals.ranking, not batched here.
    records = interactions.train_records(self.split)
    return records, interactions.NextItemExample(self.max_len, self.num_items + 1,
                                                 self.augment_rates())

  def synthetic_batch(self, n: int) -> dict[str, np.ndarray]:
    """A batch of `n` examples of the training shapes (from a short made-up sequence)."""
    example = self.data("pretrain", None)[1].random_map({"items": np.array([1, 2, 3])},
                                                        np.random.default_rng(0))
    return {k: np.stack([v] * n) for k, v in example.items()}

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    params = self.encoder.init(rng, batch["input_ids"], train=False)["params"]
    return {"encoder": params}, {}, {}

  def hidden(self, params, input_ids, train: bool, rng=None) -> jax.Array:
    """Final states [B, L, D] of left-padded item ids [B, L]; padding never attended to."""
    rngs = {"dropout": rng} if train else {}
    return self.encoder.apply({"params": params["encoder"]}, input_ids, input_ids > 0,
                              train=train, rngs=rngs)

  def item_logits(self, params, hidden: jax.Array) -> jax.Array:
    """[..., D] states -> [..., N] float32 scores of items 1..N (column j is item j + 1)."""
    logits = self.encoder.apply({"params": params["encoder"]}, hidden,
                                method=self.encoder.lm_logits)
    return logits[..., 1:self.num_items + 1].astype(jnp.float32)

  def loss(self, params, model_state, extra, batch, rng, step):
    del step
    b = batch["input_ids"].shape[0]
    views = [batch["input_ids"]] + ([batch["view_a"], batch["view_b"]] if self.weight > 0
                                    else [])
    hidden = self.hidden(params, jnp.concatenate(views), train=True, rng=rng)
    next_loss, accuracy = losses.token_cross_entropy(self.item_logits(params, hidden[:b]),
                                                     batch["targets"] - 1)
    metrics = {"next_item_loss": next_loss, "next_item_accuracy": accuracy}
    loss = next_loss
    if self.weight > 0:
      z_a, z_b = hidden[b:2 * b, -1], hidden[2 * b:, -1]
      contrastive = losses.nt_xent(z_a, z_b, self.temperature)
      metrics.update(contrastive_loss=contrastive,
                     contrastive_top1=losses.contrastive_top1(z_a, z_b))
      loss = loss + self.weight * contrastive
    return loss, (metrics, model_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, input_ids, level="encoder"):
    """Sequence representations [B, D]: the final state at the last position (the user's
    latest item), inference mode."""
    del model_state, level
    return self.hidden(params, input_ids, train=False)[:, -1].astype(jnp.float32)

  def scores(self, params, input_ids) -> jax.Array:
    """Next-item scores [B, N] over items 1..N after left-padded sequences [B, L]."""
    return self.item_logits(params, self.hidden(params, input_ids, train=False)[:, -1])
