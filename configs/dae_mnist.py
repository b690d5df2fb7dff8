"""Denoising autoencoder (Vincent et al. 2008) on the embedded MNIST digits.

  python -m sslax.train --config=configs/dae_mnist.py --workdir=runs/dae
  python -m sslax.evaluate --workdir=runs/dae

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe on the same 4,000 with
labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

Recipe: the paper's masking noise on half of the pixels (at that fraction a digit can only be
restored from its shape, not from neighbouring pixels), MSE over all pixels, 600 steps of batch
128 (19 epochs), AdamW at 2e-3 with cosine decay, mild crops and rotations. The decoder
(7x7 -> 28x28) costs about what the encoder costs per image.

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=dae`: 2.1 min for training and evaluation
together (6.1 min and about 235 examples/s on the machine of 2026-11-28, which gave kNN 0.925 /
linear 0.937), final loss 0.137. Evaluation of step 600:
  pretrained encoder              kNN 0.920  linear 0.930
  random-init encoder             kNN 0.745  linear 0.766
  raw pixels                      kNN 0.948  linear 0.859
1,000 steps (the first recipe, 10.8 min alone) gave kNN 0.924 / linear 0.933: no better.

Variants: `:tiny` shrinks everything for tests (`--config=configs/dae_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "dae"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 600
  c.log_every_steps = 50
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # Replicated parameters: the model is tiny.

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  # Mild geometry only: the corruption is the pretext, and the eval view is the plain digit.
  c.data.augment = dict(
      size=28, crop_scale=(0.7, 1.0), crop_ratio=(0.85, 1.18), rotation_degrees=10.0,
      rotation_p=0.5, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0,
      noise_p=0.0, mean=(0.1307,), std=(0.3081,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  # 7x7x64 -> 14x14x32 -> 28x28x16 -> 28x28x1: about the encoder's cost per image.
  c.model.decoder = dict(widths=(64, 32, 16), output_activation="linear", dtype="float32",
                         conv_weight_grad="matmul")
  c.dae = dict(corruption="mask", mask_fraction=0.5, mask_block=1, noise_std=0.5,
               loss_on_corrupted_only=False)

  c.optimizer = dict(name="adamw", learning_rate=2e-3, weight_decay=1e-4, warmup_steps=100,
                     end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 6
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.data.num_workers = 0
    c.model.encoder = dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32")
    c.model.decoder = dict(widths=(8, 4), dtype="float32")
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/dae_mnist.py or :tiny")
  return c
