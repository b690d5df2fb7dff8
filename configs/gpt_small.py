"""GPT-small (GPT-2 124M shape) causal-LM pretraining on your own corpus.

  python -m sslax.train --config=configs/gpt_small.py --workdir=runs/gpt_small \
      --config.data.path=/data/corpus.jsonl

Radford et al. 2019 (GPT-2 small): 12 layers, 768 wide, 12 heads, context 1024, learned
positions, byte-level BPE (50,257 tokens there; here trained on the corpus unless
`data.tokenizer` names a file), output tied to the token embedding. GPT-2 does not publish its
optimiser settings; these are the ones GPT-3 (Brown et al. 2020) gives for its 125M model: Adam
betas (0.9, 0.95), learning rate 6e-4 decayed by a cosine to 10%, weight decay 0.1, gradient
clipping at 1.0, 0.5M-token batches (here 512 sequences of 1,024), linear warm-up (375M tokens
there, 715 steps here), 300B tokens in total (about 572k steps). `data.path`: a .txt or .jsonl
file or a folder of them. Not run here: it needs an accelerator pod; configs/gpt_wiki.py is the
recipe measured on the CPU.
`model.text.remat` ("none"; "dots_saveable" keeps the weight matmuls' outputs and recomputes
the [heads, T, T] attention scores, "full" keeps each block's input) and `model.text.scan_layers`
(False; True runs the blocks under `nn.scan`, parameters stacked under `blocks/`) trade compute
for activation memory and compile time (sslax/models/stack.py); set here to their defaults so
that `--config.model.text.remat=dots_saveable` can override them.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "gpt"
  c.seed = 0
  c.batch_size = 512
  c.total_steps = 572_000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = (
      (r"attn/(query|key|value)/kernel", (None, "tensor", None)),
      (r"attn/out/kernel", ("tensor", None, None)),
      (r"mlp/fc1/kernel", (None, "tensor")),
      (r"mlp/fc2/kernel", ("tensor", None)),
  )

  c.data = ml_collections.ConfigDict()
  c.data.source = "text_files"
  c.data.path = ""
  c.data.vocab_size = 50257
  c.data.seq_len = 1024
  c.data.heldout_fraction = 0.01
  c.data.min_chars = 200
  c.data.tokenizer = ""
  c.data.num_workers = 4

  c.model = ml_collections.ConfigDict()
  c.model.text = dict(hidden_dim=768, depth=12, num_heads=12, mlp_dim=3072, max_len=1024,
                      positions="learned", dropout_rate=0.0, tie_embeddings=True,
                      dtype="bfloat16", remat="none", scan_layers=False)

  c.optimizer = dict(name="adamw", learning_rate=6e-4, b1=0.9, b2=0.95, weight_decay=0.1,
                     warmup_steps=715, end_lr_fraction=0.1, grad_clip_norm=1.0)
  if arg:
    raise ValueError(f"unknown variant {arg!r}; configs/gpt_small.py has none")
  return c
