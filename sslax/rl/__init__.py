"""Self-supervised features for reinforcement learning: CURL beside a DQN agent (sslax.rl.train)."""
