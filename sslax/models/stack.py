"""A Transformer's depth: its blocks as a loop of named modules or one `nn.scan`, optionally
rematerialised. Shared by the ViT (sslax/models/vit.py) and the text Transformer.

`scan_layers=False` keeps one module per block, `block{i}/...`, the layout that sharding rules,
layer-wise lr decay and saved checkpoints name. `scan_layers=True` runs one block under
`nn.scan` with its parameters stacked on a leading layer axis, `blocks/...` of shape
[depth, ...], so the program holds the block once instead of `depth` times (sslax/parallel.py
shards the trailing dimensions of stacked parameters by the same rules). Measured with
benchmarks/remat_scan.py on XLA:CPU (ViT-Tiny/16 gradient, batch 8 at 224^2): at 12 blocks
lowering drops from 4-8 s to 1-2 s while compiling stays at 15-19 s (a fixed part of about 11 s
dominates); at 48 blocks lowering + compiling fall from 71-92 s to 35 s. Without remat a scan
keeps more temporaries than the loop (646 vs 500 MB there): pair it with a policy.

`remat` trades compute for memory in the backward pass (jax.checkpoint per block):
- "none": every intermediate the backward pass needs is kept;
- "full": only each block's input is kept, the block runs again in the backward pass;
- "dots_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable, which keeps the
  outputs of the weight matmuls (projections, MLP: the O(T D^2) FLOPs) and recomputes the
  rest, in particular the attention scores [B, heads, T, T], whose einsum has batch dimensions
  (B, heads). jax's plain `dots_saveable` would keep those scores, the one intermediate whose
  memory grows with T^2 (scanned ViT-Tiny above, 197 tokens: 171 MB of temporaries with this
  policy, 231 MB with plain dots_saveable, 71 MB "full", 646 MB "none").
Under scan these policies lower XLA:CPU's temporary memory as listed. Unscanned, XLA:CPU keeps
the recomputation (the FLOPs grow: +24% for "full") but not the saving: its temporaries stay
those of "none". GPU and TPU, whose schedulers weigh memory, were not measured here.
"""
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Array

# remat name -> jax.checkpoint policy (None: save nothing); "none" applies no jax.checkpoint.
REMAT_POLICIES = {"none": None, "full": None,
                  "dots_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


def make_blocks(block: Callable[[str], nn.Module], depth: int, remat: str,
                scan_layers: bool) -> nn.Module | list[nn.Module]:
  """The blocks, made in `setup` by `block(name)`: `depth` named block{i} or one named `blocks`
  (scanned); raises on an unknown `remat`."""
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat={remat!r}; use one of {', '.join(REMAT_POLICIES)}")
  if scan_layers:
    return block("blocks")
  return [block(f"block{i}") for i in range(depth)]


def apply_blocks(blocks: nn.Module | Sequence[nn.Module], x: Array, depth: int, remat: str,
                 call: Callable[[nn.Module, Array], Array]) -> Array:
  """x [B, T, D] through `make_blocks`'s blocks, `call(block, x)` applying one block.

  Under scan each layer gets its own 'params' and 'dropout' rngs, as separate blocks do.
  """
  scanned = not isinstance(blocks, Sequence)
  body = call
  if remat != "none":
    body = nn.remat(call, policy=REMAT_POLICIES[remat], prevent_cse=not scanned)
  if not scanned:
    for block in blocks:
      x = body(block, x)
    return x
  layers = nn.scan(lambda block, x, _: (body(block, x), None), variable_axes={"params": 0},
                   split_rngs={"params": True, "dropout": True}, length=depth)
  return layers(blocks, x, None)[0]


def stack_block_params(params: Mapping[str, Any]) -> dict[str, Any]:
  """A model's params in the unscanned layout (`block{i}` entries) -> the scanned one: the blocks'
  trees stacked in order into one `blocks` tree with a leading [depth] axis, the rest as is.
  Loads a checkpoint of one layout into a model of the other (with `unstack_block_params`)."""
  names = sorted((k for k in params if re.fullmatch(r"block\d+", k)), key=lambda k: int(k[5:]))
  if not names:
    raise ValueError(f"no block{{i}} entries to stack among {sorted(params)}")
  rest = {k: v for k, v in params.items() if k not in names}
  return {**rest, "blocks": jax.tree.map(lambda *x: jnp.stack(x), *(params[k] for k in names))}


def unstack_block_params(params: Mapping[str, Any]) -> dict[str, Any]:
  """The inverse of `stack_block_params`: `blocks` [depth, ...] -> block0 ... block{depth-1}."""
  if "blocks" not in params:
    raise ValueError(f"no stacked `blocks` entry among {sorted(params)}")
  blocks = params["blocks"]
  depth = jax.tree.leaves(blocks)[0].shape[0]
  rest = {k: v for k, v in params.items() if k != "blocks"}
  return {**rest, **{f"block{i}": jax.tree.map(lambda x, i=i: x[i], blocks) for i in range(depth)}}
