"""RotNet on CIFAR-10 (Gidaris, Singh & Komodakis 2018, Sec. 3.1 and Appendix), with ResNet-18.

  python -m sslax.train --config=configs/rotation_cifar10.py --workdir=runs/rotation_cifar10
  python -m sslax.evaluate --workdir=runs/rotation_cifar10

Needs CIFAR-10 prepared for TFDS as array_record (`tfds build cifar10
--file_format=array_record`); set data.data_dir if it is not the default TFDS directory.

The paper's recipe: every image at all 4 rotations (batch 128 images, so 512 per step), SGD with
momentum 0.9, learning rate 0.1 divided by 5 after 30, 60 and 80 epochs, weight decay 5e-4,
100 epochs. Its RotNets are NIN-style networks of 3 to 5
conv blocks; ResNet-18 with a CIFAR stem stands in here. Two deliberate differences:
- sslax/optim.py has no plain SGD with momentum (its "lars" always applies the trust ratio), so
  this uses AdamW at its usual peak rate 1e-3 with a cosine decay instead of the steps. Its
  decoupled weight decay is scaled so that the per-step shrink of the weights, lr * wd = 5e-5,
  equals that of SGD at lr 0.1 with weight decay 5e-4.
- The paper's best CIFAR-10 features come from the 2nd conv block, not the last (the last block
  specialises in rotations); sslax.evaluate measures the encoder's pooled output, which is the
  harder, more conservative test of the same weights.

Not run here (no CIFAR-10 and no accelerator on the development machine): no measured result.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"unknown variant {arg!r}; configs/rotation_cifar10.py has none")
  c = ml_collections.ConfigDict()
  c.method = "rotation"
  c.seed = 0
  c.batch_size = 128  # x4 rotations: 512 images per step, as in the paper.
  c.total_steps = 39_100  # 100 epochs of 50,000 images.
  c.log_every_steps = 100
  c.checkpoint_every_steps = 3910
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # ResNet-18 is small enough to replicate.

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.splits = {"pretrain": "train", "train": "train", "test": "test"}
  c.data.num_workers = 8
  # Light augmentation: crops keeping at least ~77% of the image (like a 32 crop of the image
  # padded by 4) and horizontal flips, as a mirrored upright image is still upright.
  c.data.augment = dict(
      size=32, crop_scale=(0.77, 1.0), crop_ratio=(0.8, 1.25), rotation_degrees=0.0, flip_p=0.5,
      jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, noise_p=0.0,
      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet18", width=64, cifar_stem=True, dtype="float32",
                         conv_weight_grad="auto")
  c.model.classifier = dict(hidden_dims=())  # The paper's linear rotation classifier.

  c.optimizer = dict(name="adamw", learning_rate=1e-3, weight_decay=5e-2, warmup_steps=0,
                     end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)
  return c
