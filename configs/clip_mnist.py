"""CLIP on the embedded MNIST digits, captioned from their labels (a small demonstration).

  python -m sslax.train --config=configs/clip_mnist.py --workdir=runs/clip
  python -m sslax.evaluate --workdir=runs/clip

Data: the 4,000 training digits, each with 14 candidate captions (7 templates x the digit as a
word or a numeral: "a handwritten 7", "a photo of the digit seven."), one drawn per example and
epoch; the 1,000 test digits are the held-out pairs. Zero-shot prompts use three other
phrasings (sslax.data.pairs.DIGIT_PROMPTS). The captions say nothing but the class, so this is
close to supervised training through language: a demonstration that the dual tower, the loss
and the evaluation work, not a benchmark.

Recipe: CLIP's (Radford et al. 2021) loss, temperature 0.07 learned and clamped at 100, AdamW
with beta2 0.98 and eps 1e-6, warm-up then cosine, random crops as the only augmentation, scaled
down: SimCLR's small CNN (16-32-64-128) as the image tower, a 2-layer 64-wide causal text
Transformer pooled at [SEP], 64-d embeddings, batch 128, 16-token captions.

Measured 2026-12-01 on the 2-core CPU machine while up to 7 other jobs shared it (load average
about 17): 800 steps of 128 (26 epochs) took 22 min of wall time for training and 6 min for the
evaluation, 5.1 min of CPU time in all (user + system); the quiet machine's wall time is not
measured yet: time the two commands above. Held-out (1,000 test digits), pretrained / random init:
  zero-shot top-1 (3 prompts averaged)        0.980 / 0.088
  image->text recall@1/5/10                   0.000 / 0.006 / 0.046  (0.000 / 0.000 / 0.006)
  text->image recall@1/5/10                   0.013 / 0.053 / 0.103  (0.001 / 0.006 / 0.011)
  same-class image->text recall@1             0.980 / 0.068
  image encoder kNN / linear                  0.969 / 0.980  (0.763 / 0.760; raw pixels
                                              0.948 / 0.859)
  held-out loss (batches of 128)              2.72 / 5.28
Instance-level retrieval is near zero by construction: the 1,000 held-out captions are 140
distinct strings, about 7 copies each, and a copy of the partner's caption ties with it (ties
count against the query); the same-class recall is the meaningful number here. The loss floor
is about ln(128 / 10) = 2.55 for the same reason: a batch holds about 13 digits of each class,
whose captions say the same thing. The learned scale fell from 14.3 to 13.7.

Variants: `:tiny` shrinks everything for tests (`--config=configs/clip_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "clip"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 800
  c.log_every_steps = 50
  c.checkpoint_every_steps = 400
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.vocab_size = 256
  c.data.seq_len = 16
  c.data.tokenizer = ""  # A tokenizer.json to use as is; empty: train one into the workdir.
  c.data.class_names = ()  # Empty: the source's (zero ... nine).
  c.data.zeroshot_templates = ()  # Empty: the source's (DIGIT_PROMPTS).
  c.data.num_workers = 2
  # CLIP's only augmentation is a random crop; digits keep at least half their area.
  c.data.augment = dict(size=28, crop_scale=(0.5, 1.0), crop_ratio=(0.8, 1.25), flip_p=0.0,
                        jitter_p=0.0, grayscale_p=0.0, mean=(0.1307,), std=(0.3081,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.text = dict(hidden_dim=64, depth=2, num_heads=2, mlp_dim=256, positions="learned",
                      dropout_rate=0.0, dtype="float32")
  c.clip = dict(embed_dim=64, text_pool="eos", causal_text=True, init_temperature=0.07,
                max_logit_scale=100.0)

  c.optimizer = dict(name="adamw", learning_rate=2e-3, b1=0.9, b2=0.98, eps=1e-6,
                     weight_decay=0.1, warmup_steps=80, end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(evaluators=["knn", "linear", "fewshot", "collapse", "zeroshot", "pretext"],
                retrieval_examples=1000)

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 4
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.data.num_workers = 0
    c.data.probe_examples = 64
    c.model.encoder = dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32")
    c.model.text = dict(hidden_dim=16, depth=1, num_heads=2, mlp_dim=32, positions="learned",
                        dropout_rate=0.0, dtype="float32")
    c.clip.embed_dim = 8
    c.optimizer.warmup_steps = 2
    c.eval = dict(evaluators=["knn", "linear", "zeroshot", "pretext"], linear_steps=20,
                  retrieval_examples=48, pretext_batches=2)
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/clip_mnist.py or :tiny")
  return c
