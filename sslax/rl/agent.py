"""Double DQN with CURL's contrastive loss beside it, jit-compiled and vmapped over agents.

One agent's state is a dict of pytrees (online params, target-network params, the EMA key
encoder, Adam's state, counters); `Agent.update` runs many agents at once (seeds, and CURL
weights: weight 0 is the baseline, same code path), each with its own batch and weight.
"""
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sslax.methods.teacher import ema
from sslax.rl import curl


def patches3x3(x: jax.Array) -> jax.Array:
  """`[B, H, W, C]` -> `[B, H - 2, W - 2, 9 C]`: every VALID 3x3 neighbourhood, row-major."""
  h, w = x.shape[1] - 2, x.shape[2] - 2
  return jnp.concatenate([x[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=-1)


class Encoder(nn.Module):
  """Observations `[B, H, W, C]` -> features `[B, feature_dim]`: 3x3 VALID convs with ReLU (one
  of 16, as in MinAtar's DQN), then CURL's linear layer and LayerNorm. No batch norm: RL
  batches are not i.i.d. and the target network must not carry batch statistics.

  Each conv is a Dense layer on the 3x3 patches: under `vmap` over agents, `nn.Conv` lowers to
  a grouped convolution that XLA:CPU ran about 5x slower than this batched matmul.
  """
  channels: Sequence[int] = (16,)
  feature_dim: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.channels:
      x = nn.relu(nn.Dense(width)(patches3x3(x)))
    x = nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1))
    return nn.LayerNorm()(x)


class QHead(nn.Module):
  """Features `[B, D]` -> action values `[B, num_actions]`."""
  num_actions: int
  hidden: int = 128

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    return nn.Dense(self.num_actions)(nn.relu(nn.Dense(self.hidden)(features)))


def dqn_targets(q_next_online: jax.Array, q_next_target: jax.Array, reward: jax.Array,
                terminal: jax.Array, gamma: float, double: bool) -> jax.Array:
  """`[B]` regression targets r + gamma (1 - terminal) Q_target(s', a*): a* = argmax of the
  online network's values (Double DQN, van Hasselt et al. 2016) or of the target's (DQN)."""
  chooser = q_next_online if double else q_next_target
  best = jnp.argmax(chooser, axis=1)
  next_value = jnp.take_along_axis(q_next_target, best[:, None], axis=1)[:, 0]
  return reward + gamma * (1.0 - terminal) * jax.lax.stop_gradient(next_value)


class Agent:
  """The networks, optimizer and jitted functions for `agent_config` / `curl_config`.

  `init(keys [A])`, `act(params, obs [A, H, W, C]) -> greedy actions [A]` and
  `update(states, batch [A, B, ...], curl_weights [A]) -> (states, metrics [A])` all work on
  A agents stacked on a leading axis.
  """

  def __init__(self, agent_config: Any, curl_config: Any, obs_shape: tuple[int, ...],
               num_actions: int):
    self.cfg, self.curl_cfg = agent_config, curl_config
    self.obs_shape, self.num_actions = tuple(obs_shape), num_actions
    self.encoder = Encoder(tuple(agent_config.channels), agent_config.feature_dim)
    self.q_head = QHead(num_actions, agent_config.hidden)
    self.tx = optax.chain(optax.clip_by_global_norm(agent_config.grad_clip_norm),
                          optax.adam(agent_config.learning_rate, eps=agent_config.adam_eps))
    self.init = jax.jit(jax.vmap(self._init))
    self.act = jax.jit(jax.vmap(lambda p, o: jnp.argmax(self.q_values(p, o[None])[0])))
    self.update = jax.jit(jax.vmap(self._update), donate_argnums=0)

  def _init(self, key: jax.Array) -> dict[str, Any]:
    k_enc, k_q, k_w = jax.random.split(key, 3)
    obs = jnp.zeros((1, *self.obs_shape), jnp.float32)
    encoder = self.encoder.init(k_enc, obs)["params"]
    q_head = self.q_head.init(k_q, jnp.zeros((1, self.cfg.feature_dim)))["params"]
    d = self.cfg.feature_dim
    w = jax.random.uniform(k_w, (d, d), minval=-1.0, maxval=1.0) / jnp.sqrt(d)
    params = {"encoder": encoder, "q_head": q_head, "curl_w": w}
    return {"params": params, "target": {"encoder": encoder, "q_head": q_head},
            "key_encoder": encoder, "opt_state": self.tx.init(params),
            "updates": jnp.zeros((), jnp.int32), "rng": jax.random.fold_in(key, 1)}

  def q_values(self, params: dict[str, Any], obs: jax.Array) -> jax.Array:
    """`[B, num_actions]` for observations `[B, H, W, C]`."""
    return self.q_head.apply({"params": params["q_head"]},
                             self.encoder.apply({"params": params["encoder"]}, obs))

  def losses(self, params: dict[str, Any], state: dict[str, Any], batch: dict[str, jax.Array],
             key: jax.Array, curl_weight: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """TD (Huber) loss on the raw observations + curl_weight x CURL loss on two random shifts
    of them; the metrics of both."""
    b = batch["obs"].shape[0]
    q_both = self.q_values(params, jnp.concatenate([batch["obs"], batch["next_obs"]]))
    q, q_next = q_both[:b], q_both[b:]  # One pass over obs and next_obs: bigger matmuls.
    q_taken = jnp.take_along_axis(q, batch["action"][:, None], axis=1)[:, 0]
    targets = dqn_targets(q_next,
                          self.q_values(state["target"], batch["next_obs"]), batch["reward"],
                          batch["terminal"], self.cfg.gamma, self.cfg.double)
    td_loss = jnp.mean(optax.huber_loss(q_taken, targets, delta=1.0))
    k_query, k_key = jax.random.split(key)
    pad = self.curl_cfg.pad
    query = self.encoder.apply({"params": params["encoder"]},
                               curl.random_shift(k_query, batch["obs"], pad))
    keys = self.encoder.apply({"params": state["key_encoder"]},
                              curl.random_shift(k_key, batch["obs"], pad))
    curl_loss, curl_top1 = curl.curl_loss(query, keys, params["curl_w"])
    return td_loss + curl_weight * curl_loss, {
        "td_loss": td_loss, "curl_loss": curl_loss, "curl_top1": curl_top1,
        "q_mean": jnp.mean(q_taken)}

  def _update(self, state: dict[str, Any], batch: dict[str, jax.Array],
              curl_weight: jax.Array) -> tuple[dict[str, Any], dict[str, jax.Array]]:
    rng, key = jax.random.split(state["rng"])
    grads, metrics = jax.grad(self.losses, has_aux=True)(state["params"], state, batch, key,
                                                         curl_weight)
    updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    count = state["updates"] + 1
    online = {"encoder": params["encoder"], "q_head": params["q_head"]}
    copy = count % self.cfg.target_update_every == 0  # Hard target-network update (DQN).
    target = jax.tree.map(lambda o, t: jnp.where(copy, o, t), online, state["target"])
    key_encoder = ema(state["key_encoder"], params["encoder"], 1.0 - self.curl_cfg.encoder_tau)
    return {"params": params, "target": target, "key_encoder": key_encoder,
            "opt_state": opt_state, "updates": count, "rng": rng}, metrics
