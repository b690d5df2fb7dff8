"""BYOL on CIFAR-10 through TFDS with a ResNet-18 (CIFAR stem): the paper's recipe.

  python -m sslax.train --config=configs/byol_cifar10.py --workdir=runs/byol_cifar10 \\
      --config.data.data_dir=/path/to/tensorflow_datasets
  python -m sslax.evaluate --workdir=runs/byol_cifar10

Needs `cifar10` prepared in array_record format in data_dir (nothing is downloaded at run time).
Settings from Grill et al. 2020 (section 3.3 and appendices B, C): LARS with peak rate
0.2 x batch/256 after 10 warm-up epochs and cosine decay, weight decay 1.5e-6 (biases and batch
norm excluded from decay and trust ratio), target momentum 0.996 -> 1 on a cosine schedule,
1,000 epochs, projector and predictor 4096 -> 256, and the asymmetric views (crop 0.08-1, flip,
colour jitter 0.8 with 0.4/0.4/0.2/0.1, grayscale 0.2, blur 1.0 / 0.1, solarize 0 / 0.2).
Adapted to CIFAR-10: the 3x3 stem without max-pool for 32x32 images; batch 512 instead of 4096,
because 4096 would leave 12 updates per epoch on 50,000 images (the rate follows by the
batch/256 rule); the blur kernel keeps the paper's 10% of the image side, 3 taps here.

Not run here (no accelerator, no CIFAR-10 on this machine): expect tens of GPU-hours.
"""
import ml_collections

EPOCH = 50_000 // 512


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "byol"
  c.seed = 0
  c.batch_size = 512
  c.total_steps = 1000 * EPOCH
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5 * EPOCH
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.data_dir = None
  c.data.splits = {"pretrain": "train", "train": "train", "test": "test"}
  c.data.num_workers = 8
  c.data.augment = dict(
      size=32, crop_scale=(0.08, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.5, jitter_p=0.8,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=0.2,
      blur_sigma=(0.1, 2.0), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
  c.data.global_views = (dict(blur_p=1.0, solarize_p=0.0), dict(blur_p=0.1, solarize_p=0.2))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet18", cifar_stem=True, dtype="bfloat16")
  c.model.projector = dict(hidden_dims=(4096,), out_dim=256)
  c.model.predictor = dict(hidden_dims=(4096,), out_dim=256)
  c.byol = dict(base_momentum=0.996)

  c.optimizer = dict(name="lars", learning_rate=0.2, lr_batch_scaling=True, weight_decay=1.5e-6,
                     momentum=0.9, trust_coefficient=0.001, warmup_steps=10 * EPOCH,
                     end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=200, knn_temperature=0.1, linear_steps=5000, linear_learning_rate=0.1,
                linear_weight_decay=0.0, batch_size=1000)
  return c
