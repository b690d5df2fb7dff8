"""BiGAN (Donahue et al. 2017) on CIFAR-10 with a ResNet-18 (CIFAR stem) encoder.

  python -m sslax.train --config=configs/bigan_cifar10.py --workdir=runs/bigan_cifar10
  python -m sslax.evaluate --workdir=runs/bigan_cifar10

Needs CIFAR-10 prepared for TFDS in array_record format (`tfds build cifar10
--file_format=array_record`; pass its directory with --config.data.data_dir=DIR).

The paper's optimisation settings: Adam with learning rate 2e-4, b1 = 0.5 and weight decay
2.5e-5, batch 128, a 200-d latent and 400 epochs (390 steps per epoch). The rate is constant
after a short warm-up, and the decay is AdamW's decoupled form (times the rate). Networks: the
encoder is the ResNet-18 every CIFAR-10 config here uses (plus the linear map to the latent);
the generator is DCGAN-like (4x4x512 up to 32x32, batch norm, tanh output for images scaled to
[-1, 1]); the discriminator joins a 3-layer strided-conv image branch and a one-layer latent
branch in a 1024-unit MLP, without batch norm (see sslax/models/decoders.py). Not from the
paper: the latent's parameter-free batch norm (`latent_bn`), which the MNIST recipe needed (see
configs/bigan_mnist.py). No augmentation: the generator models the images as they are.

Not run: this machine has neither CIFAR-10 nor an accelerator, so there is no measured result.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "bigan"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 400 * 390
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
      size=32, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
      grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, noise_p=0.0, mean=(0.5,), std=(0.5,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="resnet18", cifar_stem=True, dtype="float32")
  c.model.generator = dict(widths=(512, 256, 128, 64), output_activation="tanh",
                           dtype="float32")
  c.model.discriminator = dict(image_widths=(64, 128, 256), latent_dims=(512,),
                               joint_dims=(1024,), dtype="float32")
  c.bigan = dict(latent_dim=200, latent_bn=True, update="simultaneous")

  c.optimizer = dict(name="adamw", learning_rate=2e-4, b1=0.5, b2=0.999, weight_decay=2.5e-5,
                     warmup_steps=500, end_lr_fraction=1.0, grad_clip_norm=None)
  c.eval = dict(knn_k=200, knn_temperature=0.1, linear_steps=5000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)
  return c
