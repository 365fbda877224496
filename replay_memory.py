"""Preallocated transition storage with its own seeded generator.

Each observation is stored once. A transition written at slot p finds its next
observation at slot p + 1: the following step's observation in a running episode, or
the episode's final observation, written into a slot of its own that is never sampled
as a transition. Slots form a ring of `capacity + 1`, so a stream of continuing steps
keeps the latest `capacity` transitions; each episode end spends one slot on its final
observation. A 1M-slot Humanoid-v5 buffer (348-dim observations) needs about 1.5 GB.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A minibatch; `mask` is 0.0 where the episode terminated and 1.0 otherwise."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    mask: torch.Tensor


class ReplayMemory:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int, seed: int,
                 device: torch.device | str = "cpu"):
        self.capacity = capacity
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        slots = capacity + 1
        self.obs = np.zeros((slots, obs_dim), dtype=np.float32)
        self.action = np.zeros((slots, action_dim), dtype=np.float32)
        self.reward = np.zeros(slots, dtype=np.float32)
        self.terminated = np.zeros(slots, dtype=bool)
        self.valid = np.zeros(slots, dtype=bool)  # slot holds a complete, sampleable transition
        self.position = 0  # slot the next transition is written to
        self.filled = 0  # slots written so far (up to capacity + 1)
        self.size = 0  # sampleable transitions

    def __len__(self) -> int:
        return self.size

    @property
    def num_slots(self) -> int:
        return self.capacity + 1

    def _claim(self, slot: int) -> None:
        """Mark `slot` as overwritten: whatever transition it held is gone."""
        self.size -= int(self.valid[slot])
        self.valid[slot] = False
        self.filled = max(self.filled, slot + 1)

    def push(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
             terminated: bool, episode_end: bool) -> None:
        """Store (s, a, r, s', terminated). `episode_end` is terminated or truncated: the
        next push then starts a new episode and s' stays as this episode's final state."""
        p = self.position
        self._claim(p)
        self.obs[p] = obs
        self.action[p] = action
        self.reward[p] = reward
        self.terminated[p] = terminated
        self.valid[p] = True
        self.size += 1
        q = (p + 1) % self.num_slots
        self._claim(q)
        self.obs[q] = next_obs
        self.position = (q + 1) % self.num_slots if episode_end else q

    def sample(self, batch_size: int) -> Batch:
        """Draw `batch_size` transitions uniformly (with replacement) from the valid slots."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay memory")
        index = self.rng.integers(0, self.filled, size=batch_size)
        rejected = ~self.valid[index]
        while rejected.any():  # redraw final-observation slots; at most about half the slots
            index[rejected] = self.rng.integers(0, self.filled, size=int(rejected.sum()))
            rejected = ~self.valid[index]
        next_index = (index + 1) % self.num_slots
        arrays = (self.obs[index], self.action[index], self.reward[index],
                  self.obs[next_index], 1.0 - self.terminated[index].astype(np.float32))
        return Batch(*(torch.as_tensor(a, device=self.device) for a in arrays))

    def state_dict(self) -> dict[str, Any]:
        """Arrays (as tensors, never pickled objects), counters and the generator state."""
        n = self.filled
        return {
            "obs": torch.from_numpy(self.obs[:n]), "action": torch.from_numpy(self.action[:n]),
            "reward": torch.from_numpy(self.reward[:n]),
            "terminated": torch.from_numpy(self.terminated[:n]),
            "valid": torch.from_numpy(self.valid[:n]),
            "capacity": self.capacity, "position": self.position, "filled": n, "size": self.size,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["filled"]
        if (state["capacity"] != self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]
                or state["action"].shape[1:] != self.action.shape[1:]):
            raise ValueError("saved replay memory has a different capacity or transition shape")
        for name in ("obs", "action", "reward", "terminated", "valid"):
            getattr(self, name)[:n] = state[name].numpy()
        self.valid[n:] = False
        self.position, self.filled, self.size = state["position"], n, state["size"]
        self.rng.bit_generator.state = state["rng"]
