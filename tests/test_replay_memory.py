"""Tests for replay_memory.ReplayMemory against transitions built independently here.

Every observation, action and reward pushed below encodes the (episode, step) it belongs
to, so a sampled row can be matched exactly against the list of transitions the test
itself expects, and any mis-pairing of an observation with a wrong next observation,
action, reward or mask shows up as a row that was never pushed."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import pytest
import torch

from replay_memory import ReplayMemory, RingWrappedError

OBS_DIM, ACTION_DIM = 3, 2


class Push(NamedTuple):
    """One call to ReplayMemory.push, plus the transition the test expects it to store."""
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    episode_end: bool

    @property
    def expected_row(self) -> tuple:
        """(obs, action, reward, next_obs, mask) as exact Python floats; mask 0.0 iff terminated."""
        return (tuple(float(x) for x in np.float32(self.obs)),
                tuple(float(x) for x in np.float32(self.action)),
                float(np.float32(self.reward)),
                tuple(float(x) for x in np.float32(self.next_obs)),
                0.0 if self.terminated else 1.0)


def observation(episode: int, step: int) -> np.ndarray:
    # Unique per (episode, step); small integers and halves are exact in float32.
    return np.array([episode, step, 100 * episode + step], dtype=np.float64)


def make_pushes(episodes: list[tuple[int, str | None]], first_episode: int = 0) -> list[Push]:
    """Pushes for a sequence of episodes given as (length, how it ends), where the end is
    "terminated", "truncated" or None (still running when the stream stops)."""
    pushes = []
    for e, (length, end) in enumerate(episodes, start=first_episode):
        for t in range(length):
            last = t == length - 1
            pushes.append(Push(
                obs=observation(e, t),
                action=np.array([e + 0.5, -t - 0.25]),
                reward=1000.0 * e + t + 0.5,
                next_obs=observation(e, t + 1),  # at the end: the episode's final observation
                terminated=last and end == "terminated",
                episode_end=last and end is not None))
    return pushes


def push_all(memory: ReplayMemory, pushes: list[Push]) -> None:
    for p in pushes:
        memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)


def rows_of(batch) -> list[tuple]:
    obs, action, reward, next_obs, mask = (t.tolist() for t in batch)
    return [(tuple(o), tuple(a), r, tuple(n), m)
            for o, a, r, n, m in zip(obs, action, reward, next_obs, mask)]


def sample_counts(memory: ReplayMemory, batch_size: int, draws: int) -> Counter:
    counts: Counter = Counter()
    for _ in range(draws):
        counts.update(rows_of(memory.sample(batch_size)))
    return counts


# Five episodes: terminated, truncated (episode_end without termination), a one-step
# termination, a one-step truncation, and one still running when the stream stops.
EPISODES = [(4, "terminated"), (3, "truncated"), (1, "terminated"), (5, "truncated"),
            (1, "truncated"), (2, "terminated"), (3, None)]


def test_samples_are_exactly_the_pushed_transitions_and_roughly_uniform():
    pushes = make_pushes(EPISODES)
    expected = [p.expected_row for p in pushes]
    assert len(set(expected)) == len(expected) == 19  # sanity: all distinct

    memory = ReplayMemory(capacity=100, obs_dim=OBS_DIM, action_dim=ACTION_DIM, seed=1)
    push_all(memory, pushes)
    assert len(memory) == len(expected)

    batch_size, draws = 20_000, 10
    counts = sample_counts(memory, batch_size, draws)

    unexpected = set(counts) - set(expected)
    assert not unexpected, f"sampled rows that were never pushed: {sorted(unexpected)[:3]}"
    never = set(expected) - set(counts)
    assert not never, f"pushed transitions never sampled: {sorted(never)}"

    total = batch_size * draws
    assert sum(counts.values()) == total
    uniform = total / len(expected)
    for row in expected:
        assert 0.9 * uniform <= counts[row] <= 1.1 * uniform, (row, counts[row], uniform)


def test_episode_boundaries_next_obs_and_mask():
    pushes = make_pushes(EPISODES)
    memory = ReplayMemory(capacity=100, obs_dim=OBS_DIM, action_dim=ACTION_DIM, seed=2)
    push_all(memory, pushes)
    sampled = set(sample_counts(memory, 5_000, 2))

    by_obs = {row[0]: row for row in sampled}
    for e, (length, end) in enumerate(EPISODES):
        last_obs = tuple(float(x) for x in observation(e, length - 1))
        row = by_obs[last_obs]
        final_obs = tuple(float(x) for x in observation(e, length))
        next_first = tuple(float(x) for x in observation(e + 1, 0))
        # next_obs across an episode end is that episode's final observation ...
        assert row[3] == final_obs
        assert row[3] != next_first
        # ... and the mask is 0 exactly when the episode terminated (1 for truncation).
        assert row[4] == (0.0 if end == "terminated" else 1.0)
        # All earlier steps of the episode continue: mask 1, next_obs the following step.
        for t in range(length - 1):
            mid = by_obs[tuple(float(x) for x in observation(e, t))]
            assert mid[4] == 1.0
            assert mid[3] == tuple(float(x) for x in observation(e, t + 1))
    terminated_rows = {row for row in sampled if row[4] == 0.0}
    assert terminated_rows == {p.expected_row for p in pushes if p.terminated}
    assert len(terminated_rows) == 3
    assert {row[4] for row in sampled} == {0.0, 1.0}


def retained_count(pushes: list[Push], capacity: int) -> int:
    """How many of the newest transitions a ring of capacity + 1 observation slots can hold,
    per the module's design: each transition uses its own slot, a continuing transition's
    next observation is the following transition's slot, an episode end's final
    observation takes a slot of its own, and the newest transition's next observation
    (pending or final) takes one slot."""
    ring = capacity + 1
    best = 0
    for k in range(1, len(pushes) + 1):
        window = pushes[len(pushes) - k:]
        slots = k + 1 + sum(p.episode_end for p in window[:-1])
        if slots <= ring:
            best = k
        else:
            break
    return best


def check_ring_state(memory: ReplayMemory, pushed: list[Push], capacity: int) -> None:
    assert len(memory) <= capacity
    sampled = set(sample_counts(memory, 1_000, 1))
    pushed_rows = [p.expected_row for p in pushed]
    assert sampled <= set(pushed_rows), "a sampled row is not a pushed transition"
    # Only the most recent transitions survive: the sampled ones form a suffix of the stream.
    k = retained_count(pushed, capacity)
    assert sampled == set(pushed_rows[len(pushed_rows) - k:])
    assert len(memory) == k


def test_ring_wraparound_continuing_stream_keeps_latest_capacity_transitions():
    capacity = 5
    pushes = make_pushes([(13, None)])
    memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=3)
    for i, p in enumerate(pushes, start=1):
        memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)
        assert len(memory) == min(i, capacity)
        sampled = set(sample_counts(memory, 1_000, 1))
        assert sampled == {q.expected_row for q in pushes[max(0, i - capacity):i]}


def test_ring_wraparound_with_episode_ends():
    capacity = 5
    rng = np.random.default_rng(0)
    episodes = [(int(rng.integers(1, 5)), ("terminated", "truncated", "truncated")[rng.integers(3)])
                for _ in range(25)]
    pushes = make_pushes(episodes)
    memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=4)
    for i, p in enumerate(pushes, start=1):
        memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)
        check_ring_state(memory, pushes[:i], capacity)
    assert len(pushes) > 3 * capacity


@pytest.mark.parametrize("capacity", [1, 2, 7])
def test_ring_wraparound_other_capacities(capacity):
    rng = np.random.default_rng(capacity)
    episodes = [(int(rng.integers(1, 4)), ("terminated", "truncated")[rng.integers(2)])
                for _ in range(12)] + [(9, None)]
    pushes = make_pushes(episodes)
    memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=5)
    for i, p in enumerate(pushes, start=1):
        memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)
        check_ring_state(memory, pushes[:i], capacity)


@pytest.mark.parametrize("episodes", [
    [(23, None)],  # continuing stream
    [(3, "terminated"), (2, "truncated"), (4, None), (1, "truncated"), (5, "terminated"),
     (2, "truncated"), (3, None)],
])
def test_sampling_stays_uniform_after_wraparound(episodes):
    capacity = 9
    pushes = make_pushes(episodes)
    memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=6)
    push_all(memory, pushes)
    assert len(pushes) > 2 * capacity
    k = retained_count(pushes, capacity)
    expected = [p.expected_row for p in pushes[len(pushes) - k:]]
    batch_size, draws = 20_000, 5
    counts = sample_counts(memory, batch_size, draws)
    assert set(counts) == set(expected)
    uniform = batch_size * draws / len(expected)
    for row in expected:
        assert 0.9 * uniform <= counts[row] <= 1.1 * uniform, (row, counts[row], uniform)


def sample_sequence(memory: ReplayMemory, n: int = 5, batch_size: int = 64) -> list:
    return [memory.sample(batch_size) for _ in range(n)]


def batches_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_same_seed_same_samples_different_seed_different():
    pushes = make_pushes(EPISODES)
    memories = [ReplayMemory(100, OBS_DIM, ACTION_DIM, seed=s) for s in (7, 7, 8)]
    for memory in memories:
        push_all(memory, pushes)
    seq_a, seq_b, seq_c = (sample_sequence(m) for m in memories)
    assert all(batches_equal(a, b) for a, b in zip(seq_a, seq_b))
    assert not all(batches_equal(a, c) for a, c in zip(seq_a, seq_c))


def assert_plain_state(value, where="state") -> None:
    """Only tensors and plain Python values (no numpy arrays or scalars, no objects)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: non-str key {key!r}"
            assert_plain_state(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            assert_plain_state(item, f"{where}[{i}]")
    else:
        assert not isinstance(value, (np.ndarray, np.generic)), f"{where} is numpy: {type(value)}"
        assert value is None or type(value) in (torch.Tensor, int, float, bool, str), \
            f"{where} has type {type(value)}"


@pytest.mark.parametrize("capacity, episodes", [
    (100, EPISODES),  # partly filled
    (5, EPISODES),  # wrapped around the ring several times
])
def test_state_dict_round_trip(tmp_path, capacity, episodes):
    # The stream continues after the save: the still-running last episode goes on (its
    # next push's obs is the pending next_obs) and ends, then new episodes follow.
    assert episodes[-1][1] is None
    continued = episodes[:-1] + [(episodes[-1][0] + 3, "truncated"), (4, "truncated"),
                                 (6, "terminated"), (2, None)]
    whole = make_pushes(continued)
    split = sum(length for length, _ in episodes)
    pushes, more = whole[:split], whole[split:]
    assert [(p.expected_row, p.episode_end) for p in pushes] == \
        [(p.expected_row, p.episode_end) for p in make_pushes(episodes)]
    original = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=11)
    push_all(original, pushes)
    original.sample(32)  # advance the generator so its state matters
    original.sample(17)

    state = original.state_dict()
    assert_plain_state(state)
    path = tmp_path / "memory.pt"
    torch.save(state, path)
    loaded_state = torch.load(path, weights_only=True)
    assert_plain_state(loaded_state)

    restored = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=12345)  # different seed
    restored.load_state_dict(loaded_state)
    assert len(restored) == len(original)

    seq_orig, seq_rest = sample_sequence(original), sample_sequence(restored)
    assert all(batches_equal(a, b) for a, b in zip(seq_orig, seq_rest))
    pushed_rows = {p.expected_row for p in pushes}
    assert all(set(rows_of(b)) <= pushed_rows for b in seq_rest)

    # Subsequent pushes behave identically.
    for p in more:
        for memory in (original, restored):
            memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)
        assert len(original) == len(restored)
        assert batches_equal(original.sample(16), restored.sample(16))
    seq_orig, seq_rest = sample_sequence(original), sample_sequence(restored)
    assert all(batches_equal(a, b) for a, b in zip(seq_orig, seq_rest))
    all_rows = pushed_rows | {p.expected_row for p in more}
    assert all(set(rows_of(b)) <= all_rows for b in seq_rest)


def held_rows(memory: ReplayMemory) -> list[tuple]:
    """Every transition `sample` can draw, each once: the transition at each sampleable slot
    p, with its next observation at slot p + 1 of the ring (module docstring)."""
    index = memory.sampled_slots[:len(memory)]
    next_index = (index + 1) % memory.num_slots
    return rows_of((memory.obs[index], memory.action[index], memory.reward[index],
                    memory.obs[next_index], memory.mask[index]))


def random_stream(rng: np.random.Generator, capacity: int) -> list[Push]:
    """About two laps of the ring: episodes of 1–6 steps ending terminated or truncated at
    random, the last one sometimes still running."""
    episodes: list[tuple[int, str | None]] = []
    while sum(length for length, _ in episodes) < 2 * (capacity + 1) + 2:
        episodes.append((int(rng.integers(1, 7)), ("terminated", "truncated")[rng.integers(2)]))
    if rng.random() < 0.5:
        episodes[-1] = (episodes[-1][0], None)
    return make_pushes(episodes, first_episode=1)


def final_obs_in_second_to_last_slot_on_first_lap(pushes: list[Push], capacity: int) -> bool:
    """Whether an episode's final observation lands in slot capacity − 1 before the ring
    wraps, with a push after it: that push then writes the last slot and wraps its next
    observation to slot 0. On the first lap push j sits in slot j + (episode ends before j)."""
    ends = 0
    for j, p in enumerate(pushes[:-1]):
        if p.episode_end and j + ends + 1 == capacity - 1:
            return True
        ends += p.episode_end
    return False


POISON = -7777.0  # fills a restored memory first, so any slot the save missed is seen


def test_state_dict_round_trip_after_every_push_randomized():
    """Save after every push, load into a fresh (poisoned) memory: it must hold exactly the
    newest transitions the ring keeps, each as pushed, and sample as the original does."""
    rng = np.random.default_rng(20240607)
    round_trips, edge_cases, bad = 0, 0, []
    for trial in range(100):
        capacity = int(rng.integers(1, 21))
        pushes = random_stream(rng, capacity)
        rows = [p.expected_row for p in pushes]  # all distinct
        edge_cases += final_obs_in_second_to_last_slot_on_first_lap(pushes, capacity)
        memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=trial)
        for i, p in enumerate(pushes, start=1):
            memory.push(p.obs, p.action, p.reward, p.next_obs, p.terminated, p.episode_end)
            restored = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=trial + 1)
            for tensor in (restored.obs, restored.action, restored.reward, restored.mask):
                tensor.fill_(POISON)
            restored.load_state_dict(memory.state_dict())
            round_trips += 1
            k = retained_count(pushes[:i], capacity)
            held = held_rows(restored)
            if (len(restored) != k or len(set(held)) != k or set(held) != set(rows[i - k:i])
                    or not batches_equal(memory.sample(8), restored.sample(8))):
                bad.append((capacity, i))
    assert round_trips > 2000 and edge_cases >= 10  # the stream reaches the wrap edge case
    assert not bad, f"{len(bad)} of {round_trips} round trips went wrong, (capacity, push): " \
                    f"{bad[:5]}"


def test_humanoid_sized_buffer_fits_memory_budget():
    memory = ReplayMemory(capacity=1_000_000, obs_dim=348, action_dim=17, seed=0)
    tensors = (memory.obs, memory.action, memory.reward, memory.mask, memory.sampled_slots)
    total = sum(t.nbytes for t in tensors) + memory.slot_at_rank.nbytes + \
        memory.rank_of_slot.nbytes
    assert total <= 1.6e9, f"{total / 1e9:.3f} GB"
    # Still able to hold a million transitions of that shape.
    assert memory.obs.shape[0] >= 1_000_000 and memory.obs.shape[1] == 348
    assert memory.action.shape[1] == 17


def test_batch_dtypes_and_shapes():
    obs_dim, action_dim, batch_size = 4, 3, 9
    memory = ReplayMemory(10, obs_dim, action_dim, seed=0)
    for t in range(6):  # float64 / Python inputs, stored and returned as float32
        memory.push(np.arange(obs_dim, dtype=np.float64) + t, np.ones(action_dim) * t,
                    float(t), np.arange(obs_dim, dtype=np.float64) + t + 1,
                    terminated=t == 5, episode_end=t == 5)
    batch = memory.sample(batch_size)
    assert batch.obs.shape == (batch_size, obs_dim)
    assert batch.action.shape == (batch_size, action_dim)
    assert batch.reward.shape == (batch_size,)
    assert batch.next_obs.shape == (batch_size, obs_dim)
    assert batch.mask.shape == (batch_size,)
    for tensor in batch:
        assert isinstance(tensor, torch.Tensor)
        assert tensor.dtype == torch.float32
        assert tensor.device.type == "cpu"
    # next_obs is obs + 1 everywhere in this stream; the mask is 0 only for step 5.
    assert torch.equal(batch.next_obs, batch.obs + 1)
    assert torch.equal(batch.mask, (batch.reward != 5.0).float())


def test_sampling_empty_memory_raises_value_error():
    memory = ReplayMemory(10, OBS_DIM, ACTION_DIM, seed=0)
    with pytest.raises(ValueError):
        memory.sample(1)
    assert len(memory) == 0


def test_load_state_dict_rejects_other_capacity_and_forgets_old_slots():
    pushes = make_pushes(EPISODES)
    saved = ReplayMemory(5, OBS_DIM, ACTION_DIM, seed=0)
    push_all(saved, pushes)
    with pytest.raises(ValueError, match="capacity"):
        ReplayMemory(10, OBS_DIM, ACTION_DIM, seed=0).load_state_dict(saved.state_dict())

    small = ReplayMemory(100, OBS_DIM, ACTION_DIM, seed=0)
    push_all(small, pushes[:3])
    used = ReplayMemory(100, OBS_DIM, ACTION_DIM, seed=0)
    push_all(used, make_pushes([(40, "truncated")], first_episode=7))
    used.load_state_dict(small.state_dict())
    assert len(used) == 3
    assert set(rows_of(used.sample(500))) == {p.expected_row for p in pushes[:3]}


def test_load_state_dict_rejects_the_older_numpy_format_with_a_clear_error():
    older = {"obs": torch.zeros(3, OBS_DIM), "terminated": torch.zeros(3, dtype=torch.bool),
             "valid": torch.ones(3, dtype=torch.bool), "capacity": 10, "position": 2,
             "filled": 3, "size": 2, "rng": {}}
    with pytest.raises(ValueError, match="older format"):
        ReplayMemory(10, OBS_DIM, ACTION_DIM, seed=0).load_state_dict(older)


# --------------------------------------------------------------------------- episodes

def saved_state(capacity: int, episodes: list[tuple[int, str | None]], tmp_path=None) -> dict:
    """The state_dict of a memory fed `episodes`, through a file when `tmp_path` is given
    (as train_sac.py --save-replay writes it)."""
    memory = ReplayMemory(capacity, OBS_DIM, ACTION_DIM, seed=0)
    push_all(memory, make_pushes(episodes))
    if tmp_path is None:
        return memory.state_dict()
    torch.save({"memory": memory.state_dict()}, tmp_path / "replay.pt")
    return torch.load(tmp_path / "replay.pt", weights_only=True)["memory"]


@pytest.mark.parametrize("episodes", [[(3, "terminated"), (2, "truncated"), (4, None)],
                                      [(1, "truncated"), (5, "terminated"), (2, "terminated")],
                                      EPISODES, [(1, None)]])
def test_episodes_rebuild_the_pushed_episodes_exactly(tmp_path, episodes):
    stored = ReplayMemory.episodes(saved_state(100, episodes, tmp_path))
    assert len(stored) == len(episodes)
    for e, (episode, (steps, end)) in enumerate(zip(stored, episodes, strict=True)):
        np.testing.assert_array_equal(episode.obs, np.stack([observation(e, t)
                                                             for t in range(steps + 1)]))
        np.testing.assert_array_equal(episode.action,
                                      [[e + 0.5, -t - 0.25] for t in range(steps)])
        np.testing.assert_array_equal(episode.reward, [1000.0 * e + t + 0.5 for t in range(steps)])
        assert episode.terminated == (end == "terminated")
        assert episode.running == (end is None)


@pytest.mark.parametrize("capacity, episodes", [(8, [(4, "terminated"), (6, None)]),
                                                (4, [(4, "truncated")])])  # every slot written
def test_episodes_refuse_a_ring_that_wrapped(capacity, episodes):
    with pytest.raises(RingWrappedError, match="overwritten"):
        ReplayMemory.episodes(saved_state(capacity, episodes))


def tamper(state: dict, how: str) -> dict:
    slots = state["sampled_slots"]
    if how == "duplicate slot":
        state["sampled_slots"] = torch.cat([slots, slots[:1]])
    elif how == "no slot 0":
        state["sampled_slots"] = slots[slots != 0]
    elif how == "episode's last step missing":  # two free slots in a row
        state["sampled_slots"] = slots[slots != 2]
    elif how == "final slot sampled":
        state["sampled_slots"] = torch.cat([slots, torch.tensor([state["filled"] - 1])])
    elif how == "position elsewhere":
        state["position"] = 1
    elif how == "short rewards":
        state["reward"] = state["reward"][:-1]
    elif how == "terminal inside an episode":
        state["mask"][5] = 0.0
    return state


@pytest.mark.parametrize("how", ["duplicate slot", "no slot 0", "episode's last step missing",
                                 "final slot sampled", "position elsewhere", "short rewards",
                                 "terminal inside an episode"])
def test_episodes_refuse_a_layout_no_first_lap_writes(how):
    # slots 0-2: a terminated episode, 3: its final observation, 4-7: a running one
    state = tamper(saved_state(100, [(3, "terminated"), (4, None)]), how)
    with pytest.raises(ValueError, match="layout|terminated transition continues") as error:
        ReplayMemory.episodes(state)
    assert not isinstance(error.value, RingWrappedError)


def test_a_saved_memory_holds_only_its_written_slots(tmp_path):
    """torch.save writes a view's whole storage: a checkpoint of a memory with 1,000,000
    slots and 50 written must hold 50 slots, not a million."""
    memory = ReplayMemory(1_000_000, 11, 3, seed=0)
    for t in range(50):
        memory.push(np.full(11, t, np.float32), np.zeros(3, np.float32), 1.0,
                    np.full(11, t + 1, np.float32), terminated=False, episode_end=t == 49)
    path = tmp_path / "memory.pt"
    torch.save(memory.state_dict(), path)
    assert path.stat().st_size < 100_000  # 51 slots of 11 + 3 + 2 floats, plus metadata
    restored = ReplayMemory(1_000_000, 11, 3, seed=0)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(restored.sample(64).obs, memory.sample(64).obs)
