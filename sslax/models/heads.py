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


class DINOHead(nn.Module):
  """[B, D] -> [B, out_dim] prototype logits (Caron et al. 2021).

  An MLP (Dense + GELU, no batch norm, so it works with ViTs and any batch split) down to a
  `bottleneck_dim` feature that is L2-normalised, then a weight-normalised linear layer without
  bias: each column of `last_layer` is divided by its norm, so the logits are cosines (times
  `last_layer_scale` unless `norm_last_layer`, DINO's default, fixes that scale to 1). Because of
  the normalisation, weight decay cannot shrink the last layer's function, and a method can
  freeze it for the first steps by stopping its gradient. `features_only=True` returns the
  normalised bottleneck feature (SimDINO's output, without prototypes). `use_bn` adds batch norm
  after each hidden layer (DINO's `use_bn_in_head`): on small data it keeps the outputs of
  different images apart early on, where a plain MLP on a random CNN maps every image to nearly
  the same direction and centring then flattens the teacher to uniform.
  """
  out_dim: int = 0  # Unused with features_only.
  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_layers: int = 3
  norm_last_layer: bool = True
  use_bn: bool = False
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: Array, train: bool, features_only: bool = False) -> Array:
    init = nn.initializers.truncated_normal(0.02)
    dense = partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=init)
    for i in range(self.num_layers - 1):
      x = dense(self.hidden_dim, name=f"mlp{i}")(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5,
                         dtype=self.dtype, param_dtype=jnp.float32, name=f"bn{i}")(x)
      x = nn.gelu(x, approximate=False)
    x = dense(self.bottleneck_dim, name="bottleneck")(x).astype(jnp.float32)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    if features_only:
      return x
    v = self.param("last_layer", init, (self.bottleneck_dim, self.out_dim), jnp.float32)
    w = v / jnp.maximum(jnp.linalg.norm(v, axis=0, keepdims=True), 1e-12)
    if not self.norm_last_layer:
      w = w * self.param("last_layer_scale", nn.initializers.ones, (self.out_dim,), jnp.float32)
    return x @ w
