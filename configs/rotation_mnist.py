"""RotNet rotation prediction on the embedded MNIST digits.

  python -m sslax.train --config=configs/rotation_mnist.py --workdir=runs/rotation
  python -m sslax.evaluate --workdir=runs/rotation

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe trained on the same
4,000 with labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=rotation`: 1,000 steps of batch 64 (256 rotated
images a step, 16 epochs), 1.4 min for training and evaluation together (4.5 min on the machine
of 2026-11-28, which gave kNN 0.896 / linear 0.909); rotation accuracy ~0.82 over the last 200
steps (0, 1 and 8 look alike upside down):
  pretrained encoder              kNN 0.892  linear 0.910
  random-init encoder             kNN 0.745  linear 0.766
  raw pixels                      kNN 0.948  linear 0.859
On 2026-11-28 the checkpoint at step 500 already gave kNN 0.887 / linear 0.914.

Why the sizes: every image is encoded 4 times, so batch 64 costs what SimCLR's batch 128 (two
views) does; the narrow CNN follows configs/simclr_mnist.py for the same CPU reasons.

Variants: `:tiny` shrinks everything for tests (`--config=configs/rotation_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "rotation"
  c.seed = 0
  c.batch_size = 64  # x4 rotations: 256 images per step.
  c.total_steps = 1000
  c.log_every_steps = 50
  c.checkpoint_every_steps = 250
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # Replicated parameters: the model is tiny.

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  # Light augmentation, as in the paper: the task itself supplies the signal. No flips (digits
  # are not mirror-symmetric) and no colour; crops stay large so the digit's orientation is seen.
  c.data.augment = dict(
      size=28, crop_scale=(0.6, 1.0), crop_ratio=(0.8, 1.25), rotation_degrees=0.0, flip_p=0.0,
      jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, noise_p=0.0,
      mean=(0.1307,), std=(0.3081,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.classifier = dict(hidden_dims=())

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
    c.model.classifier = dict(hidden_dims=(16,))
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/rotation_mnist.py or :tiny")
  return c
