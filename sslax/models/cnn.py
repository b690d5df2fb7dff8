"""A small convolutional encoder for 28x28 grayscale digits (MNIST-sized inputs)."""
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Array, Dtype

from sslax.models.resnet import conv_and_bn


class SmallCNN(nn.Module):
  """Plain conv stack: images [B, H, W, C] -> pooled features [B, widths[-1]].

  Stage s (1-based) is `convs_per_stage` x (3x3 conv + BatchNorm + ReLU) with `widths[s-1]`
  channels. Stages after the first downsample with a stride-2 first conv rather than 2x2
  max-pooling: it is learned, costs a quarter of a full-resolution conv, and with padding 1 keeps
  the border of odd maps (28 -> 14 -> 7 -> 4) where a 2x2 pool would drop 7 -> 3. Module names:
  `stage{s}_conv{c}`, `stage{s}_bn{c}` (c 0-based).
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  convs_per_stage: int = 1
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9
  conv_weight_grad: str = "xla"

  @property
  def num_features(self) -> int:
    return self.widths[-1]

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv, norm = conv_and_bn(self.dtype, self.bn_momentum, train, self.conv_weight_grad)
    for s, width in enumerate(self.widths, start=1):
      for c in range(self.convs_per_stage):
        strides = 2 if s > 1 and c == 0 else 1
        x = conv(width, (3, 3), strides=strides, padding=1, name=f"stage{s}_conv{c}")(x)
        x = nn.relu(norm(name=f"stage{s}_bn{c}")(x))
    return jnp.mean(x, axis=(1, 2), dtype=jnp.float32).astype(self.dtype)
