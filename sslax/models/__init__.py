"""Encoders and heads (flax.linen), and `make_encoder` to build an encoder from a config."""
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sslax.models.cnn import SmallCNN
from sslax.models.heads import MLPHead
from sslax.models.resnet import (
  BasicBlock,
  BottleneckBlock,
  ResNet,
  make_resnet,
  resnet18,
  resnet34,
  resnet50,
)
from sslax.models.vit import VIT_SIZES, VisionTransformer, make_vit

__all__ = ["ENCODER_NAMES", "BasicBlock", "BottleneckBlock", "MLPHead", "ResNet", "SmallCNN",
           "VisionTransformer", "make_encoder", "make_resnet", "make_vit", "resnet18", "resnet34",
           "resnet50"]

ENCODER_NAMES = ("resnet18", "resnet34", "resnet50", "small_cnn", *VIT_SIZES)
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def make_encoder(cfg: Mapping[str, Any]) -> nn.Module:
  """Encoder from a dict or ConfigDict: `name` (one of ENCODER_NAMES), optional `dtype`.

  `dtype` is the compute dtype, "float32" (default) or "bfloat16"; parameters stay float32.
  ResNets read `width` (64) and `cifar_stem` (False); small_cnn reads `widths` and
  `convs_per_stage`; both read `conv_weight_grad` ("auto", the default: "chunked" on CPU, XLA's
  own convolution on GPU and TPU; or "xla", "matmul", "chunked", see sslax/models/conv.py).
  ViTs (vit_tiny/small/base/large, see sslax/models/vit.py) read `patch_size` (16),
  `pos_embed` ("learned" or "sincos"), `pool` ("cls" or "mean"), `freeze_patch_embed` (False),
  `remat` ("none", "full" or "dots_saveable": what each block keeps for the backward pass),
  `scan_layers` (False; True stacks the blocks' params under `blocks/` and compiles one block,
  see sslax/models/stack.py) and optional size overrides `hidden_dim`, `depth`, `num_heads`,
  `mlp_dim` (4 x hidden_dim). Fields meant for another encoder family are ignored, so one
  config can switch encoders by overriding only `name`.
  """
  name = cfg["name"]
  dtype_name = cfg.get("dtype", "float32")
  if dtype_name not in _DTYPES:
    raise ValueError(f"Unknown dtype {dtype_name!r}; valid dtypes: {', '.join(_DTYPES)}")
  dtype = _DTYPES[dtype_name]
  conv_weight_grad = cfg.get("conv_weight_grad", "auto")
  if name == "small_cnn":
    kwargs = {"dtype": dtype, "convs_per_stage": int(cfg.get("convs_per_stage", 1)),
              "conv_weight_grad": conv_weight_grad}
    if cfg.get("widths") is not None:
      kwargs["widths"] = tuple(int(w) for w in cfg["widths"])
    return SmallCNN(**kwargs)
  if name in VIT_SIZES:
    return make_vit(name, cfg, dtype)
  if name in ENCODER_NAMES:
    return make_resnet(int(name.removeprefix("resnet")), width=int(cfg.get("width", 64)),
                       cifar_stem=bool(cfg.get("cifar_stem", False)), dtype=dtype,
                       conv_weight_grad=conv_weight_grad)
  raise ValueError(f"Unknown encoder {name!r}; valid names: {', '.join(ENCODER_NAMES)}")
