"""Train DQN agents with and without CURL on one game, several seeds at once; plot and report.

  python -m sslax.rl.train --config=configs/curl_minatar.py --workdir=runs/curl_minatar

Every (seed, CURL weight) pair is one agent; all agents update together in one vmapped, jitted
step, while their environments step one after another in numpy. Seed s starts from the same
network weights and environment seed under every CURL weight, so the conditions are paired.
Writes into the workdir: config.json, metrics.jsonl (one line per log step and agent group),
results.json (returns at the end, the curves, the random policy's return, wall time) and
learning_curve.png. There is no checkpointing: an interrupted run starts again from step 0.
"""
if __name__ == "__main__":  # Before numpy and JAX start threads: sslax/host_memory.py.
  from sslax import host_memory
  host_memory.keep_freed_memory()

import json
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app
from matplotlib.figure import Figure

from sslax import config as config_lib
from sslax.checkpoint import write_atomically
from sslax.rl import envs as envs_lib
from sslax.rl.agent import Agent
from sslax.rl.replay import ReplayBuffer


def epsilon(step: int, cfg: Any) -> float:
  """Linear decay from eps_start to eps_end over the first eps_decay_steps environment steps."""
  fraction = min(step / max(cfg.eps_decay_steps, 1), 1.0)
  return cfg.eps_start + fraction * (cfg.eps_end - cfg.eps_start)


def _eps_greedy(agent: Agent, params: Any, obs: np.ndarray, eps: float,
                rng: np.random.Generator) -> np.ndarray:
  greedy = np.asarray(agent.act(params, obs))
  explore = rng.random(len(obs)) < eps
  return np.where(explore, rng.integers(agent.num_actions, size=len(obs)), greedy)


def evaluate_agents(agent: Agent, params: Any, envs: list, episodes: int, eps: float,
                    rng: np.random.Generator) -> np.ndarray:
  """`[agents, episodes]` returns of the epsilon-greedy policies, every agent in its own env,
  all stepped in lockstep so that each step is one batched forward pass."""
  returns = [[] for _ in envs]
  current = np.zeros(len(envs))
  obs = np.stack([env.reset() for env in envs])
  while min(len(r) for r in returns) < episodes:
    actions = _eps_greedy(agent, params, obs, eps, rng)
    for a, env in enumerate(envs):
      if len(returns[a]) >= episodes:
        continue
      obs[a], reward, terminated, truncated = env.step(actions[a])
      current[a] += reward
      if terminated or truncated:
        returns[a].append(current[a])
        current[a] = 0.0
        obs[a] = env.reset()
  return np.array(returns)


def learning_curve(episodes: list[list[tuple[int, float]]], steps: np.ndarray,
                   window: int) -> np.ndarray:
  """`[agents, len(steps)]`: each agent's mean return over its last `window` episodes finished
  by each step (NaN before its first episode ends)."""
  curve = np.full((len(episodes), len(steps)), np.nan)
  for a, finished in enumerate(episodes):
    ends = np.array([t for t, _ in finished], dtype=np.int64)
    values = np.array([r for _, r in finished])
    for i, step in enumerate(steps):
      n = int(np.searchsorted(ends, step, side="right"))
      if n:
        curve[a, i] = values[max(0, n - window):n].mean()
  return curve


def plot_curves(steps: np.ndarray, curves: dict[str, np.ndarray], random_return: float,
                title: str, path: str) -> str:
  """Return against environment steps: per condition the mean over seeds and a mean ± std band,
  the random policy as a dashed line."""
  fig = Figure(figsize=(7, 4), layout="tight")
  ax = fig.subplots()
  for name, curve in curves.items():
    mean, std = np.nanmean(curve, axis=0), np.nanstd(curve, axis=0)
    line, = ax.plot(steps, mean, label=f"{name} ({len(curve)} seeds)")
    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
  ax.axhline(random_return, color="gray", linestyle="--", label="random policy")
  ax.set_xlabel("environment steps")
  ax.set_ylabel("training episode return")
  ax.set_title(title)
  ax.legend()
  fig.savefig(path, dpi=110)
  return path


def _condition(weight: float) -> str:
  return "DQN" if weight == 0 else f"DQN + CURL (weight {weight:g})"


def _env_seed(config: ml_collections.ConfigDict, seed_index: int) -> int:
  """Seed index s plays the same environment seed under every CURL weight (paired runs)."""
  return config.seed * 1000 + seed_index


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains every (seed, CURL weight) agent for config.total_steps environment steps; writes and
  returns the results."""
  os.makedirs(workdir, exist_ok=True)
  write_atomically(os.path.join(workdir, "config.json"),
                   json.dumps(config_lib.to_dict(config), indent=2))
  start = time.time()
  weights = [float(w) for w in config.curl.weights]
  pairs = [(s, w) for w in weights for s in range(config.num_seeds)]
  envs = [envs_lib.make_env(config.env, _env_seed(config, s)) for s, _ in pairs]
  if envs[0].num_actions == 0:
    raise ValueError("env.name has continuous actions; this DQN agent needs a discrete-action "
                     "env (minatar, atari)")
  cfg = config.agent
  agent = Agent(cfg, config.curl, envs[0].observation_shape, envs[0].num_actions)
  seed_keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  states = agent.init(seed_keys[np.array([s for s, _ in pairs])])
  curl_weights = np.array([w for _, w in pairs], np.float32)
  buffer = ReplayBuffer(len(pairs), cfg.replay_capacity, envs[0].observation_shape)
  rng = np.random.default_rng(config.seed)
  obs = np.stack([env.reset() for env in envs])
  running = np.zeros(len(pairs))
  episodes: list[list[tuple[int, float]]] = [[] for _ in pairs]
  metrics: dict[str, Any] = {}
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as metrics_file:
    for step in range(1, config.total_steps + 1):
      actions = _eps_greedy(agent, states["params"], obs, epsilon(step, cfg), rng)
      next_obs = np.empty_like(obs)
      rewards, terminals = np.zeros(len(pairs)), np.zeros(len(pairs))
      ended = np.zeros(len(pairs), bool)
      for a, env in enumerate(envs):
        next_obs[a], rewards[a], terminals[a], truncated = env.step(actions[a])
        running[a] += rewards[a]
        ended[a] = terminals[a] or truncated
        if ended[a]:
          episodes[a].append((step, running[a]))
          running[a] = 0.0
      buffer.add(obs, actions, rewards, next_obs, terminals)
      obs = next_obs
      for a in np.flatnonzero(ended):
        obs[a] = envs[a].reset()
      if step >= cfg.learning_starts and step % cfg.train_every == 0:
        states, metrics = agent.update(states, buffer.sample(rng, config.batch_size), curl_weights)
      if step % config.log_every_steps == 0:
        _log(metrics_file, step, weights, pairs, episodes, metrics, time.time() - start)
  train_seconds = time.time() - start

  eval_envs = [envs_lib.make_env(config.env, _env_seed(config, s) + 10**6) for s, _ in pairs]
  final = evaluate_agents(agent, states["params"], eval_envs, config.eval.episodes,
                          config.eval.epsilon, rng)
  random_returns = envs_lib.random_policy_returns(
      envs_lib.make_env(config.env, config.seed + 2 * 10**6), config.eval.random_episodes,
      config.seed)
  steps = np.arange(config.log_every_steps, config.total_steps + 1, config.log_every_steps)
  curve = learning_curve(episodes, steps, config.eval.curve_window)
  results: dict[str, Any] = {
      "env": config_lib.to_dict(config.env), "env_steps": config.total_steps,
      "num_seeds": config.num_seeds, "curve_steps": steps.tolist(),
      "random_policy_return": {"mean": float(random_returns.mean()),
                               "std": float(random_returns.std()),
                               "episodes": len(random_returns)},
      "train_seconds": train_seconds, "conditions": {}}
  curves = {}
  for w in weights:
    rows = [i for i, (_, pw) in enumerate(pairs) if pw == w]
    name = _condition(w)
    per_seed_final = final[rows].mean(axis=1)
    last_train = curve[rows, -1]
    curves[name] = curve[rows]
    results["conditions"][name] = {
        "curl_weight": w,
        "eval_return": {"mean": float(per_seed_final.mean()), "std": float(per_seed_final.std()),
                        "per_seed": per_seed_final.tolist(), "episodes": config.eval.episodes,
                        "epsilon": config.eval.epsilon},
        "train_return_last_window": {"mean": float(np.nanmean(last_train)),
                                     "std": float(np.nanstd(last_train)),
                                     "per_seed": last_train.tolist()},
        "curve": curve[rows].tolist(),
        "episodes_per_seed": [len(episodes[i]) for i in rows]}
  title = f"{config.env.name} {config.env.get('game', '')}".strip()
  results["plot"] = plot_curves(steps, curves, float(random_returns.mean()), title,
                                os.path.join(workdir, "learning_curve.png"))
  results["wall_seconds"] = time.time() - start
  write_atomically(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
  return results


def _log(metrics_file: Any, step: int, weights: list[float], pairs: list[tuple[int, float]],
         episodes: list[list[tuple[int, float]]], metrics: dict[str, Any],
         seconds: float) -> None:
  """One line per condition to stdout and metrics.jsonl: recent returns and the losses (mean
  over seeds)."""
  for w in weights:
    rows = [i for i, (_, pw) in enumerate(pairs) if pw == w]
    recent = [r for i in rows for _, r in episodes[i][-10:]]
    line = {"step": step, "condition": _condition(w), "seconds": round(seconds, 1),
            "return_last10": float(np.mean(recent)) if recent else None}
    line.update({k: float(np.mean(np.asarray(v)[rows])) for k, v in metrics.items()})
    metrics_file.write(json.dumps(line) + "\n")
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in line.items()), flush=True)


def main(argv: list[str]) -> None:
  workdir = config_lib.workdir_from_flags(argv)
  with config_lib.one_line_errors():
    config = config_lib.config_from_flags()
    try:
      results = run(config, workdir)
    except ImportError as e:  # An optional environment's package (an extra) is missing.
      sys.exit(f"sslax: {e}")
  print(f"random policy: {results['random_policy_return']['mean']:.2f}")
  for name, r in results["conditions"].items():
    e = r["eval_return"]
    print(f"{name}: return {e['mean']:.2f} ± {e['std']:.2f} over {len(e['per_seed'])} seeds "
          f"after {results['env_steps']} env steps")
  print(f"wall time {results['wall_seconds'] / 60:.1f} min; {results['plot']}")


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
