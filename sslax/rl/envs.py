"""Environments as `reset() -> obs`, `step(action) -> (obs, reward, terminated, truncated)`.

Observations are `[H, W, C * frame_stack]` float32, the last `frame_stack` frames stacked on the
channel axis (oldest first). MinAtar (Young & Tian 2019) is the embedded default; DeepMind
Control and Atari are optional extras, imported only when asked for and untested here.
"""
import collections
import logging
import os
from typing import Any, Protocol

import numpy as np


class Env(Protocol):
  num_actions: int
  observation_shape: tuple[int, int, int]

  def reset(self) -> np.ndarray: ...

  def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]: ...


class FrameStack:
  """The last `k` frames `[H, W, C]` as one `[H, W, C * k]` float32 array; reset repeats the
  first frame k times."""

  def __init__(self, k: int):
    if k < 1:
      raise ValueError(f"frame_stack must be >= 1, got {k}")
    self.frames: collections.deque = collections.deque(maxlen=k)

  def reset(self, frame: np.ndarray) -> np.ndarray:
    for _ in range(self.frames.maxlen):
      self.frames.append(frame)
    return self.observation()

  def push(self, frame: np.ndarray) -> np.ndarray:
    self.frames.append(frame)
    return self.observation()

  def observation(self) -> np.ndarray:
    return np.concatenate(list(self.frames), axis=-1).astype(np.float32)


class MinAtarEnv:
  """A MinAtar game (10x10xC boolean frames) with its minimal action set, sticky actions as in
  the paper (p = 0.1), frame stacking and a step limit (truncation)."""

  def __init__(self, game: str, seed: int, frame_stack: int = 1, sticky_action_prob: float = 0.1,
               max_episode_steps: int = 10_000):
    logging.disable(logging.WARNING)  # minatar's import warns that it cannot render.
    try:
      from minatar import Environment
    except ImportError as e:
      raise ImportError("MinAtar is missing: pip install minatar") from e
    finally:
      logging.disable(logging.NOTSET)
    try:
      self._env = Environment(game, sticky_action_prob=sticky_action_prob)
    except Exception as e:  # MinAtar raises a bare import error for an unknown game.
      raise ValueError(f"unknown MinAtar game {game!r}: set env.game to breakout, asterix, "
                       "freeway, seaquest or space_invaders") from e
    self._env.seed(seed)
    self._actions = list(self._env.minimal_action_set())
    self.num_actions = len(self._actions)
    h, w, c = self._env.state_shape()
    self.observation_shape = (h, w, c * frame_stack)
    self._stack = FrameStack(frame_stack)
    self._max_steps, self._t = max_episode_steps, 0

  def reset(self) -> np.ndarray:
    self._env.reset()
    self._t = 0
    return self._stack.reset(self._env.state())

  def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
    reward, terminated = self._env.act(self._actions[int(action)])
    self._t += 1
    return (self._stack.push(self._env.state()), float(reward), bool(terminated),
            self._t >= self._max_steps and not terminated)


class DMControlEnv:
  """A DeepMind Control task from pixels, `[size, size, 3 * frame_stack]` in [0, 1], each action
  repeated `action_repeat` times (CURL's protocol). Continuous actions: for an actor-critic agent
  (SAC); not run or tested here."""

  def __init__(self, domain: str, task: str, seed: int, frame_stack: int = 3,
               action_repeat: int = 4, size: int = 100):
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
      from dm_control import suite
    except ImportError as e:
      raise ImportError("dm_control is missing: pip install 'sslax[rl-control]'") from e
    self._env = suite.load(domain, task, task_kwargs={"random": seed})
    spec = self._env.action_spec()
    self.action_shape, self.action_low, self.action_high = spec.shape, spec.minimum, spec.maximum
    self.num_actions = 0  # Continuous: see action_shape.
    self.observation_shape = (size, size, 3 * frame_stack)
    self._repeat, self._size = action_repeat, size
    self._stack = FrameStack(frame_stack)

  def _frame(self) -> np.ndarray:
    pixels = self._env.physics.render(height=self._size, width=self._size, camera_id=0)
    return pixels.astype(np.float32) / 255.0

  def reset(self) -> np.ndarray:
    self._env.reset()
    return self._stack.reset(self._frame())

  def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool]:
    reward = 0.0
    for _ in range(self._repeat):
      time_step = self._env.step(action)
      reward += time_step.reward or 0.0
      if time_step.last():
        break
    # DMControl episodes end by time limit only: a truncation, never a termination.
    return self._stack.push(self._frame()), reward, False, bool(time_step.last())


class AtariEnv:
  """An Atari game through ale_py: grayscale frames resized to `size` x `size`, `frame_skip`
  repeats, sticky actions (p = 0.25, Machado et al. 2018), minimal action set. Not run or
  tested here."""

  def __init__(self, game: str, seed: int, frame_stack: int = 4, frame_skip: int = 4,
               size: int = 84, max_episode_steps: int = 27_000):
    try:
      import ale_py
    except ImportError as e:
      raise ImportError("ale_py is missing: pip install 'sslax[rl-atari]'") from e
    self._ale = ale_py.ALEInterface()
    self._ale.setInt("random_seed", seed)
    self._ale.setFloat("repeat_action_probability", 0.25)
    self._ale.loadROM(ale_py.roms.get_rom_path(game))
    self._actions = list(self._ale.getMinimalActionSet())
    self.num_actions = len(self._actions)
    self.observation_shape = (size, size, frame_stack)
    self._skip, self._size, self._max_steps, self._t = frame_skip, size, max_episode_steps, 0
    self._stack = FrameStack(frame_stack)

  def _frame(self) -> np.ndarray:
    screen = self._ale.getScreenGrayscale().astype(np.float32) / 255.0
    rows = np.linspace(0, screen.shape[0] - 1, self._size).astype(int)
    cols = np.linspace(0, screen.shape[1] - 1, self._size).astype(int)
    return screen[rows][:, cols, None]

  def reset(self) -> np.ndarray:
    self._ale.reset_game()
    self._t = 0
    return self._stack.reset(self._frame())

  def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
    reward = sum(self._ale.act(self._actions[int(action)]) for _ in range(self._skip))
    self._t += 1
    terminated = self._ale.game_over()
    return (self._stack.push(self._frame()), float(reward), terminated,
            self._t >= self._max_steps and not terminated)


def make_env(env_config: Any, seed: int) -> Env:
  """The environment `env_config.name` names ("minatar", "dmcontrol" or "atari")."""
  cfg = dict(env_config)
  name = cfg.pop("name")
  if name == "minatar":
    return MinAtarEnv(seed=seed, **cfg)
  if name == "dmcontrol":
    return DMControlEnv(seed=seed, **cfg)
  if name == "atari":
    return AtariEnv(seed=seed, **cfg)
  raise ValueError(f"unknown env.name {name!r}: use minatar, dmcontrol or atari")


def random_policy_returns(env: Env, episodes: int, seed: int) -> np.ndarray:
  """`[episodes]` undiscounted returns of uniformly random actions: the floor a curve starts at."""
  rng = np.random.default_rng(seed)
  returns = np.zeros(episodes)
  for e in range(episodes):
    env.reset()
    done = False
    while not done:
      _, reward, terminated, truncated = env.step(rng.integers(env.num_actions))
      returns[e] += reward
      done = terminated or truncated
  return returns
