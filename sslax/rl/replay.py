"""Replay buffers for several agents at once, in numpy: one ring buffer per agent, stacked.

Observations are stored as uint8 (`obs * scale`): MinAtar's boolean frames (scale 1) and pixels
in [0, 1] (scale 255) lose nothing, at a quarter of float32's memory.
"""
import numpy as np


class ReplayBuffer:
  """`agents` ring buffers of `capacity` transitions (obs, action, reward, next_obs, terminal).

  `terminal` is true only for a real termination; a truncated episode's last transition keeps
  bootstrapping from its next observation.
  """

  def __init__(self, agents: int, capacity: int, obs_shape: tuple[int, ...], scale: float = 1.0):
    if capacity < 1:
      raise ValueError(f"replay_capacity must be >= 1, got {capacity}")
    self.agents, self.capacity, self.scale = agents, capacity, scale
    self.obs = np.zeros((agents, capacity, *obs_shape), np.uint8)
    self.next_obs = np.zeros_like(self.obs)
    self.action = np.zeros((agents, capacity), np.int32)
    self.reward = np.zeros((agents, capacity), np.float32)
    self.terminal = np.zeros((agents, capacity), np.float32)
    self.size, self._next = 0, 0

  def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
          terminal: np.ndarray) -> None:
    """One transition per agent: obs/next_obs `[agents, *obs_shape]`, the rest `[agents]`."""
    i = self._next
    self.obs[:, i] = np.rint(obs * self.scale)
    self.next_obs[:, i] = np.rint(next_obs * self.scale)
    self.action[:, i], self.reward[:, i], self.terminal[:, i] = action, reward, terminal
    self._next = (i + 1) % self.capacity
    self.size = min(self.size + 1, self.capacity)

  def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    """`batch` transitions per agent drawn uniformly with replacement, each agent its own
    indices: arrays `[agents, batch, ...]`, observations float32 again."""
    if self.size == 0:
      raise ValueError("sampling from an empty replay buffer: raise agent.learning_starts")
    index = rng.integers(0, self.size, size=(self.agents, batch))
    rows = np.arange(self.agents)[:, None]
    return {"obs": self.obs[rows, index].astype(np.float32) / self.scale,
            "action": self.action[rows, index], "reward": self.reward[rows, index],
            "next_obs": self.next_obs[rows, index].astype(np.float32) / self.scale,
            "terminal": self.terminal[rows, index]}
