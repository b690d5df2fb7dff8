"""Denoising autoencoder (Vincent et al. 2008) on CIFAR-10 with a ResNet-18 (CIFAR stem).

  python -m sslax.train --config=configs/dae_cifar10.py --workdir=runs/dae_cifar10
  python -m sslax.evaluate --workdir=runs/dae_cifar10

Needs CIFAR-10 prepared for TFDS in array_record format (`tfds build cifar10
--file_format=array_record`; pass its directory with --config.data.data_dir=DIR).

The paper trains stacked dense autoencoders on 28x28 digits; this is our own recipe for a
convolutional one, not a paper's: the encoder is the ResNet-18 every CIFAR-10 config here uses,
the decoder upsamples its pooled 512-d feature from 4x4 back to 32x32, and the corruption is the
paper's masking noise on 4x4 blocks (half of them), since single masked pixels of a natural image
can be filled in from their neighbours without any notion of the object. The optimiser is AdamW
at 1e-3 per 256 images with a 10-epoch warm-up and cosine decay over 200 epochs (195 steps per
epoch at batch 256). Augmentation is crops and flips only: colour is part of what the decoder
has to reproduce.

Not run: this machine has neither CIFAR-10 nor an accelerator, so there is no measured result.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "dae"
  c.seed = 0
  c.batch_size = 256
  c.total_steps = 200 * 195
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5000
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.splits = {"pretrain": "train", "train": "train", "test": "test"}
  c.data.num_workers = 8
  c.data.augment = dict(
      size=32, crop_scale=(0.5, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.5, jitter_p=0.0,
      grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, noise_p=0.0,
      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet18", cifar_stem=True, dtype="float32")
  # 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x32 -> 32x32x3.
  c.model.decoder = dict(widths=(256, 128, 64, 32), output_activation="linear", dtype="float32")
  c.dae = dict(corruption="mask", mask_fraction=0.5, mask_block=4, noise_std=0.5,
               loss_on_corrupted_only=False)

  c.optimizer = dict(name="adamw", learning_rate=1e-3, lr_batch_scaling=True, weight_decay=1e-4,
                     warmup_steps=10 * 195, end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=200, knn_temperature=0.1, linear_steps=5000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)
  return c
