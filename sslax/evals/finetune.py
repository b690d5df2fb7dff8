"""Fine-tuning probe: the encoder and a linear head trained together on a labelled set.

A linear probe asks whether the features already separate the classes; fine-tuning asks how
good a starting point the weights are, the protocol BERT and GPT are judged by (Devlin et al.
2019 fine-tune every layer). The encoder is any `features(params, batch) -> [B, D]` function,
so the same code serves text and images. AdamW with a linear warm-up and cosine decay, a
zero-initialised head on the features standardised with the starting encoder's train-set
statistics (fixed, as the linear probe standardises: pooled Transformer states share a large
common component, and on raw features fine-tuning from pretrained weights fell below the frozen
linear probe), seeded minibatches (an epoch is a fresh permutation); no dropout (the features
function runs the model in inference mode), no augmentation. The starting weights
are not changed: the probe trains a copy and returns only its scores.
"""
import functools
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslax import parallel


def _take(inputs: Any, index: np.ndarray) -> Any:
  return jax.tree.map(lambda a: np.asarray(a)[index], inputs)


def layer_scales(params: Any, decay: float) -> Any:
  """Per-parameter learning-rate scales for layer-wise decay: a parameter in `block{i}` of L
  blocks gets decay^(L - i), the embeddings (paths with "embed" or "cls_token") decay^(L + 1),
  everything else (final norm, heads) 1. A tree of floats shaped like `params`. Scanned blocks
  (`blocks/`, one array for all layers) cannot take per-layer rates: decay < 1 raises."""
  names = [parallel.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  if decay != 1.0 and any("blocks" in n.split("/") for n in names):
    raise ValueError(f"layer_decay={decay} needs one parameter set per block (block{{i}}/), but "
                     "this encoder's blocks are scanned (blocks/): fine-tune with layer_decay=1 "
                     "(eval.finetune_layer_decay) or pretrain with scan_layers=False")
  blocks = [int(m.group(1)) for n in names if (m := re.search(r"block(\d+)", n))]
  depth = max(blocks) + 1 if blocks else 0

  def scale(path, _):
    name = parallel.path_name(path)
    block = re.search(r"block(\d+)", name)
    if block:
      return decay ** (depth - int(block.group(1)))
    return decay ** (depth + 1) if "embed" in name or "cls_token" in name else 1.0

  return jax.tree_util.tree_map_with_path(scale, params)


def _chunks(inputs: Any, total: int, batch_size: int, sharding) -> Any:
  """(batch, number of real rows) over `inputs` in fixed-size chunks; the last wraps around."""
  for start in range(0, total, batch_size):
    index = np.arange(start, start + batch_size) % total
    yield jax.device_put(_take(inputs, index), sharding), min(batch_size, total - start)


def finetune(features: Callable[[Any, Any], jax.Array], params: Any, train_inputs: Any,
             train_y: np.ndarray, test_inputs: Any, test_y: np.ndarray, num_classes: int,
             mesh, *, steps: int = 300, batch_size: int = 32, learning_rate: float = 1e-4,
             head_learning_rate: float = 1e-3, weight_decay: float = 0.01,
             trainable: str = ".*", label_smoothing: float = 0.0, layer_decay: float = 1.0,
             mixup_alpha: float = 0.0, augment: Callable[[np.ndarray, np.random.Generator], Any]
             | None = None, seed: int = 0) -> dict[str, Any]:
  """Trains `params` and a linear head on (train_inputs, train_y); test top-1 and protocol.

  `train_inputs`/`test_inputs` are arrays or dicts of arrays with examples on axis 0. The head
  gets its own (larger) learning rate: it starts from zero while the encoder starts from
  pretrained weights, as the usual fine-tuning recipes do. `trainable` is a regex over the
  encoder's parameter paths ("encoder/block3/mlp/fc1/kernel"): parameters that it does not
  match stay frozen, so ".*" fine-tunes fully, "block(10|11)/" only the top two blocks and
  "^$" trains the head alone. `label_smoothing` mixes the one-hot targets with the uniform
  distribution (Szegedy et al. 2016). `layer_decay` < 1 scales each Transformer block's rate
  (see `layer_scales`), as BEiT and MAE fine-tune ViTs. `mixup_alpha` > 0 trains on convex
  mixtures of pairs of examples and of their targets, the weight drawn from Beta(alpha, alpha)
  per batch (Zhang et al. 2018); inputs must then be arrays (images), not token dicts.
  `augment(index, rng)`, if given, returns fresh training inputs for the examples `index`
  (augmented views) in place of `train_inputs[index]`; with trainable="^$" this is a linear
  probe trained with augmentation.
  """
  if mixup_alpha and isinstance(train_inputs, dict):
    raise ValueError("mixup mixes input arrays; token inputs cannot be mixed (set mixup to 0)")
  train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
  step_multiple = parallel.batch_divisor(mesh)
  batch_size = -(-batch_size // step_multiple) * step_multiple
  sharding = parallel.batch_sharding(mesh)
  replicated = parallel.replicated(mesh)
  encode = jax.jit(features, out_shardings=replicated)
  start = np.concatenate([np.asarray(encode(params, batch))[:n] for batch, n in
                          _chunks(train_inputs, len(train_y), batch_size, sharding)])
  mean = start.mean(0, dtype=np.float64).astype(np.float32)
  std = np.maximum(start.std(0, dtype=np.float64), 1e-6).astype(np.float32)
  dim = start.shape[-1]
  model = jax.device_put({"encoder": params, "head": {"w": jnp.zeros((dim, num_classes)),
                                                      "b": jnp.zeros((num_classes,))}},
                         replicated)

  def schedule(peak):
    return optax.warmup_cosine_decay_schedule(0.0, peak, max(1, steps // 10), steps)

  pattern = re.compile(trainable)
  scales = layer_scales(params, layer_decay)
  labels = jax.tree_util.tree_map_with_path(
      lambda path, scale: f"x{scale!r}" if pattern.search(parallel.path_name(path)) else "frozen",
      scales)
  groups = {label: optax.adamw(schedule(learning_rate * float(label[1:])),
                               weight_decay=weight_decay)
            for label in set(jax.tree.leaves(labels)) if label != "frozen"}
  tx = optax.multi_transform(
      {**groups, "frozen": optax.set_to_zero(),
       "head": optax.adamw(schedule(head_learning_rate), weight_decay=weight_decay)},
      {"encoder": labels, "head": {"w": "head", "b": "head"}})

  def logits(model, batch):
    x = (features(model["encoder"], batch).astype(jnp.float32) - mean) / std
    return x @ model["head"]["w"] + model["head"]["b"]

  @functools.partial(jax.jit, out_shardings=replicated)
  def train_step(model, opt_state, batch, targets):
    def loss_fn(m):
      return optax.softmax_cross_entropy(logits(m, batch), targets).mean()
    loss, grads = jax.value_and_grad(loss_fn)(model)
    updates, opt_state = tx.update(grads, opt_state, model)
    return optax.apply_updates(model, updates), opt_state, loss

  @functools.partial(jax.jit, out_shardings=replicated)
  def predict(model, batch):
    return jnp.argmax(logits(model, batch), -1)

  rng = np.random.default_rng(seed)
  order = np.zeros(0, np.int64)
  opt_state = jax.device_put(tx.init(model), replicated)
  loss = jnp.nan
  for _ in range(steps):
    if len(order) < batch_size:
      order = np.concatenate([order, rng.permutation(len(train_y))])
    index, order = order[:batch_size], order[batch_size:]
    batch = _take(train_inputs, index) if augment is None else augment(index, rng)
    targets = optax.smooth_labels(np.eye(num_classes, dtype=np.float32)[train_y[index]],
                                  label_smoothing)
    if mixup_alpha:
      lam, partner = rng.beta(mixup_alpha, mixup_alpha), rng.permutation(len(index))
      batch = (lam * batch + (1 - lam) * batch[partner]).astype(batch.dtype)
      targets = lam * targets + (1 - lam) * targets[partner]
    model, opt_state, loss = train_step(model, opt_state, jax.device_put(batch, sharding),
                                        jax.device_put(targets, sharding))
    # One step in flight at a time: with many queued, XLA:CPU's simulated devices deadlocked
    # in an all-reduce (7 of 8 arrived; jax 0.10, 2 cores). The step waits for nothing else.
    loss.block_until_ready()
  predictions = np.concatenate([np.asarray(predict(model, batch))[:n] for batch, n in
                                _chunks(test_inputs, len(test_y), batch_size, sharding)])
  return {"test_top1": float(np.mean(predictions == test_y)), "final_train_loss": float(loss),
          "protocol": {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                       "head_learning_rate": head_learning_rate,
                       "weight_decay": weight_decay, "optimizer": "adamw, warm-up + cosine",
                       "trainable": trainable, "label_smoothing": label_smoothing,
                       "layer_decay": layer_decay, "mixup_alpha": mixup_alpha,
                       "augmented": augment is not None,
                       "seed": seed}}
