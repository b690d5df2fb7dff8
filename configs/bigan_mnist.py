"""BiGAN (Donahue et al. 2017) on the embedded MNIST digits.

  python -m sslax.train --config=configs/bigan_mnist.py --workdir=runs/bigan
  python -m sslax.evaluate --workdir=runs/bigan

Data: 4,000 unlabelled MNIST digits for pretraining; kNN and linear probe on the same 4,000 with
labels, tested on 1,000 held-out digits (see sslax/data/sources.py).

Recipe: BiGAN's MNIST latent size (50, here Gaussian) and its weight decay with DCGAN's Adam
(b1 = 0.5), but 5x BiGAN's learning rate (1e-3) decayed to 0 by a cosine: the paper trains for
400 epochs, this budget is 22 (700 steps of batch 128), and at 2e-4 Adam moves each weight
too little in that time for E and G to catch up with D. The latent ends with a parameter-free
batch norm (`latent_bn`, see sslax/methods/bigan.py). Networks: encoder as every MNIST recipe
here; generator 7x7x64 -> 14x14x32 -> 28x28x16 -> tanh; discriminator with 2 strided convs on
the image, 256 units on the latent, 512 joint units.

Measured alone on the 2-core AMD EPYC machine (no accelerator, 2026-11-29) with
`python benchmarks/method_table.py --methods=bigan`: 2.4 min for training and evaluation
together (7.6 min on the machine of 2026-11-28, which gave kNN 0.856 / linear 0.901). D wins
outright for the first ~200 steps (eg_loss up to 17), then the game settles (d_loss 0.5-0.9,
D accuracy 0.8-0.95 on both kinds of pair). Evaluation of step 700
(random-init and raw-pixel numbers differ from the other MNIST recipes' because these views are
scaled to [-1, 1]):
  pretrained encoder              kNN 0.869  linear 0.903
  random-init encoder             kNN 0.729  linear 0.754
  raw pixels                      kNN 0.918  linear 0.859
1,000 steps gave kNN 0.873 / linear 0.908, but at the ~206 examples/s of the 2026-11-28
machine that is about 10.5 min of training alone, over the 10-minute budget.
The recipe search behind it: the paper's rate 2e-4 without latent_bn, stopped at step 148 with D
still winning every pair, gave kNN 0.635 / linear 0.825. 200 steps of batch 64 at 1e-3 gave
encoder kNN 0.779 with latent_bn and 0.652 without (0.729 at initialisation).

Variants: `:tiny` shrinks everything for tests (`--config=configs/bigan_mnist.py:tiny`).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "bigan"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 700
  c.log_every_steps = 50
  c.checkpoint_every_steps = 350
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()  # Replicated parameters: the model is tiny.

  c.data = ml_collections.ConfigDict()
  c.data.source = "mnist_embedded"
  c.data.num_workers = 2
  # The generator models the data distribution, so the views are the plain digits, scaled to
  # [-1, 1] to match the generator's tanh output (DCGAN).
  c.data.augment = dict(
      size=28, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
      grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, noise_p=0.0, mean=(0.5,), std=(0.5,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.model.generator = dict(widths=(64, 32, 16), output_activation="tanh", dtype="float32",
                           conv_weight_grad="matmul")
  c.model.discriminator = dict(image_widths=(32, 64), latent_dims=(256,), joint_dims=(512,),
                               dtype="float32", conv_weight_grad="matmul")
  c.bigan = dict(latent_dim=50, latent_bn=True, update="simultaneous")

  # DCGAN's Adam (b1 = 0.5) and BiGAN's weight decay; 5x BiGAN's rate (see above), cosine decay.
  c.optimizer = dict(name="adamw", learning_rate=1e-3, b1=0.5, b2=0.999, weight_decay=2.5e-5,
                     warmup_steps=50, end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(knn_k=20, knn_temperature=0.07, linear_steps=1000, linear_learning_rate=1e-2,
                linear_weight_decay=1e-4)

  if arg == "tiny":
    c.batch_size = 16
    c.total_steps = 6
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.data.num_workers = 0
    c.model.encoder = dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32")
    c.model.generator = dict(widths=(8, 4), output_activation="tanh", dtype="float32")
    c.model.discriminator = dict(image_widths=(4,), latent_dims=(8,), joint_dims=(8,),
                                 dtype="float32")
    c.bigan.latent_dim = 4
    c.optimizer.warmup_steps = 2
    c.eval.linear_steps = 50
    c.eval.finetune_steps = 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use configs/bigan_mnist.py or :tiny")
  return c
