"""DINO on the embedded MNIST digits: a small CNN, 2 global + 4 local crops.

  python -m sslax.train --config=configs/dino_mnist.py --workdir=runs/dino
  python -m sslax.evaluate --workdir=runs/dino

The DINO recipe (Caron et al. 2021) scaled down to 4,000 digits and a 2-core CPU: student
temperature 0.1, teacher temperature warmed up 0.04 -> 0.07, centre momentum 0.9, teacher EMA
0.99 -> 1 (the paper's 0.996 is for 300+ epochs; a short run needs a faster teacher), weight decay
0.04 -> 0.4, gradient clipping at 3, prototypes frozen for the first epoch. Crops are adapted to
digits: globals cover 40-100% of the digit at 28x28, locals 20-40% at 14x14; no flips. 600 steps
of batch 128 (19 epochs), the teacher temperature warmed up over the first 200.

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=dino`: 2.1 min for training and evaluation
together (115 s of training, about 720 examples/s with 6 views each):
  pretrained encoder              kNN 0.846  linear 0.864
  pretrained head output          kNN 0.481
  random-init encoder             kNN 0.745  linear 0.766
  random-init head output         kNN 0.684
  raw pixels                      kNN 0.948  linear 0.859
The loss stays near log(1024) = 6.93 (6.75 at the end) and the teacher's entropy near uniform
(6.64 nats): 19 epochs are early days for DINO (the paper's shortest run is 100 epochs), and the
prototype scores are not yet a useful feature, but the encoder's are. Shorter or smaller: 300
steps (100 of warm-up) gave 0.801 / 0.811; 600 steps with 256 prototypes 0.832 / 0.843.

Variants: `:tiny` for tests.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "dino"
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
  c.model.head = dict(out_dim=1024, hidden_dim=512, bottleneck_dim=64, num_layers=3,
                      norm_last_layer=False, use_bn=True)
  c.dino = dict(student_temperature=0.1, teacher_temperature=0.07,
                warmup_teacher_temperature=0.04, warmup_teacher_temperature_steps=200,
                center_momentum=0.9, base_momentum=0.99, freeze_last_layer_steps=31)

  c.optimizer = dict(name="adamw", learning_rate=1e-3, weight_decay=0.04, weight_decay_end=0.4,
                     warmup_steps=30, end_lr_fraction=0.0, grad_clip_norm=3.0)
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
    c.model.head = dict(out_dim=32, hidden_dim=16, bottleneck_dim=8, num_layers=2)
    c.dino.warmup_teacher_temperature_steps = 2
    c.dino.freeze_last_layer_steps = 2
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/dino_mnist.py or :tiny")
  return c
