"""Preallocated transition storage on the training device, with its own seeded generator.

Each observation is stored once. A transition written at slot p finds its next
observation at slot p + 1: the following step's observation in a running episode, or
the episode's final observation, written into a slot of its own that is never sampled
as a transition. Slots form a ring of `capacity + 1`, so a stream of continuing steps
keeps the latest `capacity` transitions; each episode end spends one slot on its final
observation. A 1M-slot Humanoid-v5 buffer (348-dim observations) needs about 1.5 GB.

The storage lives on the agent's device and sampling draws from a generator there, so on
a GPU a minibatch never leaves it and `sample` never waits for the device. A push costs one
host-to-device copy: the host packs the transition and the slot bookkeeping into a staging
row, and `write_staged` scatters it on the device. `sample` reads the transition count from
the device too, so both are fixed kernels on fixed memory that `train_sac.py --cuda-graphs`
records once as CUDA graphs (see cuda_graphs.py).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A minibatch; `mask` is 0.0 where the episode terminated and 1.0 otherwise."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    mask: torch.Tensor

    def cat(self, other: Batch) -> Batch:
        """This minibatch's transitions, then `other`'s (e.g. offline data and replay)."""
        return Batch(*(torch.cat(pair) for pair in zip(self, other)))


class StoredEpisode(NamedTuple):
    """One episode read back from a saved memory (`ReplayMemory.episodes`), arrays as stored."""
    obs: np.ndarray  # [T + 1, obs_dim]: the episode's observations, its final one last
    action: np.ndarray  # [T, action_dim]
    reward: np.ndarray  # [T]
    terminated: bool  # it ended by termination (mask 0); else by truncation, or still running
    running: bool  # the episode still being played when the memory was saved


class RingWrappedError(ValueError):
    """A saved memory whose ring wrapped: its oldest transitions are overwritten."""


class ReplayMemory:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int, seed: int,
                 device: torch.device | str = "cpu"):
        self.capacity = capacity
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        slots = capacity + 1
        # Zeros, not uninitialised memory: a final observation's slot never gets an action,
        # reward or mask, yet is saved with the rest, and a checkpoint must hold finite,
        # reproducible bytes.
        self.obs = torch.zeros(slots, obs_dim, device=self.device)
        self.action = torch.zeros(slots, action_dim, device=self.device)
        self.reward = torch.zeros(slots, device=self.device)
        self.mask = torch.zeros(slots, device=self.device)
        # The sampleable slots (those holding a complete transition), kept compact: entries
        # 0 … size−1 of `sampled_slots` (on the device, for `sample`) and of `slot_at_rank`
        # (its host copy); `rank_of_slot` is a slot's entry, or −1. Sampling draws a rank
        # uniformly, so it needs neither rejection nor a host sync. The device list has one
        # spare entry at the end, where a push with fewer than two rank changes writes.
        self.sampled_slots = torch.zeros(slots + 1, dtype=torch.long, device=self.device)
        self.slot_at_rank = np.zeros(slots, dtype=np.int64)
        self.rank_of_slot = np.full(slots, -1, dtype=np.int64)
        self.position = 0  # slot the next transition is written to
        self.filled = 0  # slots 0 … filled − 1 have been written (up to capacity + 1)
        self.size = 0  # sampleable transitions
        self.device_size = torch.zeros((), dtype=torch.long, device=self.device)
        self.staging = _Staging(obs_dim, action_dim, self.device)
        self.touched_ranks: list[int] = []  # ranks whose slot this push changed
        # Scatters the staged push on the device; --cuda-graphs swaps in its CUDA graph.
        self.write_staged: Callable[[], None] = self._write_staged

    def __len__(self) -> int:
        return self.size

    @property
    def num_slots(self) -> int:
        return self.capacity + 1

    def _set_rank(self, rank: int, slot: int) -> None:
        self.slot_at_rank[rank] = slot
        self.rank_of_slot[slot] = rank
        self.touched_ranks.append(rank)

    def _make_sampleable(self, slot: int) -> None:
        if self.rank_of_slot[slot] < 0:
            self._set_rank(self.size, slot)
            self.size += 1

    def _forget(self, slot: int) -> None:
        """Slot `slot` is being overwritten: the transition it held (if any) is gone. The
        last entry of the compact list moves into its place."""
        rank = self.rank_of_slot[slot]
        if rank >= 0:
            self.size -= 1
            self._set_rank(rank, int(self.slot_at_rank[self.size]))
            self.rank_of_slot[slot] = -1

    def push(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
             terminated: bool, episode_end: bool) -> None:
        """Store (s, a, r, s', terminated). `episode_end` is terminated or truncated: the
        next push then starts a new episode and s' stays as this episode's final state."""
        p = self.position
        q = (p + 1) % self.num_slots
        self.touched_ranks.clear()
        self._make_sampleable(p)
        self._forget(q)
        # The final slot of each touched rank (at most two ranks change); a spare entry
        # past the list's end takes the unused write.
        ranks = sorted(set(self.touched_ranks)) + [self.num_slots] * 2
        rank_writes = [(rank, int(self.slot_at_rank[rank]) if rank < self.num_slots else 0)
                       for rank in ranks[:2]]
        self.staging.stage(obs, action, reward, 0.0 if terminated else 1.0, next_obs,
                           [p, q, *(r for r, _ in rank_writes), *(s for _, s in rank_writes),
                            self.size])
        self.write_staged()
        # Until the ring wraps, slots are written in order, so the written ones stay a prefix.
        # Its end is q + 1, or p + 1 when an episode end moved p to the last slot and q wraps
        # to 0: slot p holds a sampleable transition, and a save must include it.
        self.filled = max(self.filled, p + 1, q + 1)
        self.position = (q + 1) % self.num_slots if episode_end else q

    def _write_staged(self) -> None:
        """On the device: s, a, r, m into slot p, s' into slot q, the changed ranks' slots
        into `sampled_slots`, and the transition count (the staged index row's layout)."""
        values, index = self.staging.values, self.staging.index
        obs_dim, action_dim = self.obs.shape[1], self.action.shape[1]
        slot_p, slot_q = index[0:1], index[1:2]
        self.obs.index_copy_(0, slot_p, values[None, :obs_dim])
        self.action.index_copy_(0, slot_p, values[None, obs_dim:obs_dim + action_dim])
        rest = values[obs_dim + action_dim:]
        self.reward.index_copy_(0, slot_p, rest[0:1])
        self.mask.index_copy_(0, slot_p, rest[1:2])
        self.obs.index_copy_(0, slot_q, rest[None, 2:])
        self.sampled_slots.index_copy_(0, index[2:4], index[4:6])
        self.device_size.copy_(index[6])

    def sample(self, batch_size: int) -> Batch:
        """Draw `batch_size` transitions uniformly (with replacement) from the sampleable slots."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay memory")
        # rank = ⌊u·size⌋, u ~ U[0, 1) in float64: uniform over 0 … size − 1 (to 2⁻⁵³), with
        # the count read on the device
        uniform = torch.rand(batch_size, generator=self.generator, device=self.device,
                             dtype=torch.float64)
        index = self.sampled_slots[(uniform * self.device_size).long()]
        next_index = (index + 1) % self.num_slots
        return Batch(self.obs[index], self.action[index], self.reward[index],
                     self.obs[next_index], self.mask[index])

    def state_dict(self) -> dict[str, Any]:
        """Tensors on the CPU (never pickled objects), counters and the generator state. The
        saved slots, 0 … filled − 1, hold every slot a sampleable transition reads."""
        n = self.filled
        return {
            # copies: torch.save writes a view's whole storage, all capacity + 1 slots
            **{name: getattr(self, name)[:n].to("cpu", copy=True)
               for name in ("obs", "action", "reward", "mask")},
            "sampled_slots": torch.from_numpy(self.slot_at_rank[:self.size].copy()),
            "capacity": self.capacity, "position": self.position, "filled": n,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "sampled_slots" not in state:
            raise ValueError("saved replay memory is in an older format (before the memory "
                             "moved to the training device); restart the run without --resume")
        if (state["capacity"] != self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]
                or state["action"].shape[1:] != self.action.shape[1:]):
            raise ValueError("saved replay memory has a different capacity or transition shape")
        n = state["filled"]
        for name in ("obs", "action", "reward", "mask"):
            getattr(self, name)[:n] = state[name]
        slots = state["sampled_slots"].numpy()
        self.size = len(slots)
        self.rank_of_slot[:] = -1
        self.rank_of_slot[slots] = np.arange(self.size)
        self.slot_at_rank[:self.size] = slots
        self.sampled_slots[:self.size] = torch.from_numpy(slots)
        self.device_size.fill_(self.size)
        self.position, self.filled = state["position"], n
        self.generator.set_state(state["generator"])

    @staticmethod
    def episodes(state: dict[str, Any]) -> list[StoredEpisode]:
        """The episodes of a `state_dict()` saved on the ring's first lap, in push order.

        Slots were then written in order: an episode is a maximal run of consecutive
        sampleable slots s … e, its observations are slots s … e + 1, and it is `running`
        when the next push would write slot e + 1. Raises RingWrappedError once every slot
        has been written (the ring wraps, so it may have overwritten data), and ValueError
        for a layout no first-lap memory has."""
        capacity, filled, position = (int(state[k]) for k in ("capacity", "filled", "position"))
        if filled >= capacity + 1:
            raise RingWrappedError(f"the replay memory filled its ring of {capacity} "
                                   f"transitions, so its oldest data are overwritten and the "
                                   f"rest is out of order")
        slots = np.sort(state["sampled_slots"].numpy().astype(np.int64))
        if not _first_lap_layout(slots, filled, position, state):
            raise ValueError("the replay memory's slots are not the layout its pushes write "
                             "on the ring's first lap")
        terminated = state["mask"].numpy() == 0.0
        breaks = np.diff(slots) > 1
        episodes = []
        for start, end in zip(slots[np.r_[True, breaks]], slots[np.r_[breaks, True]]):
            if terminated[start:end].any():
                raise ValueError("a terminated transition continues its episode in the "
                                 "replay memory")
            steps = slice(start, end + 1)
            episodes.append(StoredEpisode(
                state["obs"][start:end + 2].numpy(), state["action"][steps].numpy(),
                state["reward"][steps].numpy(), bool(terminated[end]),
                running=bool(end == slots[-1] and position == end + 1 and not terminated[end])))
        return episodes


def _first_lap_layout(slots: np.ndarray, filled: int, position: int,
                      state: dict[str, Any]) -> bool:
    """Whether sorted sampleable `slots` fit a first lap of `filled` written slots: distinct,
    from slot 0, the last written slot not sampleable, the next write at (or one past) the
    end, and between episodes exactly one non-sampleable slot (the final observation)."""
    if (len(slots) == 0 or len(np.unique(slots)) != len(slots) or slots[0] != 0
            or slots[-1] >= filled - 1 or position not in (filled - 1, filled)
            or any(len(state[k]) != filled for k in ("obs", "action", "reward", "mask"))):
        return False
    gaps = np.ones(filled, dtype=bool)
    gaps[slots] = False
    return not (gaps[1:-1] & gaps[:-2]).any()


class _Staging:
    """One push's numbers on their way to the device: a float row (s, a, r, m, s') and an
    index row (p, q, two ranks, their slots, the count), packed on the host and copied to the
    device with one transfer each. On a GPU the host rows are pinned and the copies
    asynchronous, so a push never waits for the device; two host buffers alternate, and a
    buffer is refilled only after its previous copy (two pushes back) has landed. On the CPU
    the host rows are the device rows."""

    def __init__(self, obs_dim: int, action_dim: int, device: torch.device):
        width = 2 * obs_dim + action_dim + 2
        pinned = device.type == "cuda"
        self.host = [(torch.zeros(width, pin_memory=pinned),
                      torch.zeros(7, dtype=torch.long, pin_memory=pinned))
                     for _ in range(2 if pinned else 1)]
        self.copied = [torch.cuda.Event() for _ in self.host] if pinned else None
        self.values, self.index = ((torch.zeros(width, device=device),
                                    torch.zeros(7, dtype=torch.long, device=device))
                                   if pinned else self.host[0])
        self.turn = 0

    def stage(self, obs: np.ndarray, action: np.ndarray, reward: float, mask: float,
              next_obs: np.ndarray, index: list[int]) -> None:
        host_values, host_index = self.host[self.turn]
        if self.copied is not None:
            self.copied[self.turn].synchronize()
        values = host_values.numpy()
        obs_dim, action_dim = len(obs), len(action)
        values[:obs_dim] = obs
        values[obs_dim:obs_dim + action_dim] = action
        values[obs_dim + action_dim:obs_dim + action_dim + 2] = (reward, mask)
        values[obs_dim + action_dim + 2:] = next_obs
        host_index.numpy()[:] = index
        if self.copied is not None:
            self.values.copy_(host_values, non_blocking=True)
            self.index.copy_(host_index, non_blocking=True)
            self.copied[self.turn].record()
            self.turn = 1 - self.turn
