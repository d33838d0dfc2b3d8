"""Small Gymnasium plants for the autopilot tests (written here, not a twin)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class TwoTank(gym.Env):
    """Two coupled tanks, 2 pumps (0..1), levels y (m); observation [h1, h2, sp1, sp2]."""

    def __init__(
        self, dt: float = 1.0, noise: float = 0.002, episode: int = 10_000, gain: float = 1.0
    ):
        self.dt = dt
        self.noise = noise
        self.episode = episode
        self.gain = gain
        self.action_space = gym.spaces.Box(0.0, 1.0, (2,), np.float64)
        self.observation_space = gym.spaces.Box(
            np.array([0.0, 0.0, 0.0, 0.0]), np.array([2.0, 2.0, 2.0, 2.0]), dtype=np.float64
        )
        self.a = np.array([[0.95, 0.0], [0.03, 0.93]])
        self.b = np.array([[0.05, 0.01], [0.0, 0.06]])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.array([0.5, 0.6])
        self.k = 0
        self.sp = np.array([0.8, 0.9])
        return self._obs(), {}

    def _obs(self):
        y = self.x + self.noise * self.np_random.standard_normal(2)
        return np.concatenate([y, self.sp])

    def step(self, u):
        u = np.clip(np.asarray(u, dtype=np.float64), 0, 1)
        # mild nonlinearity: outflow ~ sqrt(level)
        self.x = (
            self.a @ self.x
            + self.gain * self.b @ u
            + 0.02 * (np.sqrt(0.55) - np.sqrt(np.maximum(self.x, 0)))
        )
        self.k += 1
        cost = float(np.sum((self.x - self.sp) ** 2))
        return self._obs(), -cost, False, self.k >= self.episode, {}
