"""SimDINO on the embedded MNIST digits: a small CNN, 2 global + 4 local crops.

  python -m sslax.train --config=configs/simdino_mnist.py --workdir=runs/simdino
  python -m sslax.evaluate --workdir=runs/simdino

SimDINO (Wu et al. 2025) on the DINO crops of configs/dino_mnist.py: no prototypes, centring or
temperatures; cosine alignment of the head's normalised 64-d features minus the coding rate of the
student's global views (eps 0.05 as in the reference README) weighted 0.01 (at d=64, b=128 the
coding rate is about 60 nats against an alignment of at most 1: weight 1 left the alignment
without effect in a probe), teacher EMA 0.99 -> 1, constant weight decay (the reference drops
DINO's ramp), gradient clipping at 3. 600 steps of batch 128 (19 epochs).

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=simdino`: 2.3 min for training and
evaluation together (131 s of training):
  pretrained encoder              kNN 0.855  linear 0.854
  pretrained head output          kNN 0.819
  random-init encoder             kNN 0.745  linear 0.766
  random-init head output         kNN 0.684
  raw pixels                      kNN 0.948  linear 0.859
300 steps gave 0.822 / 0.821.

Variants: `:tiny` for tests.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "simdino"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 600
  c.log_every_steps = 50
  c.checkpoint_every_steps = 300
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  c.data.augment = dict(
      size=28, crop_scale=(0.4, 1.0), crop_ratio=(0.75, 1.333), rotation_degrees=15.0,
      rotation_p=0.5, flip_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0,
      hue=0.0, grayscale_p=0.0, blur_p=0.5, blur_sigma=(0.1, 1.0), solarize_p=0.0,
      noise_p=0.3, noise_std=0.1, mean=(0.1307,), std=(0.3081,))
  # DINO's asymmetric globals: always blurred / rarely blurred and sometimes solarised.
  c.data.global_views = (dict(blur_p=1.0), dict(blur_p=0.1, solarize_p=0.2))
  c.data.local_view = dict(size=14, crop_scale=(0.2, 0.4))
  c.data.num_local_views = 4

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.head = dict(hidden_dim=512, bottleneck_dim=64, num_layers=3)
  c.simdino = dict(eps=0.05, coding_rate_weight=0.01, base_momentum=0.99)

  c.optimizer = dict(name="adamw", learning_rate=1e-3, weight_decay=0.04, warmup_steps=80,
                     end_lr_fraction=0.0, grad_clip_norm=3.0)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 6
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.data.num_workers = 0
    c.data.num_local_views = 2
    c.model.encoder = dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32")
    c.model.head = dict(hidden_dim=16, bottleneck_dim=8, num_layers=2)
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/simdino_mnist.py or :tiny")
  return c
