"""Text Transformer for language pretraining: a BERT-style encoder or a GPT-style decoder.

One pre-norm block serves both (Devlin et al. 2019, BERT; Radford et al. 2019, GPT-2): token,
position and (for BERT's sentence pairs) segment embeddings, then blocks x + attn(LN(x)),
x + MLP(LN(x)), then a final LayerNorm. `causal` turns the encoder into a decoder. BERT is
post-norm; pre-norm, as in GPT-2 and our ViT, is the more stable to train (Xiong et al. 2020) and
lets both models share one block. Positions are a learned table or rotary embeddings (Su et al.
2021, RoFormer), which rotate queries and keys so that attention scores depend only on relative
positions.

Parameter names follow vit.py's sharding layout: `token_embed/embedding` [V, D], `pos_embed`
[max_len, D] (learned only), `segment_embed/embedding` [num_segments, D],
`block{i}/{norm1, attn/{query,key,value,out}, norm2, mlp/{fc1,fc2}}` (`blocks/...` stacked on a
leading [depth] axis with `scan_layers`, see sslax/models/stack.py), `norm`, and `lm_head/kernel`
[D, V] when the output projection is untied. Attention kernels keep a heads axis ([D, heads,
head_dim] and [heads, head_dim, D]) so rules can shard it. The pretraining heads are separate
modules with their own parameters: `MlmHead` (which takes the embedding table it is tied to as an
argument) and `NspHead`.
"""
from functools import partial

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Array, Dtype

from sslax.models import dense
from sslax.models.attention import SelfAttention
from sslax.models.stack import apply_blocks, make_blocks
from sslax.models.vit import Mlp

TEXT_SIZES = {  # name -> (hidden_dim, depth, num_heads); mlp_dim is 4 x hidden_dim.
  "bert_tiny": (128, 2, 2),  # Turc et al. 2019, "Well-Read Students Learn Better".
  "bert_small": (256, 4, 4),  # Turc et al. 2019 (their BERT-Mini).
  "bert_base": (768, 12, 12),  # Devlin et al. 2019.
  "gpt_small": (768, 12, 12),  # GPT-2 small, Radford et al. 2019.
}

_xavier = nn.initializers.xavier_uniform()
_embed_init = nn.initializers.truncated_normal(0.02)  # BERT's and GPT-2's embedding init.
_dense = partial(nn.Dense, param_dtype=jnp.float32, kernel_init=_xavier,
                 dot_general=dense.dot_general)
_layer_norm = partial(nn.LayerNorm, epsilon=1e-6, param_dtype=jnp.float32)


class TextBlock(nn.Module):
  """Pre-norm block: x + drop(attn(LN(x))), then x + drop(MLP(LN(x))).

  vit.Mlp is the MLP: GELU's tanh approximation, which XLA:CPU computes about twice as fast as
  the exact erf form (BERT and GPT-2 used the tanh form too). Dropout acts on each sub-layer's
  output, not on attention probabilities, which would rule out jax.nn.dot_product_attention.
  """
  num_heads: int
  mlp_dim: int
  causal: bool = False
  rotary: bool = False
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array | None, train: bool) -> Array:
    drop = partial(nn.Dropout, self.dropout_rate, deterministic=not train)
    attn = SelfAttention(self.num_heads, self.causal, self.rotary, self.dtype, name="attn")
    x = x + drop()(attn(_layer_norm(dtype=self.dtype, name="norm1")(x), mask))
    y = Mlp(self.mlp_dim, self.dtype, name="mlp")(_layer_norm(dtype=self.dtype, name="norm2")(x))
    return x + drop()(y)


class TextTransformer(nn.Module):
  """input_ids [B, T] -> hidden states [B, T, hidden_dim] after the final LayerNorm.

  `attention_mask` [B, T] is 1 at real tokens and 0 at padding: no position attends to padding
  (the outputs at padding positions are meaningless). `causal` also hides later positions (GPT).
  `positions`: "learned" (a [max_len, D] table) or "rotary" (no parameter; max_len is not a
  limit then). `num_segments` > 0 adds segment embeddings read from `token_type_ids` (zeros if
  None; 2 for BERT's sentence pairs). Dropout, drawn from the 'dropout' rng, acts on the
  embeddings and each sub-layer's output when `train`. `tie_embeddings` makes `lm_logits` the
  transposed token embedding (GPT-2, BERT), else an `lm_head` without bias. Params are float32,
  computation runs in `dtype`. `remat` ("none", "full", "dots_saveable") and `scan_layers` choose
  how the depth runs (sslax/models/stack.py); under scan each layer draws its own dropout masks.
  """
  vocab_size: int
  hidden_dim: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  max_len: int = 512
  causal: bool = False
  positions: str = "learned"
  num_segments: int = 0
  dropout_rate: float = 0.1
  tie_embeddings: bool = True
  dtype: Dtype = jnp.float32
  remat: str = "none"
  scan_layers: bool = False

  def setup(self):
    if self.positions not in ("learned", "rotary"):
      raise ValueError(f"positions={self.positions!r}; use 'learned' or 'rotary'")
    embed = partial(nn.Embed, features=self.hidden_dim, dtype=self.dtype,
                    param_dtype=jnp.float32, embedding_init=_embed_init)
    self.token_embed = embed(self.vocab_size)
    if self.positions == "learned":
      self.pos_embed = self.param("pos_embed", _embed_init, (self.max_len, self.hidden_dim),
                                  jnp.float32)
    if self.num_segments:
      self.segment_embed = embed(self.num_segments)
    self.blocks = make_blocks(
        lambda name: TextBlock(self.num_heads, self.mlp_dim, self.causal,
                               self.positions == "rotary", self.dropout_rate, self.dtype,
                               name=name), self.depth, self.remat, self.scan_layers)
    self.norm = _layer_norm(dtype=self.dtype)
    if not self.tie_embeddings:
      self.lm_head = _dense(self.vocab_size, use_bias=False, dtype=self.dtype)
    self.dropout = nn.Dropout(self.dropout_rate)

  def __call__(self, input_ids: Array, attention_mask: Array | None = None,
               token_type_ids: Array | None = None, *, train: bool) -> Array:
    length = input_ids.shape[1]
    x = self.token_embed(input_ids)
    if self.positions == "learned":
      if length > self.max_len:
        raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
      x = x + self.pos_embed[:length].astype(self.dtype)
    if self.num_segments:
      x = x + self.segment_embed(jnp.zeros_like(input_ids) if token_type_ids is None
                                 else token_type_ids)
    elif token_type_ids is not None:
      raise ValueError("token_type_ids given to a model with num_segments=0")
    x = self.dropout(x, deterministic=not train)
    mask = None if attention_mask is None else attention_mask.astype(bool)[:, None, None, :]
    x = apply_blocks(self.blocks, x, self.depth, self.remat,
                     lambda block, x: block(x, mask, train))
    x = self.norm(x)
    if self.is_initializing() and not self.tie_embeddings:
      self.lm_head(x)  # So that `init` creates every parameter.
    return x

  def lm_logits(self, hidden: Array) -> Array:
    """[..., D] final states -> [..., V] next-token (or token) logits, tied or untied."""
    if self.tie_embeddings:
      return self.token_embed.attend(hidden)
    return self.lm_head(hidden)


class MlmHead(nn.Module):
  """BERT's masked-LM head: [..., D] states -> [..., V] logits.

  dense D->D, GELU (tanh form, see TextBlock), LayerNorm, then the product with `embedding`
  [V, D] plus an output bias [V]. The head does not own the output matrix: pass the encoder's
  `token_embed/embedding` to tie them as BERT does, so one array in one parameter tree gets
  both gradients. Apply it to the gathered masked positions only, which saves the [B, T, V]
  logits of the unmasked ones. Params: `dense`, `norm`, `bias`.
  """
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, hidden: Array, embedding: Array) -> Array:
    x = nn.gelu(_dense(hidden.shape[-1], dtype=self.dtype, name="dense")(hidden), approximate=True)
    x = _layer_norm(dtype=self.dtype, name="norm")(x)
    bias = self.param("bias", nn.initializers.zeros, (embedding.shape[0],), jnp.float32)
    return x @ embedding.T.astype(self.dtype) + bias.astype(self.dtype)


class NspHead(nn.Module):
  """BERT's next-sentence head: [B, T, D] states -> [B, 2] logits; class 1: B follows A.

  BERT's pooler (dense D->D and tanh on the [CLS] state at position 0), then `classifier`, a
  dense layer to 2 classes. Params: `pooler`, `classifier`.
  """
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    pooled = jnp.tanh(_dense(hidden.shape[-1], dtype=self.dtype, name="pooler")(hidden[:, 0]))
    return _dense(2, dtype=self.dtype, name="classifier")(pooled)
