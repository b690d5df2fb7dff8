"""SimDINO ViT-S/16 on ImageNet-1k through TFDS: the reference recipe.

  python -m sslax.train --config=configs/simdino_imagenet.py --workdir=gs://BUCKET/simdino_vits16 \\
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets
  python -m sslax.evaluate --workdir=gs://BUCKET/simdino_vits16

Needs `imagenet2012` prepared in array_record format (nothing is downloaded at run time).
Wu et al. 2025 keep DINO's ViT-S/16 pipeline (below) and replace its loss: no prototypes,
centring or temperatures; a 256-d normalised head output, cosine alignment and the coding rate
with eps 0.05 (reference README); constant weight decay 0.04 instead of DINO's ramp; teacher EMA
0.996 -> 1. DINO's settings kept: batch 1024,
AdamW with peak lr 0.0005 x batch/256 after 10 warm-up epochs, cosine to 1e-6, gradient
clipping at 3.0, a 3-layer 2048-d MLP head, 2 global crops of 224 (scale 0.4-1; blur 1.0 / 0.1
+ solarize 0.2) and 10 local crops of 96 (scale 0.05-0.4, blur 0.5), 100 epochs.

`model.encoder.remat` and `model.encoder.scan_layers` are the encoder's depth options (see
configs/mae_imagenet.py and sslax/models/stack.py).
Not run here (needs a TPU pod slice or 8+ GPUs for about two days).
"""
import ml_collections

EPOCH = 1_281_167 // 1024


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "simdino"
  c.seed = 0
  c.batch_size = 1024
  c.total_steps = 100 * EPOCH
  c.log_every_steps = 100
  c.checkpoint_every_steps = EPOCH
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "imagenet2012"
  c.data.data_dir = None
  c.data.splits = {"pretrain": "train", "train": "train", "test": "validation"}
  c.data.num_workers = 16
  c.data.augment = dict(
      size=224, crop_scale=(0.4, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.5, jitter_p=0.8,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=0.2, blur_p=0.5,
      blur_sigma=(0.1, 2.0), solarize_p=0.0, mean=(0.485, 0.456, 0.406),
      std=(0.229, 0.224, 0.225))
  c.data.global_views = (dict(blur_p=1.0), dict(blur_p=0.1, solarize_p=0.2))
  c.data.local_view = dict(size=96, crop_scale=(0.05, 0.4))
  c.data.num_local_views = 10

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="vit_small", patch_size=16, pos_embed="learned", pool="cls",
                         dtype="bfloat16", remat="none", scan_layers=False)
  c.model.head = dict(hidden_dim=2048, bottleneck_dim=256, num_layers=3)
  c.simdino = dict(eps=0.05, coding_rate_weight=1.0, base_momentum=0.996)

  c.optimizer = dict(name="adamw", learning_rate=5e-4, lr_batch_scaling=True, weight_decay=0.04,
                     warmup_steps=10 * EPOCH,
                     end_lr_fraction=1e-6 / (5e-4 * 4), grad_clip_norm=3.0)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=20 * EPOCH,
                linear_learning_rate=1e-3, linear_weight_decay=0.0, batch_size=1024)
  return c
