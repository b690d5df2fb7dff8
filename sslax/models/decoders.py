"""Image decoders (vector -> image) and a discriminator on (image, vector) pairs.

The denoising autoencoder decodes encoder features back to the image; BiGAN's generator decodes a
latent sample to an image and its discriminator judges (image, latent) pairs. The decoder takes
the target image shape at call time, from the batch it reconstructs or imitates, so a config
never has to repeat the data's size and channels.
"""
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Array, Dtype

from sslax.models.resnet import CONV_WEIGHT_GRADS, conv_and_bn, he_normal_fan_out

OUTPUT_ACTIVATIONS = {"linear": lambda x: x, "tanh": jnp.tanh}


def upsample2(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling of [B, H, W, C]; followed by a conv it avoids the
  checkerboard artefacts of strided transposed convolutions (Odena et al. 2016)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


class ConvDecoder(nn.Module):
  """[B, D] -> [B, H, W, C]: a dense map to a coarse grid, then (2x upsample, 3x3 conv) stages.

  The dense layer fills an (H / 2**n) x (W / 2**n) grid of `widths[0]` channels, n being
  `len(widths) - 1`; stage i upsamples 2x and convolves to `widths[i]` channels; a final 3x3 conv
  maps to C channels and `output_activation` ("linear" for normalised targets, "tanh" for images
  scaled to [-1, 1] as in DCGAN). Hidden layers use BatchNorm + ReLU, as DCGAN's generator does.
  The output conv starts at zero, so the decoder starts at the mean image (0 after normalisation)
  instead of at He-scaled noise several times the data's variance.
  Names: `input_dense`, `input_bn`, `stage{i}_conv`, `stage{i}_bn`, `output_conv`,
  `output_bias`.
  """
  widths: Sequence[int] = (64, 32, 16)
  output_activation: str = "linear"
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9
  conv_weight_grad: str = "xla"

  @nn.compact
  def __call__(self, z: Array, shape: Sequence[int], train: bool) -> Array:
    if self.output_activation not in OUTPUT_ACTIVATIONS:
      raise ValueError(f"output_activation must be one of {sorted(OUTPUT_ACTIVATIONS)}, "
                       f"got {self.output_activation!r}")
    height, width, channels = shape
    scale = 2 ** (len(self.widths) - 1)
    if height % scale or width % scale:
      raise ValueError(f"{len(self.widths) - 1} upsampling stages need the image size "
                       f"{height}x{width} to be divisible by {scale}; change decoder widths")
    conv, norm = conv_and_bn(self.dtype, self.bn_momentum, train, self.conv_weight_grad)
    x = nn.Dense(height // scale * width // scale * self.widths[0], use_bias=False,
                 dtype=self.dtype, param_dtype=jnp.float32, name="input_dense")(z)
    x = x.reshape(z.shape[0], height // scale, width // scale, self.widths[0])
    x = nn.relu(norm(name="input_bn")(x))
    for i, features in enumerate(self.widths[1:], start=1):
      x = conv(features, (3, 3), padding=1, name=f"stage{i}_conv")(upsample2(x))
      x = nn.relu(norm(name=f"stage{i}_bn")(x))
    x = conv(channels, (3, 3), padding=1, kernel_init=nn.initializers.zeros, name="output_conv")(x)
    bias = self.param("output_bias", nn.initializers.zeros, (channels,), jnp.float32)
    return OUTPUT_ACTIVATIONS[self.output_activation](x.astype(jnp.float32) + bias)


class PairDiscriminator(nn.Module):
  """(images [B, H, W, C], latents [B, L]) -> logits [B]: BiGAN's joint discriminator.

  An image branch of stride-2 3x3 convs (`image_widths`) flattened without pooling, so the
  layout of the image reaches the decision; a latent branch of dense layers (`latent_dims`); the
  two concatenated into a joint MLP (`joint_dims`) and one logit. LeakyReLU(0.2) throughout
  (DCGAN). No normalisation: every example's logit depends on that example alone, so real and
  fake pairs can share one call and the gradient of the discriminator's loss is a plain sum over
  examples. Layers therefore carry biases.
  """
  image_widths: Sequence[int] = (32, 64)
  latent_dims: Sequence[int] = (256,)
  joint_dims: Sequence[int] = (512,)
  negative_slope: float = 0.2
  dtype: Dtype = jnp.float32
  conv_weight_grad: str = "xla"

  @nn.compact
  def __call__(self, images: Array, latents: Array) -> Array:
    conv = partial(CONV_WEIGHT_GRADS[self.conv_weight_grad], kernel_size=(3, 3), strides=2,
                   padding=1, kernel_init=he_normal_fan_out, dtype=self.dtype,
                   param_dtype=jnp.float32)
    dense = partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32)
    act = partial(nn.leaky_relu, negative_slope=self.negative_slope)
    x = images.astype(self.dtype)
    for i, features in enumerate(self.image_widths):
      x = conv(features, name=f"image{i}_conv")(x)
      x = act(x + self.param(f"image{i}_bias", nn.initializers.zeros, (features,)))
    x = x.reshape(x.shape[0], -1)
    z = latents.astype(self.dtype)
    for i, features in enumerate(self.latent_dims):
      z = act(dense(features, name=f"latent{i}_dense")(z))
    h = jnp.concatenate([x, z], axis=-1)
    for i, features in enumerate(self.joint_dims):
      h = act(dense(features, name=f"joint{i}_dense")(h))
    return dense(1, name="output_dense")(h)[:, 0].astype(jnp.float32)


def make_decoder(cfg: Mapping[str, Any]) -> ConvDecoder:
  """ConvDecoder from a dict or ConfigDict: `widths`, optional `output_activation`, `dtype`
  ("float32" or "bfloat16") and `conv_weight_grad` (see sslax/models/conv.py)."""
  return ConvDecoder(widths=tuple(int(w) for w in cfg["widths"]),
                     output_activation=cfg.get("output_activation", "linear"),
                     dtype=jnp.dtype(cfg.get("dtype", "float32")),
                     conv_weight_grad=cfg.get("conv_weight_grad", "xla"))
