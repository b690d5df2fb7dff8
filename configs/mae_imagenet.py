"""MAE ViT-B/16 on ImageNet-1k through TFDS: the paper's recipe.

  python -m sslax.train --config=configs/mae_imagenet.py --workdir=gs://BUCKET/mae_vitb16 \\
      --config.data.data_dir=gs://BUCKET/tensorflow_datasets
  python -m sslax.evaluate --workdir=gs://BUCKET/mae_vitb16

Needs `imagenet2012` prepared in array_record format (nothing is downloaded at run time).
Settings from He et al. 2022 (section 4 and appendix A.1, Table 8): batch 4096, AdamW with
betas (0.9, 0.95), weight decay 0.05, peak lr 1.5e-4 x batch/256 after 40 warm-up epochs and
cosine decay, 800 epochs (`:1600` for the 1600 of the paper's best results), 75% of the patches
masked, per-patch normalised pixel targets, a ViT-B/16 encoder with fixed 2-D sin-cos position
embeddings and a 512-wide, 8-block decoder (16 heads, as in the paper's code), random resized
crops (scale 0.2-1, as in the paper's code) and horizontal flips as the only augmentation. The
paper reports 83.6% top-1 after fine-tuning this ViT-B/16 (1600 epochs); MAE's features are made
for fine-tuning, so the frozen-feature kNN and linear probe here read lower than contrastive ones.

`sharding_rules` split attention heads and MLP units over the `tensor` mesh axis (1 here: plain
data parallelism, as ViT-B fits every accelerator); set mesh tensor=2 or 4 to use them.

Depth options of the encoder (sslax/models/stack.py), set to their defaults so that
`--config.model.encoder.remat=...` can override them: the encoder sees 50 tokens a view, so its
activations are small. `model.encoder.remat="dots_saveable"` keeps
only the weight matmuls' outputs for the backward pass ("full": each block's input) for larger
per-device batches, at the price of recomputing the rest; `model.encoder.scan_layers=True`
traces and compiles one block under `nn.scan` with the parameters stacked under `blocks/`
(the sharding rules apply unchanged), but MAE's fine-tuning protocol, layer-wise lr decay
(`eval.finetune_layer_decay`), needs the per-block layout and refuses it.

Not run here (needs a TPU pod slice or 32+ GPUs for several days).
"""
import ml_collections

EPOCH = 1_281_167 // 4096


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "", "1600"):
    raise ValueError(f"unknown variant {arg!r}; use configs/mae_imagenet.py or :1600")
  c = ml_collections.ConfigDict()
  c.method = "mae"
  c.seed = 0
  c.batch_size = 4096
  c.total_steps = (1600 if arg == "1600" else 800) * EPOCH
  c.log_every_steps = 100
  c.checkpoint_every_steps = 10 * EPOCH
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = (
      ("attn/(query|key|value)/kernel", (None, "tensor", None)),
      ("attn/(query|value)/bias", ("tensor", None)),
      ("attn/out/kernel", ("tensor", None, None)),
      ("mlp/fc1/kernel", (None, "tensor")),
      ("mlp/fc1/bias", ("tensor",)),
      ("mlp/fc2/kernel", ("tensor", None)),
  )

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"
  c.data.name = "imagenet2012"
  c.data.data_dir = None
  c.data.splits = {"pretrain": "train", "train": "train", "test": "validation"}
  c.data.num_workers = 16
  c.data.augment = dict(
      size=224, crop_scale=(0.2, 1.0), crop_ratio=(0.75, 1.333), flip_p=0.5, jitter_p=0.0,
      grayscale_p=0.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="vit_base", patch_size=16, pos_embed="sincos", pool="cls",
                         dtype="bfloat16", remat="none", scan_layers=False)
  c.model.decoder = dict(hidden_dim=512, depth=8, num_heads=16)
  c.mae = dict(mask_ratio=0.75, norm_pix=True)

  c.optimizer = dict(name="adamw", learning_rate=1.5e-4, lr_batch_scaling=True, b1=0.9, b2=0.95,
                     weight_decay=0.05, warmup_steps=40 * EPOCH, end_lr_fraction=0.0,
                     grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=20 * EPOCH,
                linear_learning_rate=1e-3, linear_weight_decay=0.0, batch_size=1024)
  return c
