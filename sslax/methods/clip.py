"""CLIP: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision".

An image encoder (any `make_encoder` backbone) and a text Transformer each end in a linear
projection (no bias) to a shared embedding space; the loss is the symmetric cross-entropy of
the cosine-similarity matrix of the global batch's images and captions, scaled by a learnable
exp(logit_scale) initialised at 1/0.07 and clamped at 100 (sslax.losses.clip_loss): every other
caption of the global batch is a negative of an image, and every other image of a caption.

Text tower: captions are `[CLS] caption [SEP]` (WordPiece trained on the training captions into
the workdir). `clip.text_pool` = "eos" (default) pools the final state of the last real token,
the [SEP], as CLIP pools its [EOS]; with `clip.causal_text` (default True, as CLIP's masked
self-attention) that is the only position that has read the whole caption. "cls" pools
position 0 (then use causal_text=False) and "mean" the mean over real tokens.

The method owns its data (`data(split, workdir)`, as the text methods do): pairs from
sslax.data.pairs, the tokenizer, and the record -> example transform (an augmented view and one
caption drawn per example and epoch). Evaluation (`pair_eval_data`) adds zero-shot
classification and image<->text retrieval (sslax.evals.zeroshot) to the kNN and linear probes
of the image encoder's features (`features`, level "encoder"; "embedding" is the projected
image embedding and "text" the projected caption embedding of a token batch).
"""
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sslax import losses
from sslax.data import image_ops, pairs
from sslax.evals import probe_data
from sslax.evals.zeroshot import PairEvalData
from sslax.methods.base import apply_module, split_variables
from sslax.methods.mlm import text_encoder
from sslax.models import make_encoder
from sslax.models.dual_tower import DualTower


class Method:
  """config.clip.{embed_dim, text_pool, causal_text, init_temperature, max_logit_scale};
  config.model.{encoder, text}; config.data.{source and its fields (sslax.data.pairs), augment,
  vocab_size, seq_len, tokenizer, class_names, zeroshot_templates, probe_examples}."""

  # Every caption of the global batch is a negative of every image: gradient accumulation
  # (config.grad_accum_steps) uses GradCache through `embed` and `embedding_loss`.
  batch_coupled = True

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    c = config.clip
    self.model = DualTower(
        image_encoder=make_encoder(config.model.encoder),
        text_encoder=text_encoder(config, causal=c.get("causal_text", True), num_segments=0),
        embed_dim=c.embed_dim, text_pool=c.get("text_pool", "eos"),
        init_temperature=c.get("init_temperature", 0.07))
    self.max_logit_scale = c.get("max_logit_scale", 100.0)
    self._tokenizer = None

  def _source(self, split: str) -> Any:
    """The pairs of `split`, built once per process; held-out labels use the training classes."""
    key = json.dumps(self.config.data.to_dict(), sort_keys=True, default=str)
    pretrain = pairs.cached_pair_source(key, "pretrain", None)
    if split == "pretrain":
      return pretrain
    return pairs.cached_pair_source(key, "heldout", tuple(pretrain.class_names) or None)

  def tokenizer(self, workdir: str) -> Any:
    """The caption tokenizer: data.tokenizer, or trained into `workdir` on first use (then
    loaded from there), kept for this method's run."""
    if self._tokenizer is None:
      tok = pairs.caption_tokenizer(self.config.data, self._source("pretrain"), workdir)
      if tok.get_vocab_size() > self.config.data.vocab_size:
        raise ValueError(f"the tokenizer has {tok.get_vocab_size()} tokens, more than "
                         f"data.vocab_size={self.config.data.vocab_size}: raise vocab_size")
      self._tokenizer = tok
    return self._tokenizer

  def data(self, split: str, workdir: str) -> tuple[Any, Any]:
    """Pair records of `split` ("pretrain" or "heldout") and the record -> example transform."""
    transform = pairs.ClipExample(self.config.data.augment, self.tokenizer(workdir),
                                  self.config.data.seq_len)
    return self._source(split), transform

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    variables = self.model.init(rng, batch["image"], batch["input_ids"],
                                batch["attention_mask"], train=False)
    params, state = split_variables(variables)
    return params, state, {}

  def _embed(self, params, model_state, batch, train, rng=None):
    """({"image", "text": [batch, E] embeddings, "logit_scale": [batch, 1] copies of the
    scale}, new model_state)."""
    rngs = {"dropout": rng} if train else {}
    (image, text, scale), model_state = apply_module(
        self.model, params, model_state, batch["image"], batch["input_ids"],
        batch["attention_mask"], train=train, rngs=rngs)
    return {"image": image, "text": text,
            "logit_scale": jnp.broadcast_to(scale, (image.shape[0], 1))}, model_state

  def embedding_loss(self, embeddings, targets, step):
    """The loss and in-batch top-1 both ways on the embeddings of the whole global batch. The
    scale is the mean of its per-row copies, so GradCache's pull-back sums to its gradient."""
    del targets, step
    image, text = embeddings["image"], embeddings["text"]
    scale = jnp.mean(embeddings["logit_scale"])
    return losses.clip_loss(image, text, scale, self.max_logit_scale), {
        "image_to_text_top1": losses.contrastive_top1(image, text),
        "text_to_image_top1": losses.contrastive_top1(text, image),
        "logit_scale": jnp.exp(jnp.minimum(scale, jnp.log(self.max_logit_scale)))}

  def embed(self, params, model_state, extra, batch, rng, step):
    """GradCache's embedding pass (sslax/accumulate.py): the training-mode embeddings."""
    del extra, step
    return self._embed(params, model_state, batch, train=True, rng=rng)

  def loss(self, params, model_state, extra, batch, rng, step):
    embeddings, model_state = self.embed(params, model_state, extra, batch, rng, step)
    loss, metrics = self.embedding_loss(embeddings, {}, step)
    return loss, (metrics, model_state, extra)

  def pretext_metrics(self, params, model_state, batch):
    """The loss and in-batch top-1 both ways, in inference mode (held-out evaluation)."""
    loss, metrics = self.embedding_loss(self._embed(params, model_state, batch, False)[0], {}, 0)
    return {"loss": loss, **metrics}

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder", "embedding")

  def features(self, params, model_state, inputs, level="encoder"):
    """Image features [B, D] of the backbone ("encoder") or projected ("embedding"), or the
    projected caption embeddings [B, E] of a token batch ("text"); inference mode."""
    variables = {"params": params, **model_state}
    if level == "text":
      out = self.model.apply(variables, inputs["input_ids"], inputs["attention_mask"],
                             train=False, method=DualTower.encode_text)
    else:
      fn = DualTower.image_features if level == "encoder" else DualTower.encode_image
      out = self.model.apply(variables, inputs, train=False, method=fn)
    return out.astype(jnp.float32)

  def _labelled(self, source, spec, limit):
    """Eval views and labels of the labelled pairs among `limit` spread over `source`."""
    images, labels = [], []
    for i in pairs.spread_indices(len(source), limit):
      record = source[int(i)]
      if record["label"] >= 0:
        images.append(image_ops.eval_view(image_ops.to_float(record["image"]), spec))
        labels.append(int(record["label"]))
    return np.stack(images) if images else None, np.asarray(labels, np.int32)

  def pair_eval_data(self, workdir: str, cfg: dict[str, Any]) -> PairEvalData:
    """Labelled image splits, class prompts and held-out pairs for sslax.evals.zeroshot: the
    labelled pairs among data.probe_examples (10,000) of each split; prompts from
    data.zeroshot_templates and data.class_names, else the source's own."""
    data, seed = self.config.data, self.config.seed
    pretrain, heldout = self._source("pretrain"), self._source("heldout")
    tok, spec = self.tokenizer(workdir), data.augment
    limit = data.get("probe_examples", 10_000)
    train_x, train_y = self._labelled(pretrain, spec, limit)
    test_x, test_y = self._labelled(heldout, spec, limit)
    class_names = tuple(data.get("class_names") or pretrain.class_names)
    splits = None
    if train_x is not None and test_x is not None:
      splits = probe_data.Splits(train_x, train_y, test_x, test_y,
                                 max(len(class_names), int(max(train_y.max(), test_y.max())) + 1),
                                 f"labelled pairs of {data.source}")
    templates = tuple(data.get("zeroshot_templates") or pretrain.default_prompts)
    prompts = pairs.tokenize_captions(tok, [t.format(c) for c in class_names for t in templates],
                                      data.seq_len) if class_names else None
    images, captions, labels = pairs.eval_pairs(heldout, spec, cfg.get("retrieval_examples", 1000),
                                                seed)
    records, transform = self.data("heldout", workdir)
    return PairEvalData(splits, class_names, templates, prompts, images,
                        pairs.tokenize_captions(tok, captions, data.seq_len), labels, records,
                        transform)
