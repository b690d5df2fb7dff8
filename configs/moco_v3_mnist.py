"""MoCo v3 on the embedded MNIST digits.

  python -m sslax.train --config=configs/moco_v3_mnist.py --workdir=runs/moco_v3
  python -m sslax.evaluate --workdir=runs/moco_v3

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe trained on the same
4,000 with labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

The paper (Chen, Xie & He 2021) takes BYOL's asymmetric views; they are configs/byol_mnist.py's
digit versions. The encoder and sizes are SimCLR's MNIST ones (see configs/simclr_mnist.py); the
3-layer projector (last batch norm without affine) and 2-layer predictor are the paper's, scaled
down.

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=moco_v3`: 800 steps of batch 128 (26 epochs),
1.7 min for training and evaluation together (6.2 min on the machine of 2026-11-28, which gave
kNN 0.928 / linear 0.958):
  pretrained encoder              kNN 0.932  linear 0.954
  pretrained projector output     kNN 0.917
  random-init encoder             kNN 0.745  linear 0.766
  raw pixels                      kNN 0.948  linear 0.859
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "moco_v3"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 800
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
  c.data.augment = dict(
      size=28, crop_scale=(0.4, 1.0), crop_ratio=(0.75, 1.333), rotation_degrees=15.0,
      rotation_p=0.5, flip_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0,
      hue=0.0, grayscale_p=0.0, blur_sigma=(0.1, 1.0), noise_p=0.3, noise_std=0.1,
      mean=(0.1307,), std=(0.3081,))
  c.data.global_views = (dict(blur_p=1.0, solarize_p=0.0), dict(blur_p=0.1, solarize_p=0.2))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.projector = dict(hidden_dims=(512, 512), out_dim=128, last_bn=True)
  c.model.predictor = dict(hidden_dims=(512,), out_dim=128)
  # Momentum at the low end of the paper's range for this short run (see configs/byol_mnist.py).
  c.moco_v3 = dict(base_momentum=0.99, temperature=0.2)

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
    c.model.projector = dict(hidden_dims=(16, 16), out_dim=8, last_bn=True)
    c.model.predictor = dict(hidden_dims=(16,), out_dim=8)
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/moco_v3_mnist.py or :tiny")
  return c
