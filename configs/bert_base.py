"""BERT-base pretraining (masked LM + NSP) on your own corpus: the paper's recipe.

  python -m sslax.train --config=configs/bert_base.py --workdir=runs/bert_base \
      --config.data.path=/data/corpus.jsonl

Devlin et al. 2019: 12 layers, 768 wide, 12 heads, learned positions, WordPiece of 30,522 tokens
(here trained on the corpus unless `data.tokenizer` names a file), 15% masking (80/10/10) with
NSP, Adam at 1e-4 with betas (0.9, 0.999), weight decay 0.01, 10,000 warm-up steps and linear
decay over 1M steps of batch 256 at sequence length 128 (the paper then trains 10% of the steps at
512; not reproduced here), dropout 0.1. The decay here is cosine, the one schedule sslax has;
`--config.optimizer.name=lamb` gives You et al. 2020's LAMB (their batch 32k recipe needs its own
learning rate). `data.path`: a .txt or .jsonl file or a folder of them (see sslax/data/text.py).
Not run here: it needs an accelerator pod; configs/bert_wiki.py is the recipe measured on the CPU.
`model.text.remat` ("none"; "dots_saveable" keeps the weight matmuls' outputs and recomputes
the [heads, T, T] attention scores, "full" keeps each block's input) and `model.text.scan_layers`
(False; True runs the blocks under `nn.scan`, parameters stacked under `blocks/`) trade compute
for activation memory and compile time (sslax/models/stack.py); set here to their defaults so
that `--config.model.text.remat=dots_saveable` can override them.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "mlm"
  c.seed = 0
  c.batch_size = 256
  c.total_steps = 1_000_000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 10_000
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  # Tensor parallel over heads and MLP when the mesh has a tensor axis.
  c.sharding_rules = (
      (r"attn/(query|key|value)/kernel", (None, "tensor", None)),
      (r"attn/out/kernel", ("tensor", None, None)),
      (r"mlp/fc1/kernel", (None, "tensor")),
      (r"mlp/fc2/kernel", ("tensor", None)),
  )

  c.data = ml_collections.ConfigDict()
  c.data.source = "text_files"
  c.data.path = ""
  c.data.vocab_size = 30522
  c.data.seq_len = 128
  c.data.heldout_fraction = 0.01
  c.data.min_chars = 200
  c.data.tokenizer = ""
  c.data.num_workers = 4

  c.model = ml_collections.ConfigDict()
  c.model.text = dict(hidden_dim=768, depth=12, num_heads=12, mlp_dim=3072, max_len=512,
                      positions="learned", dropout_rate=0.1, tie_embeddings=True,
                      dtype="bfloat16", remat="none", scan_layers=False)
  c.mlm = dict(mask_prob=0.15, mlm_weight=1.0, nsp_weight=1.0)

  c.optimizer = dict(name="adamw", learning_rate=1e-4, b1=0.9, b2=0.999, weight_decay=0.01,
                     warmup_steps=10_000, end_lr_fraction=0.0, grad_clip_norm=1.0)
  if arg:
    raise ValueError(f"unknown variant {arg!r}; configs/bert_base.py has none")
  return c
