"""MAE on the embedded MNIST digits, with a small ViT.

  python -m sslax.train --config=configs/mae_mnist.py --workdir=runs/mae
  python -m sslax.evaluate --workdir=runs/mae

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe trained on the same
4,000 with labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

Model: 7x7 patches (a 4x4 grid; 4 of the 16 kept at mask ratio 0.75), a 4-block, 128-wide ViT
with fixed sin-cos positions, a 2-block, 64-wide decoder, per-patch normalised targets; the
encoder's features are the mean of its patch tokens. The optimiser follows the paper (AdamW,
betas 0.9/0.95, weight decay 0.05) with a higher rate for the short run. Why these sizes: on this
CPU, 4x4 patches (49 tokens) cost 3x more per step than 7x7, so they would train a third of the
epochs in the same time.

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=mae`: 1,500 steps of batch 128 (48 epochs), 1.5 min
for training and evaluation together (4.6 min on the machine of 2026-11-28, same numbers):
  pretrained encoder              kNN 0.790  linear 0.859
  random-init encoder             kNN 0.640  linear 0.756
  raw pixels                      kNN 0.948  linear 0.859
Final loss 0.458, reconstruction_mse 0.436 (pixel space, hidden patches). The CLS token instead of
the patch mean, on the same checkpoint: kNN 0.758 / linear 0.820 (random init 0.661 / 0.753);
mask ratio 0.5 for 1,000 steps (about the same compute): 0.759 / 0.846. MAE's features are
known to be weak for frozen-feature probes (the paper reports its fine-tuning gains); here they
beat the random-init encoder, not raw pixels.

Variants: `:tiny` shrinks everything for tests (`--config=configs/mae_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "mae"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 1500
  c.log_every_steps = 50
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # Replicated parameters: the model is tiny.

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  # MAE's only augmentation is a random resized crop (and a flip, which digits do not allow).
  c.data.augment = dict(
      size=28, crop_scale=(0.5, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.0, jitter_p=0.0,
      grayscale_p=0.0, mean=(0.1307,), std=(0.3081,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="vit_tiny", patch_size=7, hidden_dim=128, depth=4, num_heads=4,
                         pos_embed="sincos", pool="mean", dtype="float32")
  c.model.decoder = dict(hidden_dim=64, depth=2, num_heads=4)
  c.mae = dict(mask_ratio=0.75, norm_pix=True)

  c.optimizer = dict(name="adamw", learning_rate=1e-3, b1=0.9, b2=0.95, weight_decay=0.05,
                     warmup_steps=100, end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 6
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.data.num_workers = 0
    c.model.encoder = dict(name="vit_tiny", patch_size=7, hidden_dim=16, depth=1, num_heads=2,
                           pos_embed="sincos", pool="mean", dtype="float32")
    c.model.decoder = dict(hidden_dim=16, depth=1, num_heads=2)
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/mae_mnist.py or :tiny")
  return c
