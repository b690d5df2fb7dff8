"""ResNet encoders (He et al. 2016) returning globally pooled features.

Layout follows torchvision's ResNet v1.5 (the stride of a bottleneck sits on its 3x3 conv) so that
parameter counts and shapes match the usual reference numbers. Module names are stable because
sharding rules and weight-decay masks match parameter paths by regex, e.g.
`stem_conv/kernel`, `stage2_block0/conv1/kernel`, `stage2_block0/shortcut_bn/scale`.
"""
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Array, Dtype

from sslax.models.conv import MatmulGradConv


def he_normal_fan_out(key: Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> Array:
  """He-normal conv init, std sqrt(2 / fan_out) with fan_out = kh * kw * out (as torchvision).

  Same distribution as `variance_scaling(2.0, "fan_out", "normal")`, but drawn as a flat vector and
  reshaped: XLA:CPU takes ~10 s to compile one partitionable-threefry draw of a rank-4 shape
  (under a second for rank 1), which made initialising even a tiny ResNet on CPU take ~40 s.
  """
  std = math.sqrt(2.0 / (math.prod(shape[:-2]) * shape[-1]))
  return (std * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)


# "xla": flax's nn.Conv; "matmul" / "chunked": the same conv with a faster weight gradient on
# XLA:CPU (sslax/models/conv.py); "auto": "chunked" on CPU, "xla" on GPU and TPU.
CONV_WEIGHT_GRADS = {"xla": partial(nn.Conv, use_bias=False),
                     "matmul": partial(MatmulGradConv, weight_grad="matmul"),
                     "chunked": partial(MatmulGradConv, weight_grad="chunked")}


def resolve_conv_weight_grad(conv_weight_grad: str) -> str:
  """The CONV_WEIGHT_GRADS key for a config value: "auto" picks by the default backend."""
  if conv_weight_grad == "auto":
    return "chunked" if jax.default_backend() == "cpu" else "xla"
  if conv_weight_grad not in CONV_WEIGHT_GRADS:
    raise ValueError(f"conv_weight_grad must be one of {sorted([*CONV_WEIGHT_GRADS, 'auto'])}, "
                     f"got {conv_weight_grad!r}")
  return conv_weight_grad


def conv_and_bn(dtype: Dtype, bn_momentum: float, train: bool,
                conv_weight_grad: str = "xla") -> tuple[Callable, Callable]:
  """Layer factories shared by the encoders: bias-free He-init conv and BatchNorm.

  Convs have no bias because a BatchNorm follows each one. Parameters are float32 and computation
  runs in `dtype`; BatchNorm reduces its statistics in float32 whatever `dtype` is. BatchNorm uses
  no `axis_name`: under `jax.jit` over a batch-sharded global array its mean over axis 0 already
  is the global-batch mean (GSPMD inserts the cross-device reduction).
  """
  conv = partial(CONV_WEIGHT_GRADS[resolve_conv_weight_grad(conv_weight_grad)],
                 kernel_init=he_normal_fan_out, dtype=dtype, param_dtype=jnp.float32)
  norm = partial(nn.BatchNorm, use_running_average=not train, momentum=bn_momentum, epsilon=1e-5,
                 dtype=dtype, param_dtype=jnp.float32)
  return conv, norm


class _ResidualBlock(nn.Module):
  """Fields shared by the residual blocks."""
  features: int
  strides: int = 1
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9
  zero_init_residual: bool = True
  conv_weight_grad: str = "xla"

  def last_scale_init(self) -> Callable:
    """A zero last-BN scale makes the branch output 0: the block starts as relu(shortcut(x))."""
    return nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones


class BasicBlock(_ResidualBlock):
  """Two 3x3 convs plus shortcut: [B, H, W, C] -> [B, H/strides, W/strides, features]."""
  expansion: ClassVar[int] = 1

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv, norm = conv_and_bn(self.dtype, self.bn_momentum, train, self.conv_weight_grad)
    y = conv(self.features, (3, 3), strides=self.strides, padding=1, name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.features, (3, 3), padding=1, name="conv2")(y)
    y = norm(scale_init=self.last_scale_init(), name="bn2")(y)
    return nn.relu(y + _shortcut(self, x, conv, norm))


class BottleneckBlock(_ResidualBlock):
  """1x1 reduce, 3x3 (strided), 1x1 expand plus shortcut.

  [B, H, W, C] -> [B, H/strides, W/strides, 4 * features].
  """
  expansion: ClassVar[int] = 4

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv, norm = conv_and_bn(self.dtype, self.bn_momentum, train, self.conv_weight_grad)
    y = conv(self.features, (1, 1), padding=0, name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.features, (3, 3), strides=self.strides, padding=1, name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y))
    y = conv(self.features * self.expansion, (1, 1), padding=0, name="conv3")(y)
    y = norm(scale_init=self.last_scale_init(), name="bn3")(y)
    return nn.relu(y + _shortcut(self, x, conv, norm))


def _shortcut(block: _ResidualBlock, x: Array, conv: Callable,
              norm: Callable) -> Array:
  """Identity, or a 1x1 conv + BN projection when the block changes resolution or channels."""
  out_features = block.features * block.expansion
  if block.strides == 1 and x.shape[-1] == out_features:
    return x
  x = conv(out_features, (1, 1), strides=block.strides, padding=0, name="shortcut_conv")(x)
  return norm(name="shortcut_bn")(x)


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class ResNet(nn.Module):
  """ResNet trunk without classifier: images [B, H, W, C] -> pooled features [B, num_features].

  Stage i (1-based) has `stage_sizes[i-1]` blocks of width `width * 2**(i-1)`; every stage after
  the first halves the resolution in its first block. The ImageNet stem (7x7/2 conv, BN, ReLU,
  3x3/2 max-pool) divides the resolution by 4; the CIFAR stem (3x3/1 conv, BN, ReLU, no pool) keeps
  it, for inputs of 32x32 or smaller. `bn_momentum` uses flax's convention (0.9 keeps 90% of the
  running average, i.e. PyTorch's momentum=0.1).
  """
  stage_sizes: Sequence[int]
  block: str
  width: int = 64
  cifar_stem: bool = False
  dtype: Dtype = jnp.float32
  bn_momentum: float = 0.9
  zero_init_residual: bool = True
  conv_weight_grad: str = "xla"

  def __post_init__(self) -> None:
    if self.block not in BLOCKS:
      raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
    super().__post_init__()

  @property
  def num_features(self) -> int:
    """Channels of the last stage: width*8 (basic) or width*32 (bottleneck) for 4 stages."""
    return self.width * 2 ** (len(self.stage_sizes) - 1) * BLOCKS[self.block].expansion

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv, norm = conv_and_bn(self.dtype, self.bn_momentum, train, self.conv_weight_grad)
    if self.cifar_stem:
      x = conv(self.width, (3, 3), padding=1, name="stem_conv")(x)
    else:
      x = conv(self.width, (7, 7), strides=2, padding=3, name="stem_conv")(x)
    x = nn.relu(norm(name="stem_bn")(x))
    if not self.cifar_stem:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block_cls = BLOCKS[self.block]
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = block_cls(features=self.width * 2**i, strides=2 if i > 0 and j == 0 else 1,
                      dtype=self.dtype, bn_momentum=self.bn_momentum,
                      zero_init_residual=self.zero_init_residual,
                      conv_weight_grad=self.conv_weight_grad,
                      name=f"stage{i + 1}_block{j}")(x, train)
    # Pool in float32 (a bf16 sum over 7x7 or 32x32 positions loses precision), return in dtype.
    return jnp.mean(x, axis=(1, 2), dtype=jnp.float32).astype(self.dtype)


resnet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
resnet34 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
resnet50 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
_BY_DEPTH = {18: resnet18, 34: resnet34, 50: resnet50}


def make_resnet(depth: int, **kwargs) -> ResNet:
  """ResNet of the given depth (18, 34 or 50); `kwargs` go to `ResNet` (width, cifar_stem, ...)."""
  if depth not in _BY_DEPTH:
    raise ValueError(f"depth must be one of {sorted(_BY_DEPTH)}, got {depth}")
  return _BY_DEPTH[depth](**kwargs)
