"""Jigsaw puzzles on ImageNet (Noroozi & Favaro 2016, Sec. 3.2 and 4), with ResNet-50.

  python -m sslax.train --config=configs/jigsaw_imagenet.py --workdir=runs/jigsaw_imagenet
  python -m sslax.evaluate --workdir=runs/jigsaw_imagenet

Needs ImageNet prepared for TFDS as array_record (`tfds build imagenet2012
--file_format=array_record` with the manually downloaded archives); set data.data_dir if it is
not the default TFDS directory.

ImageNet rather than CIFAR-10 because the paper's geometry is ImageNet's: 225x225 crops cut into 3x3
cells of 75x75, a 64x64 tile at a random position in each cell, 1,000 permutations chosen for large
Hamming distance, each tile standardised on its own, colour and grayscale images mixed against
chromatic-aberration shortcuts (30% grayscale here), batch 256, SGD at learning rate 0.01, 350,000
iterations. On CIFAR-10's 32x32 images the tiles would be 8 pixels wide and most of that design
would not apply. The paper's network is AlexNet (fc6 per tile, fc7 with 4,096 units on the 9
concatenated tiles, fc8 over the permutations); ResNet-50 stands in, as in Goyal et al. 2019
("Scaling and Benchmarking Self-Supervised Visual Representation Learning"), and the head is one
4,096-unit hidden layer on the 9 x 2,048 concatenated tile features (75M parameters).
Differences from the paper:
- sslax/optim.py has no plain SGD with momentum (its "lars" always applies the trust ratio), so
  this uses AdamW with its usual peak rate 1e-3 and weight decay 0.05, warmed up over 1% of the
  run and decayed on a cosine instead of the paper's steps.
- The crop is a random square of 78% of the image's area (225^2 / 255^2) resized to 225; the
  paper resizes the central square to 255 and crops 225 of it. Its per-channel spatial jitter of
  the tiles is not done.
- sslax.evaluate holds every labelled eval image in memory (225x225x3 float32 is 0.6 MB each), so
  the kNN / linear probe use 10,000 training and 10,000 validation images.

Not run here (no ImageNet and no accelerator on the development machine): no measured result.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"unknown variant {arg!r}; configs/jigsaw_imagenet.py has none")
  c = ml_collections.ConfigDict()
  c.method = "jigsaw"
  c.seed = 0
  c.batch_size = 256
  c.total_steps = 350_000
  c.log_every_steps = 500
  c.checkpoint_every_steps = 10_000
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "imagenet2012"
  c.data.splits = {"pretrain": "train", "train": "train[:10000]",
                   "test": "validation[:10000]"}
  c.data.num_workers = 16
  c.data.augment = dict(
      size=225, crop_scale=(0.78, 0.78), crop_ratio=(1.0, 1.0), rotation_degrees=0.0,
      flip_p=0.5, jitter_p=0.0, grayscale_p=0.3, blur_p=0.0, solarize_p=0.0, noise_p=0.0,
      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet50", width=64, cifar_stem=False, dtype="bfloat16",
                         conv_weight_grad="auto")
  c.model.tile_head = dict(hidden_dims=(), out_dim=1024)  # fc6.
  c.model.classifier = dict(hidden_dims=(4096,))  # fc7, then fc8 over the permutations.
  c.jigsaw = dict(num_permutations=1000, tile_size=64, normalize_tiles=True)

  c.optimizer = dict(name="adamw", learning_rate=1e-3, weight_decay=5e-2, warmup_steps=2500,
                     end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)
  return c
