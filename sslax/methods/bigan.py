"""BiGAN: Donahue, Krähenbühl & Darrell 2017, "Adversarial Feature Learning" (the same model as
ALI, Dumoulin et al. 2017, "Adversarially Learned Inference").

An encoder E maps images to latents (the encoder trunk, then a linear map to `latent_dim`), a
generator G maps latents z ~ N(0, I) to images, and a discriminator D tells real pairs
(x, E(x)) from generated pairs (G(z), z). At the optimum E and G invert each other, so E learns
the latent code of a generative model of the data without labels. Losses (D's logit l, label 1 =
real pair), each a batch mean:
  L_D  = softplus(-l(x, E(x))) + softplus(l(G(z), z))    (D's cross-entropy)
  L_EG = softplus(l(x, E(x))) + softplus(-l(G(z), z))    (the labels inverted: the
                                                          non-saturating form of the paper)

The shared train step takes one gradient of one scalar, so the two players are one sum with
stop-gradients: L_D sees E(x) and G(z) through stop_gradient, L_EG sees D's parameters through
stop_gradient. The gradient of the sum w.r.t. D is then exactly that of L_D and w.r.t. E, G that
of L_EG (tests/test_bigan.py checks it).

`config.bigan.update`:
  "simultaneous" (default): both terms every step, each player stepping against the other's
    current parameters.
  "alternating": D's term on even steps, E/G's term on odd steps (a jnp.where on the step, whose
    gradient is exactly zero for the idle player). The shared optimizer still touches the idle
    player: AdamW applies its decaying first moment (with b1 = 0.5 a half-size repeat of that
    player's last step, a quarter the step after), the zero gradient pulls the second moment
    down by b2 (so effective step sizes grow by up to sqrt(2)), and weight decay shrinks its
    kernels by lr·wd (5e-9 at the paper's settings). That amounts to momentum spread over the
    idle step, which is acceptable for Adam with b1 = 0.5; avoiding it would need a per-group,
    per-step optimizer mask in sslax/optim.py. Simultaneous updates have no such effect.

`config.bigan.latent_bn` ends E with a batch norm without scale or bias (MLPHead's last_bn), so
over each batch every latent dimension has mean 0 and variance 1, as under the prior. Without it
D first tells the pairs apart by E(x)'s mean and scale alone, a cue that E's linear map takes
many steps of Adam at GAN learning rates to remove; on the MNIST recipe it lowered the kNN
accuracy of the features below that of the random-init encoder.

Batch norm: E (the encoder trunk and latent_bn) and G use it in training mode; D has none (see
PairDiscriminator), so D's logits of an example do not depend on the rest of the batch, and real
and fake pairs share one D call. Statistics of E and G are over the global batch, as everywhere.

`features` returns the encoder trunk's pooled output, before the linear map to the latent: it is
the level every other method reports, the random-init baseline measures the same trunk, and the
latent is an affine function of it (a linear probe on the trunk can do anything a probe on the
latent can); in the MNIST recipe search the latent's kNN accuracy was also lower (0.729 against
the trunk's 0.779 after 200 steps).
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sslax.methods.base import apply_module, split_variables
from sslax.models import make_encoder
from sslax.models.decoders import PairDiscriminator, make_decoder
from sslax.models.heads import MLPHead

UPDATES = ("simultaneous", "alternating")


def d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """D's cross-entropy: real pairs (x, E(x)) labelled 1, generated pairs (G(z), z) labelled 0."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def eg_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """E and G's non-saturating loss: the same cross-entropy with the labels inverted."""
  return jnp.mean(jax.nn.softplus(real_logits)) + jnp.mean(jax.nn.softplus(-fake_logits))


class Method:
  """config.bigan.{latent_dim, latent_bn, update};
  config.model.{encoder, generator, discriminator}; config.data.augment."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.latent_dim = int(config.bigan.latent_dim)
    self.update = config.bigan.get("update", "simultaneous")
    if self.update not in UPDATES:
      raise ValueError(f"bigan.update must be one of {UPDATES}, got {self.update!r}")
    self.encoder = make_encoder(config.model.encoder)
    dtype = jnp.dtype(config.model.encoder.get("dtype", "float32"))
    self.to_latent = MLPHead(hidden_dims=(), out_dim=self.latent_dim,
                             last_bn=config.bigan.get("latent_bn", False), dtype=dtype)
    self.generator = make_decoder(config.model.generator)
    disc = config.model.discriminator
    self.discriminator = PairDiscriminator(
        image_widths=tuple(disc.image_widths), latent_dims=tuple(disc.latent_dims),
        joint_dims=tuple(disc.joint_dims), dtype=jnp.dtype(disc.get("dtype", "float32")),
        conv_weight_grad=disc.get("conv_weight_grad", "xla"))

  def views(self) -> list[Any]:
    return [self.config.data.augment]

  def init(self, rng: jax.Array, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    enc_rng, lat_rng, gen_rng, disc_rng = jax.random.split(rng, 4)
    x = batch["views"][0]
    encoder_vars = self.encoder.init(enc_rng, x, train=False)
    feats = self.encoder.apply(encoder_vars, x, train=False)
    latent_vars = self.to_latent.init(lat_rng, feats, train=False)
    z = jnp.zeros((x.shape[0], self.latent_dim), jnp.float32)
    generator_vars = self.generator.init(gen_rng, z, x.shape[1:], train=False)
    disc_vars = self.discriminator.init(disc_rng, x, z)
    enc_params, enc_state = split_variables(encoder_vars)
    lat_params, lat_state = split_variables(latent_vars)
    gen_params, gen_state = split_variables(generator_vars)
    params = {"encoder": enc_params, "to_latent": lat_params, "generator": gen_params,
              "discriminator": disc_vars["params"]}
    return params, {"encoder": enc_state, "to_latent": lat_state, "generator": gen_state}, {}

  def latents(self, rng: jax.Array, batch: int) -> jax.Array:
    """z ~ N(0, I), [batch, latent_dim]."""
    return jax.random.normal(rng, (batch, self.latent_dim), jnp.float32)

  def encode_and_generate(self, params, model_state, images, z, train=True):
    """(E(images), G(z), new model_state)."""
    feats, enc_state = apply_module(self.encoder, params["encoder"], model_state["encoder"],
                                    images, train=train)
    encoded, lat_state = apply_module(self.to_latent, params["to_latent"],
                                      model_state["to_latent"], feats, train=train)
    generated, gen_state = apply_module(self.generator, params["generator"],
                                        model_state["generator"], z, images.shape[1:],
                                        train=train)
    return (encoded.astype(jnp.float32), generated,
            {"encoder": enc_state, "to_latent": lat_state, "generator": gen_state})

  def discriminate(self, d_params, images, latents):
    """D's logits [B] of (image, latent) pairs."""
    return self.discriminator.apply({"params": d_params}, images, latents)

  def loss(self, params, model_state, extra, batch, rng, step):
    x = batch["views"][0]
    n = x.shape[0]
    z = self.latents(rng, n)
    encoded, generated, new_state = self.encode_and_generate(params, model_state, x, z)
    images = jnp.concatenate([x.astype(jnp.float32), generated])
    codes = jnp.concatenate([encoded, z])
    sg = jax.lax.stop_gradient
    # Same values twice; the stop-gradients route each player's gradient to its own loss.
    d_logits = self.discriminate(params["discriminator"], sg(images), sg(codes))
    eg_logits = self.discriminate(sg(params["discriminator"]), images, codes)
    loss_d = d_loss(d_logits[:n], d_logits[n:])
    loss_eg = eg_loss(eg_logits[:n], eg_logits[n:])
    if self.update == "simultaneous":
      total = loss_d + loss_eg
    else:
      total = jnp.where(step % 2 == 0, loss_d, loss_eg)
    metrics = {"d_loss": loss_d, "eg_loss": loss_eg,
               "d_real_accuracy": jnp.mean(d_logits[:n] > 0),
               "d_fake_accuracy": jnp.mean(d_logits[n:] < 0)}
    return total, (metrics, new_state, extra)

  def update_extra(self, params, extra, step):
    del params, step
    return extra

  feature_levels = ("encoder",)

  def features(self, params, model_state, images, level="encoder"):
    del level  # Only the encoder trunk (see the module docstring).
    feats, _ = apply_module(self.encoder, params["encoder"], model_state["encoder"], images,
                            train=False)
    return feats.astype(jnp.float32)
