"""MoCo v3 ViT-S/16 on ImageNet-1k through TFDS: the paper's recipe.

  python -m sslax.train --config=configs/moco_v3_imagenet.py --workdir=gs://BUCKET/mocov3_vits16 \\
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets
  python -m sslax.evaluate --workdir=gs://BUCKET/mocov3_vits16

Needs `imagenet2012` prepared in array_record format (nothing is downloaded at run time).
Settings from Chen, Xie & He 2021 (section 4 and appendix) for ViT-S/16, 300 epochs: batch 4096,
AdamW with peak lr 1.5e-4 x batch/256 after 40 warm-up epochs and cosine decay, weight decay 0.1,
temperature 0.2, momentum 0.99 -> 1 on a cosine schedule, a 3-layer projector and a 2-layer
predictor (4096 hidden, 256 out, batch norm in every layer, the projector's last without
affine), a frozen random patch projection, fixed 2-D sin-cos position embeddings, the CLS token
as the feature, and BYOL's asymmetric views at 224 (crop 0.08-1, blur 1.0 / 0.1, solarize
0 / 0.2). The paper's code reports 73.2% linear top-1 for this setting.

`model.encoder.remat` and `model.encoder.scan_layers` are the encoder's depth options (see
configs/mae_imagenet.py and sslax/models/stack.py).
Not run here (needs a TPU pod slice or 16+ GPUs for several days).
"""
import ml_collections

EPOCH = 1_281_167 // 4096


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "moco_v3"
  c.seed = 0
  c.batch_size = 4096
  c.total_steps = 300 * EPOCH
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5 * EPOCH
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
      size=224, crop_scale=(0.08, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.5, jitter_p=0.8,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_p=0.2,
      blur_sigma=(0.1, 2.0), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
  c.data.global_views = (dict(blur_p=1.0, solarize_p=0.0), dict(blur_p=0.1, solarize_p=0.2))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="vit_small", patch_size=16, pos_embed="sincos", pool="cls",
                         freeze_patch_embed=True, dtype="bfloat16", remat="none",
                         scan_layers=False)
  c.model.projector = dict(hidden_dims=(4096, 4096), out_dim=256, last_bn=True)
  c.model.predictor = dict(hidden_dims=(4096,), out_dim=256)
  c.moco_v3 = dict(base_momentum=0.99, temperature=0.2)

  c.optimizer = dict(name="adamw", learning_rate=1.5e-4, lr_batch_scaling=True,
                     weight_decay=0.1, warmup_steps=40 * EPOCH, end_lr_fraction=0.0,
                     grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=20 * EPOCH,
                linear_learning_rate=1e-3, linear_weight_decay=0.0, batch_size=1024)
  return c
