"""MLP heads (projectors / predictors) that sit on top of encoder features."""
from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Array, Dtype


class MLPHead(nn.Module):
  """[B, D] -> [B, out_dim]: (Dense -> BN -> ReLU) per hidden layer, then a final Dense.

  SimCLR's projector on ResNet-18 features (512 -> 2048 -> 128) is
  `MLPHead(hidden_dims=(2048,), out_dim=128)`; SimCLR v2 keeps the BN (`use_bn=True`). `last_bn`
  appends a BatchNorm without scale/bias to the output, as in MoCo v3's projector. Dense layers use
  flax's default init (LeCun normal on fan_in, truncated; zero bias) and have no bias where a BN
  follows, since the BN's mean subtraction cancels it. Parameters are float32, computation runs in
  `dtype`, BN statistics are reduced in float32. Module names: `hidden{i}_dense`, `hidden{i}_bn`,
  `output_dense`, `output_bn`.
  """
  hidden_dims: Sequence[int]
  out_dim: int
  use_bn: bool = True
  last_bn: bool = False
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    dense = partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32)
    norm = partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                   epsilon=1e-5, dtype=self.dtype, param_dtype=jnp.float32)
    for i, width in enumerate(self.hidden_dims):
      x = dense(width, use_bias=not self.use_bn, name=f"hidden{i}_dense")(x)
      if self.use_bn:
        x = norm(name=f"hidden{i}_bn")(x)
      x = nn.relu(x)
    x = dense(self.out_dim, use_bias=not self.last_bn, name="output_dense")(x)
    if self.last_bn:
      x = norm(use_scale=False, use_bias=False, name="output_bn")(x)
    return x
