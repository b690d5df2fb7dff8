"""SimCLR on the embedded MNIST digits (the default of `make train`).

  python -m sslax.train --config=configs/simclr_mnist.py --workdir=runs/default
  python -m sslax.evaluate --workdir=runs/default

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe trained on the same
4,000 with labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=simclr`: 1,300 steps of batch 128 (42 epochs),
2.3 min for training and evaluation together (6.7 min and about 450 examples/s on the machine of
2026-11-28, which gave kNN 0.939 / linear 0.961 / projector kNN 0.963):
  pretrained encoder              kNN 0.940  linear 0.970
  pretrained projector output     kNN 0.964
  random-init encoder             kNN 0.745  linear 0.766
  raw pixels                      kNN 0.948  linear 0.859
The recipe search behind it (1,000 steps each, `conv_weight_grad="xla"`): this recipe gave
encoder kNN 0.935 / linear 0.965 / projector kNN 0.952 in 6.2 min; temperature 0.1 gave
0.932 / 0.960 / 0.957; no colour jitter and lr 3e-3 gave 0.916 / 0.962 / 0.961; a linear
projector gave 0.929 / 0.968 / 0.962.

Why the sizes: on this CPU, XLA's convolutions are slow and memory-bound (the weight gradient of
a 3x3 conv runs at a few GFLOP/s), so a narrow CNN at batch 128 trains 2.5x more epochs in the
same time than 32-64-128-256 channels at batch 256, and that matters more than width here.
`conv_weight_grad="matmul"` (sslax/models/conv.py) computes that gradient as a matmul: 1.15x
faster steps here, spent on 30% more steps. On GPU or TPU set it to "xla".

Variants: `:tiny` shrinks everything for tests (`--config=configs/simclr_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 1300
  c.log_every_steps = 50
  c.checkpoint_every_steps = 250
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  # A NaN/Inf loss, gradient or parameter: "stop", or "rollback" to the last checkpoint and skip
  # the batch (sslax/recovery.py).
  c.nan_policy = dict(action="stop", max_rollbacks=3)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # Replicated parameters: the model is tiny.

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  # Digits are not invariant to flips (2/5, 6/9 under mirror), colour jitter is meaningless on
  # grayscale, and crops below ~40% of the area cut digits into other digits.
  c.data.augment = dict(
      size=28, crop_scale=(0.4, 1.0), crop_ratio=(0.75, 1.333), rotation_degrees=15.0,
      rotation_p=0.5, flip_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0,
      hue=0.0, grayscale_p=0.0, blur_p=0.3, blur_sigma=(0.1, 1.0), solarize_p=0.0,
      noise_p=0.3, noise_std=0.1, mean=(0.1307,), std=(0.3081,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.projector = dict(hidden_dims=(512,), out_dim=128)
  c.simclr = dict(temperature=0.2)

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
    c.model.projector = dict(hidden_dims=(16,), out_dim=8)
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/simclr_mnist.py or :tiny")
  return c
