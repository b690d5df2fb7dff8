"""SimCLR on CIFAR-10 through TFDS with a ResNet-18 (CIFAR stem): the standard small benchmark.

  python -m sslax.train --config=configs/simclr_cifar10.py --workdir=runs/simclr_cifar10 \\
      --config.data.data_dir=/path/to/tensorflow_datasets
  python -m sslax.evaluate --workdir=runs/simclr_cifar10

Needs `cifar10` prepared in array_record format in data_dir (nothing is downloaded at run time).
Settings: Chen et al. 2020 (SimCLR), appendix B.9 for CIFAR-10: ResNet with a 3x3 stem and no
max-pool, batch 512, LARS with weight decay 1e-6 excluded from biases and BN, crop/flip/colour
jitter 0.8 (strength 0.5) and grayscale 0.2 without blur, a 2-layer projector to 128, 1,000
epochs with 10 warm-up epochs. The peak rate 0.4 x batch/256 and temperature 0.2 follow the
tuned CIFAR-10 recipe that solo-learn publishes (about 91% linear top-1 after 1,000 epochs);
the paper reports 94.0% with ResNet-50 (4x wider) at batch 1024.

Not run here (no accelerator, no CIFAR-10 on this machine): expect tens of GPU-hours.
"""
import ml_collections

EPOCH = 50_000 // 512


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "simclr"
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
      brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2, blur_p=0.0,
      solarize_p=0.0, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet18", cifar_stem=True, dtype="bfloat16")
  c.model.projector = dict(hidden_dims=(2048,), out_dim=128)
  c.simclr = dict(temperature=0.2)

  c.optimizer = dict(name="lars", learning_rate=0.4, lr_batch_scaling=True, weight_decay=1e-6,
                     momentum=0.9, trust_coefficient=0.001, warmup_steps=10 * EPOCH,
                     end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=200, knn_temperature=0.1, linear_steps=5000, linear_learning_rate=0.1,
                linear_weight_decay=0.0, batch_size=1000)
  return c
