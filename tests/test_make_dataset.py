"""make_dataset.py against independent computations: datasets are written into a temporary
Minari folder, read back (with Minari and with offline.data.load_dataset), and checked
against what the test computes itself: the environment re-played from each episode's
stored reset seed with the stored actions, the seeds, actions and ε drawn from the
utils.stream_seed streams the docs name, the actor's tanh(μ)·scale + bias in numpy, the
train_sac.py run's own TensorBoard episode returns and replay file, a hand-built
ReplayMemory (its layout is tested in test_replay_memory.py), and the checksum as its
definition states it. Every bad
input must give one `make_dataset.py: error:` line, exit status 2, and write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT as REPO_ROOT_TEXT

import make_dataset
from offline.data import load_dataset
from offline.readers import D4RL_REF_SCORES
from replay_memory import ReplayMemory
from utils import stream_seed

REPO_ROOT = Path(REPO_ROOT_TEXT)
PREFIX = "make_dataset.py: error:"
IP = "InvertedPendulum-v5"  # 4-dim observations, 1-dim actions in [-3, 3]
TRAIN_RUN = ["--env-name", IP, "--seed", "3", "--num-steps", "600", "--start-steps", "100",
             "--batch-size", "32", "--hidden-size", "16", "--eval-episodes", "1",
             "--update-after", "450", "--eval-freq", "1000", "--log-freq", "1000",
             "--checkpoint-freq", "1000"]  # 150 updates: the policy acts, the test stays fast
TRAIN_FILE_NAME = "POSAC_InvertedPendulum-v5_s3_w0.0"


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def make(*argv: str) -> None:
    make_dataset.main(list(argv))


def episodes_of(dataset_id: str) -> tuple[list, list[dict], dict]:
    """(episodes, per-episode metadata, make_dataset's record) of a stored dataset."""
    import minari

    dataset = minari.load_dataset(dataset_id, download=False)
    episodes = list(dataset.iterate_episodes())
    episode_metadata = list(dataset.storage.get_episode_metadata(range(len(episodes))))
    return episodes, episode_metadata, dataset.storage.metadata["make_dataset"]


def arrays_of(episodes: list) -> list[np.ndarray]:
    return [np.concatenate([np.asarray(getattr(e, name)).reshape(len(e.rewards) + (
        name == "observations"), -1) for e in episodes])
        for name in ("observations", "actions", "rewards", "terminations", "truncations")]


def checksum(episodes: list) -> str:
    """The checksum as make_dataset.CHECKSUM_DEFINITION states it, written out here."""
    digest = hashlib.sha256()
    for e in episodes:
        digest.update(len(e.rewards).to_bytes(8, "little", signed=True))
        digest.update(np.asarray(e.observations, dtype="<f8").tobytes())
        digest.update(np.asarray(e.actions, dtype="<f4").tobytes())
        digest.update(np.asarray(e.rewards, dtype="<f8").tobytes())
        digest.update(np.asarray(e.terminations, dtype=np.uint8).tobytes())
        digest.update(np.asarray(e.truncations, dtype=np.uint8).tobytes())
    return "sha256:" + digest.hexdigest()


def check_episode_flags(episodes: list) -> None:
    """Each episode ends (terminated or truncated) at its last step and only there."""
    for e in episodes:
        ends = np.asarray(e.terminations) | np.asarray(e.truncations)
        assert ends[-1] and not ends[:-1].any()
        assert not (e.terminations[-1] and e.truncations[-1])


def replay_in_env(env_name: str, episodes: list, seeds: list[int], cut_last: bool) -> None:
    """Reset with each episode's stored seed and play its stored actions: the environment
    must give back the stored observations, rewards and episode ends."""
    env = gym.make(env_name)
    for index, (e, seed) in enumerate(zip(episodes, seeds, strict=True)):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs, e.observations[0])
        for t, action in enumerate(e.actions):
            obs, reward, terminated, truncated, _ = env.step(action)
            np.testing.assert_array_equal(obs, e.observations[t + 1])
            assert reward == e.rewards[t]
            assert terminated == e.terminations[t]
            last_cut = cut_last and index == len(episodes) - 1 and t == len(e.actions) - 1
            assert truncated == (False if last_cut else e.truncations[t])
        assert len(e.actions) == len(e.observations) - 1


def independent_random_return(env_name: str, episodes: int) -> float:
    """The documented ref_min measurement: episode k resets with seed k, uniform actions
    from numpy default_rng(0)."""
    env = gym.make(env_name)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    returns = []
    for k in range(episodes):
        env.reset(seed=k)
        total, done = 0.0, False
        while not done:
            action = rng.uniform(low, high).astype(np.float32)
            _, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def test_help_imports_no_torch():
    code = ("import sys, make_dataset\n"
            "try:\n    make_dataset.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'minari' in sys.modules, 'gymnasium' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--from-replay" in result.stdout
    for low, high in D4RL_REF_SCORES.values():  # the help's numbers are offline.readers'
        assert f"{low} / {high}" in " ".join(result.stdout.split())
    assert result.stdout.strip().splitlines()[-1] == "False False False"


# --------------------------------------------------------------------------- random policy

def test_random_policy_truncations_scores_and_metadata(minari_root: Path, capsys):
    make("--env-name", "Pendulum-v1", "--policy", "random", "--num-steps", "450", "--seed", "3",
         "--dataset-id", "test/pendulum/random-v0", "--ref-episodes", "2",
         "--ref-max-score", "-100")
    out = capsys.readouterr().out
    episodes, episode_metadata, record = episodes_of("test/pendulum/random-v0")

    # Pendulum never terminates: two 200-step time limits, then 50 steps cut by the budget
    assert [len(e.rewards) for e in episodes] == [200, 200, 50]
    check_episode_flags(episodes)
    assert not any(np.any(e.terminations) for e in episodes)
    seeds = [m["seed"] for m in episode_metadata]
    reset_rng = np.random.default_rng(stream_seed(3, "dataset_resets"))
    assert seeds == [int(reset_rng.integers(2**31)) for _ in episodes]
    replay_in_env("Pendulum-v1", episodes, seeds, cut_last=True)

    data = load_dataset("test/pendulum/random-v0")
    assert len(data) == 450 and data.env_id == "Pendulum-v1"
    # the cut-off third episode is stored (450 transitions) but is no complete episode
    np.testing.assert_allclose(data.episode_returns,
                               [np.sum(e.rewards, dtype=np.float64) for e in episodes[:2]])
    assert (np.abs(data.action) <= 2.0).all() and data.action.std() > 0.5  # spread over [-2, 2]
    ref_min = independent_random_return("Pendulum-v1", 2)
    assert data.ref_min_score == pytest.approx(ref_min, rel=1e-12)
    assert data.ref_max_score == -100.0

    returns = [float(np.sum(e.rewards, dtype=np.float64)) for e in episodes[:2]]
    summary = record["summary"]
    assert summary["transitions"] == 450 and summary["episodes"] == 3
    assert summary["complete_episodes"] == 2 and summary["truncated_episodes"] == 2
    assert summary["terminated_episodes"] == 0 and summary["final_episode_cut"] is True
    assert summary["mean_return"] == pytest.approx(np.mean(returns), rel=1e-12)
    assert summary["normalized_score"] == pytest.approx(
        100 * (np.mean(returns) - ref_min) / (-100.0 - ref_min), rel=1e-9)
    assert record["checksum"] == checksum(episodes)
    assert record["seed"] == 3 and record["num_steps"] == 450 and record["source"] == "random"
    assert record["command"].startswith("python make_dataset.py --env-name Pendulum-v1")
    assert record["reference_scores"]["ref_max_score_source"] == "given"
    assert "measured" in record["reference_scores"]["ref_min_score_source"]
    assert {"numpy", "torch", "gymnasium", "minari"} <= set(record["package_versions"])
    assert record["checksum"] in out and "450 in 3 episodes" in out


def test_random_policy_is_deterministic_and_terminations(minari_root: Path):
    common = ["--env-name", IP, "--policy", "random", "--num-steps", "300",
              "--ref-min-score", "0", "--ref-max-score", "1000"]
    make(*common, "--seed", "5", "--dataset-id", "test/ip/random-v0")
    make(*common, "--seed", "5", "--dataset-id", "test/ip/random-v1")
    make(*common, "--seed", "6", "--dataset-id", "test/ip/random-v2")
    first, metadata, record = episodes_of("test/ip/random-v0")
    again, _, record_again = episodes_of("test/ip/random-v1")
    other, _, _ = episodes_of("test/ip/random-v2")

    for a, b in zip(arrays_of(first), arrays_of(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert record["checksum"] == record_again["checksum"] == checksum(again)
    assert record["checksum"] != checksum(other)
    assert not np.array_equal(arrays_of(first)[1][:50], arrays_of(other)[1][:50])

    # random actions topple the pendulum: episodes end by termination (the last one may be
    # cut by the budget; within 300 steps no time limit truncates)
    check_episode_flags(first)
    assert all(e.terminations[-1] for e in first[:-1])
    assert sum(len(e.rewards) for e in first) == 300
    actions = arrays_of(first)[1]
    assert actions.dtype == np.float32 and (np.abs(actions) <= 3.0).all()
    action_rng = np.random.default_rng(stream_seed(5, "dataset_actions"))
    np.testing.assert_array_equal(
        actions, [action_rng.uniform(-3.0, 3.0, 1).astype(np.float32) for _ in actions])
    seeds = [m["seed"] for m in metadata]
    assert len(set(seeds)) == len(seeds)
    replay_in_env(IP, first, seeds, cut_last=not first[-1].terminations[-1])
    returns = [float(np.sum(e.rewards)) for e in first if e.terminations[-1]]
    assert record["summary"]["mean_return"] == pytest.approx(np.mean(returns))
    assert record["summary"]["terminated_episodes"] == len(returns) >= len(first) - 1


def test_d4rl_tasks_default_to_d4rl_reference_scores(minari_root: Path):
    make("--env-name", "HalfCheetah-v5", "--policy", "random", "--num-steps", "30",
         "--dataset-id", "test/halfcheetah/random-v0")
    make("--env-name", "HalfCheetah-v5", "--policy", "random", "--num-steps", "30",
         "--dataset-id", "test/halfcheetah/random-v1", "--ref-max-score", "5000")
    data = load_dataset("test/halfcheetah/random-v0")
    assert (data.ref_min_score, data.ref_max_score) == D4RL_REF_SCORES["halfcheetah"]
    given = load_dataset("test/halfcheetah/random-v1")
    assert (given.ref_min_score, given.ref_max_score) == (D4RL_REF_SCORES["halfcheetah"][0], 5000.0)
    _, _, record = episodes_of("test/halfcheetah/random-v0")
    assert "D4RL" in record["reference_scores"]["ref_min_score_source"]
    # one 30-step episode cut by the budget: no complete episode to average
    assert record["summary"]["complete_episodes"] == 0
    assert record["summary"]["mean_return"] is None
    assert record["summary"]["normalized_score"] is None


# --------------------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A 2-actor POSAC agent (hidden size 16) saved as train_sac.py saves its final one; the
    actors' weights are spread out so that their actions differ clearly."""
    from sac import POSAC, SACConfig

    env = gym.make(IP)
    low = torch.as_tensor(env.action_space.low)
    high = torch.as_tensor(env.action_space.high)
    agent = POSAC(4, low, high, SACConfig(num_actors=2, w2_weights=(0.0, 0.1), hidden_size=16),
                  seed=11)
    with torch.no_grad():
        for actor in agent.actors:
            for parameter in actor.parameters():
                parameter.mul_(2.0)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoints" / IP / "POSAC_test_final.pt"
    path.parent.mkdir(parents=True)
    torch.save({"agent": agent.state_dict()}, path)
    return path


def numpy_actor(path: Path, actor: int, obs: np.ndarray) -> tuple[np.ndarray, ...]:
    """(μ, σ, scale, bias) of actor `actor` at `obs`, from the checkpoint's weights in numpy."""
    state = {k: v.double().numpy()
             for k, v in torch.load(path, weights_only=True)["agent"]["actors"][actor].items()}
    h = np.maximum(obs @ state["net.0.weight"].T + state["net.0.bias"], 0)
    h = np.maximum(h @ state["net.2.weight"].T + state["net.2.bias"], 0)
    out = h @ state["net.4.weight"].T + state["net.4.bias"]
    mean, log_std = np.split(out, 2, axis=-1)
    return mean, np.exp(np.clip(log_std, -20, 2)), state["action_scale"], state["action_bias"]


def test_deterministic_actions_are_the_chosen_actors_mean(minari_root: Path, checkpoint: Path):
    make("--env-name", IP, "--policy", str(checkpoint), "--actor", "1", "--deterministic",
         "--num-steps", "200", "--seed", "2", "--dataset-id", "test/ip/det-v0",
         "--ref-min-score", "0", "--ref-max-score", "1000")
    episodes, metadata, record = episodes_of("test/ip/det-v0")
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    mean, _, scale, bias = numpy_actor(checkpoint, 1, obs)
    np.testing.assert_allclose(actions, np.tanh(mean) * scale + bias, rtol=0, atol=2e-6)
    mean_0, _, _, _ = numpy_actor(checkpoint, 0, obs)
    assert np.abs(actions - (np.tanh(mean_0) * scale + bias)).max() > 0.1  # not actor 0
    check_episode_flags(episodes)
    replay_in_env(IP, episodes, [m["seed"] for m in metadata],
                  cut_last=not episodes[-1].terminations[-1])
    assert record["actor"] == 1 and record["deterministic"] is True
    assert "behaviour_spread" not in record["summary"]  # a deterministic policy has none
    assert record["hidden_size"] == 16 and record["num_actors_in_checkpoint"] == 2
    assert record["policy_sha256"] == \
        "sha256:" + hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_stochastic_actions_use_the_documented_noise(minari_root: Path, checkpoint: Path):
    make("--env-name", IP, "--policy", str(checkpoint), "--num-steps", "200", "--seed", "4",
         "--dataset-id", "test/ip/stoch-v0", "--ref-min-score", "0", "--ref-max-score", "1000")
    episodes, _, record = episodes_of("test/ip/stoch-v0")
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    actions = np.concatenate([e.actions for e in episodes]).astype(np.float64)
    mean, std, scale, bias = numpy_actor(checkpoint, 0, obs)
    generator = torch.Generator().manual_seed(stream_seed(4, "dataset_noise"))
    noise = np.stack([torch.randn(1, generator=generator, dtype=torch.float64).numpy()
                      for _ in range(len(actions))])
    # ε from the stream the docs name, one draw per step, through tanh(μ + σ·ε)·scale + bias
    np.testing.assert_allclose(actions, np.tanh(mean + std * noise) * scale + bias,
                               rtol=0, atol=2e-6)
    assert np.abs(actions - (np.tanh(mean) * scale + bias)).max() > 0.1  # ε plays a part
    assert record["deterministic"] is False and record["actor"] == 0
    # the behaviour spread: numpy's std over 64 draws at 512 of the states, both drawn from
    # the documented `spread` stream, averaged over states and action dimensions
    rows = np.sort(np.random.default_rng(stream_seed(4, "spread")).choice(
        len(obs), min(512, len(obs)), replace=False))
    generator = torch.Generator().manual_seed(stream_seed(4, "spread"))
    eps = torch.randn(len(rows), 64, 1, generator=generator, dtype=torch.float64).numpy()
    mean, std, scale, bias = numpy_actor(checkpoint, 0, obs[rows])
    draws = np.tanh(mean[:, None] + std[:, None] * eps) * scale + bias
    assert record["summary"]["behaviour_spread"] == pytest.approx(
        draws.std(axis=1, ddof=1).mean(), rel=1e-9)


# --------------------------------------------------------------------------- training data

@pytest.fixture(scope="module")
def training_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    command = [sys.executable, str(REPO_ROOT / "train_sac.py"), *TRAIN_RUN, "--save-replay",
               "--results-dir", str(root / "results"), "--log-dir", str(root / "runs"),
               "--checkpoint-dir", str(root / "checkpoints")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def test_training_data_export_matches_the_run(minari_root: Path, training_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    replay = training_run / "checkpoints" / IP / f"{TRAIN_FILE_NAME}_replay.pt"
    make("--env-name", IP, "--from-replay", str(replay), "--dataset-id", "test/ip/replay-v0",
         "--ref-episodes", "2", "--ref-max-score", "1000")
    episodes, _, record = episodes_of("test/ip/replay-v0")
    summary_json = json.loads((training_run / "results" / TRAIN_FILE_NAME / "summary.json")
                              .read_text())
    summary = record["summary"]

    # every step of the run is one transition; its episodes are the run's episodes
    assert summary["transitions"] == summary_json["steps"] == 600
    assert summary["complete_episodes"] == summary_json["episodes"]
    assert len(episodes) == summary_json["episodes"] + summary["final_episode_cut"]
    check_episode_flags(episodes)
    events = EventAccumulator(str(training_run / "runs" / TRAIN_FILE_NAME))
    events.Reload()
    logged = events.Scalars("train/episode_return")
    complete = episodes[:summary_json["episodes"]]
    assert [event.value for event in logged] == pytest.approx(
        [float(np.sum(e.rewards)) for e in complete])
    assert [event.step for event in logged] == list(np.cumsum([len(e.rewards) for e in complete]))
    assert summary["mean_return"] == pytest.approx(np.mean([event.value for event in logged]))
    # an episode starts at a reset: InvertedPendulum's reset noise is at most 0.01
    assert all(np.abs(e.observations[0]).max() <= 0.01 for e in episodes)

    # the transitions, flat, are the memory's rows in slot order (s' in the next slot)
    memory = torch.load(replay, weights_only=True)["memory"]
    slots = np.sort(memory["sampled_slots"].numpy())
    obs, action, reward, next_obs, terminal = (
        np.concatenate(parts) for parts in zip(*[
            (e.observations[:-1], e.actions, e.rewards, e.observations[1:], e.terminations)
            for e in episodes], strict=True))
    np.testing.assert_array_equal(obs, memory["obs"].double().numpy()[slots])
    np.testing.assert_array_equal(next_obs, memory["obs"].double().numpy()[slots + 1])
    np.testing.assert_array_equal(action, memory["action"].numpy()[slots])
    np.testing.assert_array_equal(reward, memory["reward"].double().numpy()[slots])
    np.testing.assert_array_equal(terminal, memory["mask"].numpy()[slots] == 0)
    assert record["replay_sha256"] == "sha256:" + hashlib.sha256(replay.read_bytes()).hexdigest()
    assert record["checksum"] == checksum(episodes)
    data = load_dataset("test/ip/replay-v0")
    assert len(data) == 600 and data.ref_max_score == 1000.0


def encoded(episode: int, step: int) -> np.ndarray:
    return np.array([episode, step, 100 * episode + step], dtype=np.float32)


def hand_built_memory(path: Path, capacity: int, episodes: list[tuple[int, str]]) -> list:
    """A real ReplayMemory fed episodes of (steps, 'terminated' | 'truncated' | 'cut') whose
    observations encode (episode, step), saved as train_sac.py --save-replay does."""
    memory = ReplayMemory(capacity, 3, 1, seed=0)
    for e, (steps, end) in enumerate(episodes):
        for t in range(steps):
            last = t == steps - 1
            memory.push(encoded(e, t), np.array([0.1 * e + 0.01 * t], np.float32),
                        10.0 * e + t, encoded(e, t + 1), last and end == "terminated",
                        last and end != "cut")
    torch.save({"memory": memory.state_dict()}, path)
    return episodes


@pytest.mark.parametrize("ends", [[(3, "terminated"), (2, "truncated"), (4, "cut")],
                                  [(1, "truncated"), (5, "terminated"), (2, "terminated")]])
def test_replay_export_flags_and_summary(minari_root: Path, tmp_path: Path, ends):
    """ReplayMemory.episodes (tested on its own in test_replay_memory.py) as Minari episodes:
    a termination, else a truncation (the cut-off one too) on the last step."""
    path = tmp_path / "replay.pt"
    hand_built_memory(path, 100, ends)
    make("--env-name", "Pendulum-v1", "--from-replay", str(path), "--dataset-id",
         "test/pendulum/replay-v0", "--ref-min-score", "-1", "--ref-max-score", "1")
    episodes, _, record = episodes_of("test/pendulum/replay-v0")
    assert len(episodes) == len(ends)
    for e, (episode, (steps, end)) in enumerate(zip(episodes, ends, strict=True)):
        np.testing.assert_array_equal(episode.observations,
                                      np.stack([encoded(e, t) for t in range(steps + 1)]))
        assert list(episode.terminations) == [False] * (steps - 1) + [end == "terminated"]
        assert list(episode.truncations) == [False] * (steps - 1) + [end != "terminated"]
    summary = record["summary"]
    assert summary["final_episode_cut"] == (ends[-1][1] == "cut")
    complete = [sum(10.0 * e + t for t in range(steps))
                for e, (steps, end) in enumerate(ends) if end != "cut"]
    assert summary["mean_return"] == pytest.approx(np.mean(complete))


# --------------------------------------------------------------------------- bad input

def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))} if root.exists() else {}


def expect_usage_error(argv: list[str], capsys, root: Path) -> str:
    before = snapshot(root)
    with pytest.raises(SystemExit) as excinfo:
        make(*argv)
    assert excinfo.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(PREFIX), lines[0]
    assert captured.out == ""
    assert snapshot(root) == before
    return lines[0]


RANDOM = ["--policy", "random", "--num-steps", "10"]


def bad_cases(checkpoint: Path, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    neutral = tmp / "elsewhere" / "POSAC_test_final.pt"  # not in an environment's folder
    neutral.parent.mkdir(exist_ok=True)
    neutral.write_bytes(checkpoint.read_bytes())
    garbage = tmp / "garbage.pt"
    garbage.write_text("not a torch file")
    wrapped = tmp / "wrapped_replay.pt"
    hand_built_memory(wrapped, 8, [(4, "terminated"), (6, "cut")])
    replay = tmp / "replay.pt"
    hand_built_memory(replay, 100, [(4, "terminated")])
    tampered = tmp / "tampered_replay.pt"
    data = torch.load(replay, weights_only=True)
    data["memory"]["mask"][1] = 0.0  # a termination inside the episode
    torch.save(data, tampered)
    resume = tmp / "POSAC_test_latest.pt"
    torch.save({"run": {"total_steps": 5}, **torch.load(checkpoint, weights_only=True)}, resume)
    ip = ["--env-name", IP, "--dataset-id", "test/ip/x-v0"]
    pendulum = ["--env-name", "Pendulum-v1", "--dataset-id", "test/pendulum/x-v0"]
    policy = ["--policy", str(checkpoint), "--num-steps", "10"]
    return {
        "resume_checkpoint": ([*ip, "--policy", str(resume), "--num-steps", "10"],
                              ["resume checkpoint", "_final.pt"]),
        "unknown_env": (["--env-name", "HalfCheetah-v9", "--dataset-id", "test/x-v0", *RANDOM],
                        ["unknown environment", "HalfCheetah-v9", "HalfCheetah-v5"]),
        "missing_checkpoint": ([*ip, "--policy", str(tmp / "nope.pt"), "--num-steps", "10"],
                               ["does not exist", "nope.pt"]),
        "folder_as_checkpoint": ([*ip, "--policy", str(tmp), "--num-steps", "10"],
                                 [f"checkpoint {tmp} is a folder, not a torch file",
                                  "give a final checkpoint"]),
        "actor_out_of_range": ([*ip, *policy, "--actor", "2"],
                               ["--actor 2", "2 actor(s)", "0..1"]),
        "negative_actor": ([*ip, *policy, "--actor", "-1"], ["--actor -1", "0..1"]),
        "dimension_mismatch": ([*pendulum, "--policy", str(neutral), "--num-steps", "10"],
                               ["4-dim observations", "Pendulum-v1 has 3"]),
        "other_env_folder": ([*pendulum, *policy], [f"in the folder of {IP}",
                                                    "--env-name is Pendulum-v1",
                                                    f"pass --env-name {IP}"]),
        "malformed_id_no_version": (["--env-name", IP, "--dataset-id", "test/ip/x", *RANDOM],
                                    ["--dataset-id", "test/ip/x", "name-vN"]),
        "malformed_id_characters": (["--env-name", IP, "--dataset-id", "test/i p!-v0", *RANDOM],
                                    ["--dataset-id", "posac/halfcheetah/medium-v0"]),
        "one_letter_namespace": (["--env-name", IP, "--dataset-id", "t/a-v0", *RANDOM],
                                 ["'t/a-v0'", "a namespace of two or more characters"]),
        "random_with_actor": ([*ip, *RANDOM, "--actor", "1"], ["--actor", "checkpoint"]),
        "random_deterministic": ([*ip, *RANDOM, "--deterministic"], ["--deterministic"]),
        "policy_without_steps": ([*ip, "--policy", "random"], ["--num-steps"]),
        "replay_with_steps": ([*pendulum, "--from-replay", str(replay), "--num-steps", "5"],
                              ["--num-steps", "--from-replay"]),
        "both_sources": ([*ip, *RANDOM, "--from-replay", str(replay)],
                         ["--from-replay", "not allowed with"]),
        "no_source": (ip, ["one of the arguments --policy --from-replay is required"]),
        "garbage_checkpoint": ([*ip, "--policy", str(garbage), "--num-steps", "10"],
                               ["garbage.pt", "cannot be read"]),
        "replay_as_policy": ([*pendulum, "--policy", str(replay), "--num-steps", "10"],
                             ["not a POSAC checkpoint", "memory"]),
        "checkpoint_as_replay": ([*pendulum, "--from-replay", str(neutral)],
                                 ["not a saved replay memory", "agent"]),
        "replay_dimension_mismatch": ([*ip, "--from-replay", str(replay)],
                                      ["3-dim observations", f"{IP} has 4"]),
        "wrapped_replay": ([*pendulum, "--from-replay", str(wrapped)],
                           ["overwritten", "--replay-size"]),
        "tampered_replay": ([*pendulum, "--from-replay", str(tampered)],
                            ["tampered_replay.pt", "terminated transition", "unmodified"]),
        "ref_max_below_min": ([*ip, *RANDOM, "--ref-min-score", "5", "--ref-max-score", "5"],
                              ["ref_max_score 5.0 must exceed ref_min_score 5.0"]),
        "ref_max_below_d4rl_min": (["--env-name", "Hopper-v5", "--dataset-id", "test/h-v0",
                                    *RANDOM, "--ref-max-score", "-100"],
                                   ["ref_max_score -100.0", "-20.272305"]),
        "ref_nan": ([*ip, *RANDOM, "--ref-min-score", "nan"], ["--ref-min-score", "finite"]),
        "bad_steps": ([*ip, "--policy", "random", "--num-steps", "0"], ["--num-steps"]),
        "negative_seed": ([*ip, *RANDOM, "--seed", "-1"], ["--seed"]),
        "replay_with_seed": ([*pendulum, "--from-replay", str(replay), "--seed", "1"],
                             ["--seed", "--from-replay"]),
    }


CASE_NAMES = ["unknown_env", "missing_checkpoint", "folder_as_checkpoint",
              "actor_out_of_range", "negative_actor", "dimension_mismatch", "other_env_folder",
              "malformed_id_no_version", "malformed_id_characters", "one_letter_namespace",
              "random_with_actor", "random_deterministic",
              "policy_without_steps", "replay_with_steps", "both_sources", "no_source",
              "garbage_checkpoint", "replay_as_policy", "checkpoint_as_replay",
              "replay_dimension_mismatch", "wrapped_replay", "tampered_replay",
              "ref_max_below_min", "ref_max_below_d4rl_min", "ref_nan", "bad_steps",
              "negative_seed", "replay_with_seed"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_one_line_nothing_written(case: str, checkpoint: Path, tmp_path: Path,
                                            minari_root: Path, capsys):
    argv, words = bad_cases(checkpoint, tmp_path)[case]
    line = expect_usage_error(argv, capsys, minari_root)
    for word in words:
        assert word in line, (word, line)


def test_existing_dataset_is_not_overwritten(minari_root: Path, capsys):
    make("--env-name", "Pendulum-v1", *RANDOM, "--dataset-id", "test/pendulum/x-v0",
         "--ref-min-score", "-1", "--ref-max-score", "1")
    capsys.readouterr()
    line = expect_usage_error(["--env-name", "Pendulum-v1", *RANDOM, "--dataset-id",
                               "test/pendulum/x-v0"], capsys, minari_root)
    assert "test/pendulum/x-v0 already exists" in line
    assert "minari delete test/pendulum/x-v0" in line
    assert len(load_dataset("test/pendulum/x-v0")) == 10  # untouched


def test_a_second_writer_of_one_id_is_refused_while_the_first_writes(minari_root: Path,
                                                                       capsys):
    """Another process holds the id's writer lock (flock, as a running make_dataset.py
    does): one line, nothing written; once it is released the id can be written."""
    import fcntl

    minari_root.mkdir(parents=True, exist_ok=True)
    lock = minari_root / ".make_dataset-test_pendulum_y-v0.lock"
    argv = ["--env-name", "Pendulum-v1", *RANDOM, "--dataset-id", "test/pendulum/y-v0",
            "--ref-min-score", "-1", "--ref-max-score", "1"]
    with open(lock, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = expect_usage_error(argv, capsys, minari_root)
    assert f"another make_dataset.py is writing test/pendulum/y-v0 now (it holds {lock})" in line
    make(*argv)
    assert len(load_dataset("test/pendulum/y-v0")) == 10


def test_a_minari_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "afile" / "minari"))
    line = expect_usage_error(["--env-name", "Pendulum-v1", *RANDOM, "--dataset-id",
                               "test/pendulum/z-v0"], capsys, tmp_path)
    assert f"cannot write in the Minari folder {tmp_path / 'afile' / 'minari'}" in line
    assert "MINARI_DATASETS_PATH" in line


WRITER_LOCK = ".make_dataset-test_pendulum_x-v0.lock"  # offline/writing.writer_lock
KILLED_AFTER_MINARI_WRITE = """
import os, sys
import minari.dataset.minari_storage as storage
import make_dataset

update = storage.MinariStorage.update_metadata


def die_before_our_metadata(self, metadata):  # SIGKILL's exit, after Minari wrote its part
    if "make_dataset" in metadata:
        os._exit(137)
    return update(self, metadata)


storage.MinariStorage.update_metadata = die_before_our_metadata
make_dataset.main(sys.argv[1:])
"""


def test_a_kill_during_the_write_leaves_no_dataset_and_the_rerun_writes_it(minari_root: Path,
                                                                           capsys):
    """The dataset appears only complete: killed between Minari's write and make_dataset's
    metadata (reference scores, provenance), nothing is left that training could read or
    that blocks the rerun, which writes it whole and clears the killed write's leftovers."""
    argv = ["--env-name", "Pendulum-v1", *RANDOM, "--dataset-id", "test/pendulum/x-v0",
            "--ref-min-score", "-1", "--ref-max-score", "1"]
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_MINARI_WRITE, *argv],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert killed.returncode == 137, killed.stderr
    assert not (minari_root / "test" / "pendulum" / "x-v0").exists()
    import minari

    assert minari.list_local_datasets() == {}
    make(*argv)
    assert "Wrote Minari dataset test/pendulum/x-v0" in capsys.readouterr().out
    assert episodes_of("test/pendulum/x-v0")[2]["reference_scores"]["ref_max_score"] == 1.0
    # nothing staged: the dataset and the id's (empty, hidden) writer lock file
    assert sorted(path.name for path in minari_root.iterdir()) == [WRITER_LOCK, "test"]


def test_ctrl_c_during_the_checks_is_one_line(minari_root: Path, capsys,
                                             monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C while the checks build the environment (or load a checkpoint): the same one
    line and exit status 130 as during the write, not a traceback."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(make_dataset, "reference_scores", interrupt)
    with pytest.raises(SystemExit) as excinfo:
        make("--env-name", "Pendulum-v1", *RANDOM, "--dataset-id", "test/pendulum/x-v0")
    assert excinfo.value.code == 130
    assert capsys.readouterr().err == "make_dataset.py: interrupted; nothing written\n"
    assert not minari_root.exists()  # the checks come before the writer's lock


def test_ctrl_c_during_the_write_leaves_nothing(minari_root: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch):
    import minari.dataset.minari_storage as storage

    def interrupt(self, metadata):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.MinariStorage, "update_metadata", interrupt)
    with pytest.raises(SystemExit) as excinfo:
        make("--env-name", "Pendulum-v1", *RANDOM, "--dataset-id", "test/pendulum/x-v0",
             "--ref-min-score", "-1")
    assert excinfo.value.code == 130
    assert capsys.readouterr().err == "make_dataset.py: interrupted; nothing written\n"
    # the staging folder removed too: only the id's writer lock file is left
    assert [path.name for path in minari_root.iterdir()] == [WRITER_LOCK]
    assert os.environ["MINARI_DATASETS_PATH"] == str(minari_root)  # Minari's folder restored


def test_a_writer_clears_only_its_own_ids_staging_leftovers(minari_root: Path):
    """A killed write of ns/x-v0 left a staging folder; ns/x-v0-b-v0's writer is staging
    now. The next writer of ns/x-v0 removes the first, never the second."""
    from offline.writing import staging_folder

    killed = minari_root / ".make_dataset-ns_x-v0-k1ll3d_0"
    other = minari_root / ".make_dataset-ns_x-v0-b-v0-w0rk1ng_"
    for folder in (killed, other):
        (folder / "data").mkdir(parents=True)
    new = staging_folder("ns/x-v0")
    assert not killed.exists() and (other / "data").is_dir()
    assert new.parent == minari_root and new.name.startswith(".make_dataset-ns_x-v0-")


@pytest.fixture(scope="module")
def pogo_checkpoint(tmp_path_factory) -> Path:
    """A 2-actor POGO agent saved as a self-contained final checkpoint, with observation
    statistics that matter (μ, σ far from 0, 1)."""
    from dataclasses import asdict

    from pogo import POGO, POGOConfig
    from training.final_checkpoint import final_checkpoint

    agent = POGO(4, 1, 3.0, POGOConfig(num_actors=2, w2_weights=(1.0, 1.0), hidden_size=16),
                 seed=5)
    header = {"algorithm": "POGO", "program": "train_pogo.py", "code_version": "test",
              "env_id": IP, "env_kwargs": {}, "observation_shape": [4],
              "action_low": torch.full((1,), -3.0), "action_high": torch.full((1,), 3.0),
              "agent_config": asdict(agent.config), "obs_mean": torch.tensor([0.1, -0.2, 0.3, 0.0]),
              "obs_std": torch.tensor([0.5, 2.0, 1.5, 0.25]), "reference_scores": None,
              "seed": 5, "steps": 0, "settings": {}}
    path = tmp_path_factory.mktemp("pogo_ckpt") / "POGO_test_final.pt"
    torch.save(final_checkpoint(header, agent.state_dict()), path)
    return path


def numpy_pogo_actor(path: Path, actor: int, obs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """tanh(MLP([(s − μ)/σ, z]))·3 from the checkpoint's weights in numpy."""
    checkpoint = torch.load(path, weights_only=True)
    state = {k: v.double().numpy() for k, v in checkpoint["agent"]["actors"][actor].items()}
    x = np.concatenate([(obs - checkpoint["obs_mean"].double().numpy())
                        / checkpoint["obs_std"].double().numpy(), z], axis=-1)
    h = np.maximum(x @ state["net.0.weight"].T + state["net.0.bias"], 0)
    h = np.maximum(h @ state["net.2.weight"].T + state["net.2.bias"], 0)
    return np.tanh(h @ state["net.4.weight"].T + state["net.4.bias"]) * 3.0


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_pogo_final_checkpoint_rolls_out_its_noise_input_actor(
        minari_root: Path, pogo_checkpoint: Path, deterministic: bool):
    dataset = f"test/ip/pogo-{'det' if deterministic else 'stoch'}-v0"
    make("--env-name", IP, "--policy", str(pogo_checkpoint), "--actor", "1", "--seed", "6",
         "--num-steps", "150", "--dataset-id", dataset, "--ref-min-score", "0",
         "--ref-max-score", "1000", *(["--deterministic"] if deterministic else []))
    episodes, _, record = episodes_of(dataset)
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    actions = np.concatenate([e.actions for e in episodes]).astype(np.float64)
    generator = torch.Generator().manual_seed(stream_seed(6, "dataset_noise"))
    z = (np.zeros((len(actions), 1)) if deterministic else
         np.stack([torch.randn(1, generator=generator, dtype=torch.float64).numpy()
                   for _ in range(len(actions))]))
    np.testing.assert_allclose(actions, numpy_pogo_actor(pogo_checkpoint, 1, obs, z),
                               rtol=0, atol=2e-6)
    assert record["algorithm"] == "POGO" and record["deterministic"] is deterministic
    assert ("z = 0" if deterministic else "z ~ N(0, I)") in record["actions"]
