"""Tests for offline/data.py and offline/readers.py: datasets written here (a Minari dataset
through minari's own writer, D4RL-format hdf5 files through h5py) are loaded back and
compared array by array with what was written; normalisation, scores and sampling are
checked against numpy computations made here; every bad input must give one DatasetError
line.

Observations encode (episode, step) as [episode, step, 100·episode + step], so a wrong
pairing of a state with a next state, or a step leaking across an episode boundary, shows
up as a row whose encoding is wrong."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from offline import data as offline_data
from offline import readers as offline_readers
from offline.data import (OfflineDataset, OfflineSampler, check_actions_in_box,
                          check_matches_env, load_dataset, open_dataset)
from offline.readers import D4RL_REF_SCORES, DatasetError
from replay_memory import Batch

OBS_DIM = 3  # Pendulum-v1's observation and action sizes
ACTION_DIM = 1


def observation(episode: int, step: int) -> np.ndarray:
    return np.array([episode, step, 100 * episode + step], dtype=np.float64)


def episode_arrays(episode: int, steps: int) -> dict[str, np.ndarray]:
    """One episode: T + 1 observations, T actions and rewards, all encoding (episode, step)."""
    return {"observations": np.stack([observation(episode, t) for t in range(steps + 1)]),
            "actions": np.array([[0.1 * episode + 0.01 * t] for t in range(steps)]),
            "rewards": np.array([10.0 * episode + t + 0.5 for t in range(steps)])}


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


# --------------------------------------------------------------------------- Minari

@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def write_minari(dataset_id: str, episodes: list[tuple[int, str]], damage=None,
                 **kwargs) -> list[dict]:
    """A Minari dataset of episodes given as (steps, "terminated" | "truncated"), written with
    minari.create_dataset_from_buffers (after `damage(arrays)` on each episode's arrays, if
    given); returns each episode's arrays and flags."""
    import minari
    from minari.data_collector import EpisodeBuffer

    written, buffers = [], []
    for e, (steps, end) in enumerate(episodes):
        arrays = episode_arrays(e, steps)
        if damage is not None:
            damage(arrays)
        arrays["terminations"] = np.arange(steps) == steps - 1 if end == "terminated" \
            else np.zeros(steps, dtype=bool)
        arrays["truncations"] = (np.arange(steps) == steps - 1) & (end == "truncated")
        written.append(arrays)
        buffers.append(EpisodeBuffer(
            observations=arrays["observations"], actions=arrays["actions"],
            rewards=list(arrays["rewards"]), terminations=list(arrays["terminations"]),
            truncations=list(arrays["truncations"])))
    options = {"env": "Pendulum-v1", "algorithm_name": "test", "author": "test",
               "author_email": "test", "code_permalink": "test", "description": "test"}
    options.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari's advice on missing optional metadata
        minari.create_dataset_from_buffers(dataset_id, buffers, **options)
    return written


def test_minari_dataset_loads_as_written(minari_root: Path):
    written = write_minari("test/pendulum/tiny-v0",
                           [(5, "terminated"), (4, "truncated"), (3, "truncated")],
                           ref_min_score=-1500.0, ref_max_score=-150.0)
    data = load_dataset("test/pendulum/tiny-v0", None)

    # s'_t = o_{t+1} inside each episode: no transition dropped, none crossing episodes
    observations = [w["observations"] for w in written]
    np.testing.assert_array_equal(data.obs, np.concatenate([o[:-1] for o in observations]))
    np.testing.assert_array_equal(data.next_obs, np.concatenate([o[1:] for o in observations]))
    np.testing.assert_array_equal(
        data.action, np.concatenate([w["actions"] for w in written]).astype(np.float32))
    np.testing.assert_allclose(data.reward, np.concatenate([w["rewards"] for w in written]))
    # only terminations are terminal; truncations just end an episode
    expected_terminal = np.zeros(12, dtype=bool)
    expected_terminal[4] = True
    np.testing.assert_array_equal(data.terminal, expected_terminal)
    np.testing.assert_allclose(data.episode_returns, [w["rewards"].sum() for w in written])
    assert data.obs.dtype == data.next_obs.dtype == np.float32
    assert (data.env_id, data.env_kwargs) == ("Pendulum-v1", {})
    assert (data.ref_min_score, data.ref_max_score) == (-1500.0, -150.0)
    assert data.normalized_score(-150.0) == pytest.approx(100.0)
    assert "test/pendulum/tiny-v0" in data.source


@pytest.mark.parametrize("cut", [True, False])
def test_minari_final_episode_cut_by_make_dataset_has_no_complete_return(minari_root: Path,
                                                                         cut: bool):
    """make_dataset.py stores its budget-cut last episode as truncated and records it: its
    transitions are kept, its return is no complete episode's (CORL's reward scale)."""
    import minari

    written = write_minari("test/pendulum/cut-v0",
                           [(5, "terminated"), (4, "truncated"), (3, "truncated")])
    minari.load_dataset("test/pendulum/cut-v0").storage.update_metadata(
        {"make_dataset": {"summary": {"final_episode_cut": cut}}})
    data = load_dataset("test/pendulum/cut-v0", None)
    assert len(data) == 12
    returns = [w["rewards"].sum() for w in written]
    assert returns == [12.5, 48.0, 64.5]
    np.testing.assert_allclose(data.episode_returns, returns[:2] if cut else returns)
    assert data.reward_scale() == pytest.approx(1000.0 / (48.0 - 12.5 if cut else 64.5 - 12.5))


def test_minari_evaluation_env_from_eval_env_spec(minari_root: Path):
    import gymnasium as gym

    write_minari("test/pendulum/eval-v0", [(3, "truncated"), (2, "truncated")],
                 eval_env=gym.make("Pendulum-v1", g=5.0).spec)
    data = load_dataset("test/pendulum/eval-v0", "Pendulum-v1")  # the same id is accepted
    assert (data.env_id, data.env_kwargs) == ("Pendulum-v1", {"g": 5.0})
    assert data.normalized_score(1.0) is None  # no reference scores recorded
    with pytest.raises(DatasetError) as error:
        load_dataset("test/pendulum/eval-v0", "Hopper-v5")
    assert "Pendulum-v1" in one_line(error) and "Hopper-v5" in str(error.value)


def test_minari_without_env_spec_needs_env_name(minari_root: Path):
    import gymnasium as gym

    spaces = {"observation_space": gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,)),
              "action_space": gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,))}
    write_minari("test/noenv-v0", [(3, "terminated")], env=None, **spaces)
    with pytest.raises(DatasetError) as error:
        load_dataset("test/noenv-v0", None)
    assert "--env-name" in one_line(error)
    assert load_dataset("test/noenv-v0", "Pendulum-v1").env_id == "Pendulum-v1"


def drop_final_observation(arrays: dict[str, np.ndarray]) -> None:
    arrays["observations"] = arrays["observations"][:-1]


def nan_reward(arrays: dict[str, np.ndarray]) -> None:
    arrays["rewards"][1] = np.nan


@pytest.mark.parametrize("damage, words", [(drop_final_observation, "lengths"),
                                           (nan_reward, "non-finite")])
def test_malformed_minari_dataset(minari_root: Path, damage, words: str):
    write_minari("test/broken-v0", [(3, "terminated"), (2, "truncated")], damage=damage)
    with pytest.raises(DatasetError) as error:
        load_dataset("test/broken-v0", None)
    assert words in one_line(error) and "test/broken-v0" in str(error.value)


def test_missing_minari_dataset_names_folder_and_download_command(
        minari_root: Path, monkeypatch: pytest.MonkeyPatch):
    import minari.storage.hosting

    def no_download(*args, **kwargs):
        raise AssertionError("load_dataset must never download")

    monkeypatch.setattr(minari.storage.hosting, "download_dataset", no_download)
    with pytest.raises(DatasetError) as error:
        load_dataset("mujoco/halfcheetah/medium-v0", None)
    message = one_line(error)
    assert str(minari_root) in message
    assert "minari download mujoco/halfcheetah/medium-v0" in message
    assert not minari_root.exists()  # looking does not create the folder

    # without MINARI_DATASETS_PATH: Minari's default folder under the home directory
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    monkeypatch.setenv("HOME", str(minari_root.parent / "home"))
    with pytest.raises(DatasetError) as error:
        load_dataset("mujoco/hopper/expert-v0", None)
    assert str(minari_root.parent / "home" / ".minari" / "datasets") in one_line(error)


def test_an_unreadable_minari_dataset_names_its_folder_and_how_to_make_it_again(
        minari_root: Path):
    """make_dataset.py's datasets are local: the fix is its recorded command, not a download
    (none exists); for another dataset, either."""
    import minari

    made = "python make_dataset.py --env-name Pendulum-v1 --dataset-id test/pendulum/made-v0"
    for dataset_id in ("test/pendulum/made-v0", "test/pendulum/other-v0"):
        write_minari(dataset_id, [(3, "terminated")])
        if dataset_id.endswith("made-v0"):
            minari.load_dataset(dataset_id).storage.update_metadata(
                {"make_dataset": {"command": made}})
        data_file = minari_root / dataset_id / "data" / "main_data.hdf5"
        data_file.write_bytes(data_file.read_bytes()[:1000])  # truncated
    with pytest.raises(DatasetError) as error:
        load_dataset("test/pendulum/made-v0", None)
    assert one_line(error).endswith(f"; delete {minari_root / 'test/pendulum/made-v0'} and "
                                    f"make it again with: {made}")
    with pytest.raises(DatasetError) as error:
        load_dataset("test/pendulum/other-v0", None)
    assert one_line(error).endswith(
        f"; delete {minari_root / 'test/pendulum/other-v0'} and download it again (minari "
        f"download test/pendulum/other-v0) or, if make_dataset.py made it, make it again")


@pytest.mark.parametrize("spec", ["halfcheetah", "mujoco/halfcheetah/medium", "a b-v0"])
def test_neither_file_nor_minari_id(minari_root: Path, spec: str):
    with pytest.raises(DatasetError) as error:
        load_dataset(spec, None)
    assert "Minari dataset id" in one_line(error)


def test_existing_file_of_another_type(tmp_path: Path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a dataset")
    with pytest.raises(DatasetError) as error:
        load_dataset(str(path), "Hopper-v5")
    assert ".hdf5" in one_line(error)


# --------------------------------------------------------------------------- D4RL hdf5

# Three episodes in one flat file: 4 steps ending in a terminal, 3 ending in a timeout, and
# 3 that the file cuts off (neither flag on its last step).
EPISODES = [(4, "terminal"), (3, "timeout"), (3, None)]


def d4rl_arrays(with_next: bool = True, with_timeouts: bool = True) -> dict[str, np.ndarray]:
    parts = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                             "next_observations")}
    for e, (steps, end) in enumerate(EPISODES):
        arrays = episode_arrays(e, steps)
        last = np.arange(steps) == steps - 1
        parts["observations"].append(arrays["observations"][:-1])
        parts["next_observations"].append(arrays["observations"][1:])
        parts["actions"].append(arrays["actions"])
        parts["rewards"].append(arrays["rewards"])
        parts["terminals"].append(last & (end == "terminal"))
        parts["timeouts"].append(last & (end == "timeout"))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays["observations"] = arrays["observations"].astype(np.float32)  # as D4RL stores them
    if not with_next:
        del arrays["next_observations"]
    if not with_timeouts:
        del arrays["timeouts"]
    return arrays


def write_hdf5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
        file.create_group("infos")  # D4RL files carry extra groups: ignored
    return path


def test_d4rl_with_next_observations_keeps_every_transition(tmp_path: Path):
    arrays = d4rl_arrays(with_next=True)
    data = load_dataset(str(write_hdf5(tmp_path / "hopper_medium-v2.hdf5", arrays)), "Hopper-v5")
    np.testing.assert_array_equal(data.obs, arrays["observations"])
    np.testing.assert_array_equal(data.next_obs, arrays["next_observations"])
    np.testing.assert_array_equal(data.action, arrays["actions"].astype(np.float32))
    np.testing.assert_allclose(data.reward, arrays["rewards"])
    np.testing.assert_array_equal(data.terminal, arrays["terminals"])  # a timeout is not terminal
    assert data.terminal.sum() == 1 and not data.terminal[6]  # step 6 is the timeout
    # complete episodes: the terminal one and the timed-out one, not the cut-off one
    np.testing.assert_allclose(data.episode_returns, [0.5 + 1.5 + 2.5 + 3.5, 10.5 + 11.5 + 12.5])
    assert data.env_id == "Hopper-v5"
    assert (data.ref_min_score, data.ref_max_score) == D4RL_REF_SCORES["hopper"]


def test_d4rl_derived_next_observations_stay_in_their_episode(tmp_path: Path):
    arrays = d4rl_arrays(with_next=False)
    data = load_dataset(str(write_hdf5(tmp_path / "walker2d_medium-v2.hdf5", arrays)),
                        "Walker2d-v5")
    # Expected, built step by step: s' = the episode's next state; the timed-out step and the
    # file's last step have none and are dropped; the terminal step stays with s' = s.
    rows = []
    for e, (steps, end) in enumerate(EPISODES):
        for t in range(steps):
            last = t == steps - 1
            if last and end != "terminal":
                continue
            terminal = last and end == "terminal"
            rows.append((observation(e, t), observation(e, t if terminal else t + 1),
                         10.0 * e + t + 0.5, terminal))
    np.testing.assert_array_equal(data.obs, np.stack([r[0] for r in rows]))
    np.testing.assert_array_equal(data.next_obs, np.stack([r[1] for r in rows]))
    np.testing.assert_allclose(data.reward, [r[2] for r in rows])
    np.testing.assert_array_equal(data.terminal, [r[3] for r in rows])
    # no next state crosses an episode boundary: same episode, step + 1 (or the same state)
    assert (data.next_obs[:, 0] == data.obs[:, 0]).all()
    assert ((data.next_obs[:, 1] - data.obs[:, 1]) == np.where(data.terminal, 0, 1)).all()
    # episode returns still count the dropped timed-out step's reward
    np.testing.assert_allclose(data.episode_returns, [8.0, 34.5])
    assert (data.ref_min_score, data.ref_max_score) == D4RL_REF_SCORES["walker2d"]


def test_d4rl_without_timeouts_and_column_rewards(tmp_path: Path):
    arrays = d4rl_arrays(with_next=False, with_timeouts=False)
    arrays["rewards"] = arrays["rewards"][:, None]  # (N, 1) is accepted
    data = load_dataset(str(write_hdf5(tmp_path / "custom.h5", arrays)), "Hopper-v5")
    # episodes end only at the terminal: only the file's last step lacks a next state
    assert len(data) == len(arrays["terminals"]) - 1
    np.testing.assert_array_equal(data.next_obs[4:], arrays["observations"][5:])
    np.testing.assert_allclose(data.episode_returns, [8.0])
    assert data.ref_min_score is None and data.normalized_score(100.0) is None


def inverted_pendulum_sized() -> dict[str, np.ndarray]:
    """d4rl_arrays with InvertedPendulum-v5's 4-dim observations (a zero column added) and
    1-dim actions (up to 0.22, in its box [-3, 3])."""
    arrays = d4rl_arrays()
    for key in ("observations", "next_observations"):
        arrays[key] = np.pad(arrays[key], ((0, 0), (0, 1)))
    return arrays


def test_d4rl_on_new_environment_warns_once_in_one_line_when_training_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    """The caveat waits for the sampler, built once every start-up check has passed: no
    warning before a refusal's one error line (the dataset's or a later check's)."""
    monkeypatch.setattr(offline_data, "_shown_caveats", set())
    path = str(write_hdf5(tmp_path / "hopper_medium-v2.hdf5", inverted_pendulum_sized()))
    with pytest.raises(DatasetError):
        open_dataset(path, "Hopper-v5")  # refused: its one line comes alone
    data = open_dataset(path, "InvertedPendulum-v5")[0]
    assert capsys.readouterr().err == ""
    OfflineSampler(data, seed=0)
    OfflineSampler(data, seed=1)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].endswith(
        ": warning: hopper_medium-v2.hdf5: D4RL -v2 data (collected with mujoco-py) are "
        "evaluated on InvertedPendulum-v5, whose simulation differs slightly; scores are "
        "comparable to published D4RL numbers only approximately"), err
    assert load_dataset(path, "InvertedPendulum-v4").caveat is not None
    assert load_dataset(path, "Pendulum-v1").caveat is None  # not a MuJoCo-binding version


def test_d4rl_needs_env_name(tmp_path: Path):
    path = str(write_hdf5(tmp_path / "hopper_medium-v2.hdf5", d4rl_arrays()))
    with pytest.raises(DatasetError) as error:
        load_dataset(path, None)
    assert "--env-name" in one_line(error)


def corrupt(arrays: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    if how == "missing terminals":
        del arrays["terminals"]
    elif how == "short actions":
        arrays["actions"] = arrays["actions"][:-1]
    elif how == "nan observation":
        arrays["observations"][3, 1] = np.nan
    elif how == "inf reward":
        arrays["rewards"][0] = np.inf
    elif how == "inf next observation":
        arrays["next_observations"][2, 0] = -np.inf
    elif how == "nan action":
        arrays["actions"][5, 0] = np.nan
    elif how == "terminal flag 2":
        arrays["terminals"] = arrays["terminals"].astype(np.int64) * 2
    elif how == "vector observations":
        arrays["observations"] = arrays["observations"][:, 0]
    return arrays


@pytest.mark.parametrize("how, words", [
    ("missing terminals", "terminals"), ("short actions", "lengths"),
    ("nan observation", "non-finite"), ("inf reward", "non-finite"),
    ("inf next observation", "non-finite"), ("nan action", "non-finite"),
    ("terminal flag 2", "0 and 1"), ("vector observations", "shape")])
def test_malformed_d4rl_file(tmp_path: Path, how: str, words: str):
    path = write_hdf5(tmp_path / "hopper_medium-v2.hdf5", corrupt(d4rl_arrays(), how))
    with pytest.raises(DatasetError) as error:
        load_dataset(str(path), "Hopper-v5")
    assert words in one_line(error) and "hopper_medium-v2.hdf5" in str(error.value)


def test_missing_or_unreadable_hdf5(tmp_path: Path):
    with pytest.raises(DatasetError) as error:
        load_dataset(str(tmp_path / "nowhere" / "hopper.hdf5"), "Hopper-v5")
    assert "does not exist" in one_line(error)
    text = tmp_path / "text.hdf5"
    text.write_text("observations,actions\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(str(text), "Hopper-v5")
    assert "not a readable HDF5 file" in one_line(error)


def test_dimension_mismatch_with_environment(tmp_path: Path):
    data = load_dataset(str(write_hdf5(tmp_path / "hopper.hdf5", d4rl_arrays())), "Hopper-v5")
    check_matches_env(data, OBS_DIM, ACTION_DIM)  # matching shapes pass
    with pytest.raises(DatasetError) as error:
        check_matches_env(data, 11, 3)
    message = one_line(error)
    assert "3-dim observations" in message and "1-dim actions" in message
    assert "Hopper-v5 has 11 and 3" in message


def test_actions_outside_the_action_box_are_refused_beyond_round_off(tmp_path: Path):
    low, high = np.array([-1.0, -0.5]), np.array([1.0, 0.5])
    inside = np.array([[-1.0, 0.5], [1.0 + 0.9e-5, -0.5 - 0.4e-5]])  # round-off: accepted
    check_actions_in_box(make_dataset(2, action=inside), low, high)
    for action, farthest in (([1.0 + 2e-5, 0.0], "1.00002 in dimension 0, lies 2e-05 beyond "
                                                 "its bounds [-1, 1];"),
                             ([0.0, -0.75], "-0.75 in dimension 1, lies 0.25 beyond its "
                                            "bounds [-0.5, 0.5];")):
        with pytest.raises(DatasetError) as error:
            check_actions_in_box(make_dataset(2, action=np.array([[0.0, 0.0], action])),
                                 low, high)
        assert f"Pendulum-v1's action box: the farthest, {farthest}" in one_line(error)
    # the training scripts' path: open_dataset refuses the file, naming it and the box
    arrays = inverted_pendulum_sized()
    arrays["actions"] = arrays["actions"] * 20  # up to 4.4
    path = write_hdf5(tmp_path / "big_actions.hdf5", arrays)
    with pytest.raises(DatasetError) as error:
        open_dataset(str(path), "InvertedPendulum-v5")
    assert one_line(error).startswith(
        "D4RL file big_actions.hdf5 has actions outside InvertedPendulum-v5's action box: the "
        "farthest, 4.4 in dimension 0, lies 1.4 beyond its bounds [-3, 3] (every dimension's); ")


# --------------------------------------------------------------------------- statistics

def make_dataset(n: int = 7, terminal_every: int = 3, seed: int = 0, **kwargs) -> OfflineDataset:
    """n transitions whose action[:, 0] is the row index (so a sampled row names itself)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(3.0, [0.5, 2.0, 0.0], size=(n, OBS_DIM))  # a constant 3rd feature
    fields = {"obs": obs, "action": np.arange(n, dtype=np.float64)[:, None],
              "reward": rng.normal(size=n), "next_obs": obs + 1.0,
              "terminal": np.arange(n) % terminal_every == terminal_every - 1,
              "episode_returns": np.array([5.0, -3.0, 12.0]), "env_id": "Pendulum-v1"}
    fields.update(kwargs)
    return OfflineDataset(**fields)


def test_state_mean_std():
    data = make_dataset(50)
    mean, std = data.state_mean_std()
    obs = data.obs.astype(np.float64)
    np.testing.assert_allclose(mean, obs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(((obs - obs.mean(0)) ** 2).mean(0)) + 1e-3,
                               rtol=1e-6)
    assert std[2] == pytest.approx(1e-3)  # a constant feature still divides safely


def test_reward_scale_is_corl_rule(tmp_path: Path):
    # episodes of returns 8.0 and 34.5 (see test_d4rl_derived_next_observations_…)
    data = load_dataset(str(write_hdf5(tmp_path / "h.hdf5", d4rl_arrays(False))), "Hopper-v5")
    assert data.reward_scale() == pytest.approx(1000.0 / (34.5 - 8.0))
    one_episode = make_dataset(episode_returns=np.array([4.0]))
    with pytest.raises(DatasetError) as error:
        one_episode.reward_scale()
    assert "reward normalisation" in one_line(error)


def test_normalized_score_formula():
    data = make_dataset(ref_min_score=-20.0, ref_max_score=180.0)
    assert data.normalized_score(80.0) == pytest.approx(50.0)
    np.testing.assert_allclose(data.normalized_score(np.array([-20.0, 180.0, 380.0])),
                               [0.0, 100.0, 200.0])
    low, high = D4RL_REF_SCORES["halfcheetah"]
    assert (low, high) == (-280.178953, 12135.0)
    assert make_dataset().normalized_score(80.0) is None


def test_malformed_arrays_in_memory():
    with pytest.raises(DatasetError) as error:
        make_dataset(next_obs=np.zeros((7, OBS_DIM + 1)))
    assert "dimension" in one_line(error)
    with pytest.raises(DatasetError) as error:
        make_dataset(terminal=np.zeros(6, dtype=bool))
    assert "lengths" in one_line(error)


# --------------------------------------------------------------------------- sampling

def test_sampled_rows_are_real_normalised_transitions():
    data = make_dataset()
    sampler = OfflineSampler(data, seed=1, normalize_rewards=True)
    mean = data.obs.astype(np.float64).mean(0)
    std = data.obs.astype(np.float64).std(0) + 1e-3
    np.testing.assert_allclose(sampler.obs_mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(sampler.obs_std.numpy(), std, rtol=1e-6)
    scale = 1000.0 / (12.0 - -3.0)
    batch = sampler.sample(64)
    assert isinstance(batch, Batch)
    assert [tuple(x.shape) for x in batch] == [(64, OBS_DIM), (64, ACTION_DIM), (64,),
                                              (64, OBS_DIM), (64,)]
    index = batch.action[:, 0].numpy().astype(int)  # the row each sample came from
    np.testing.assert_allclose(batch.obs.numpy(), (data.obs[index] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(batch.next_obs.numpy(), (data.next_obs[index] - mean) / std,
                               atol=1e-5)
    np.testing.assert_allclose(batch.reward.numpy(), data.reward[index] * scale, rtol=1e-5)
    np.testing.assert_array_equal(batch.mask.numpy(), np.where(data.terminal[index], 0.0, 1.0))
    # evaluation observations go through the same map
    raw = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sampler.normalize_obs(raw).numpy(), (raw - mean) / std, atol=1e-5)


def test_sampling_without_normalisation_returns_raw_data():
    data = make_dataset()
    sampler = OfflineSampler(data, seed=1, normalize_states=False)
    batch = sampler.sample(32)
    index = batch.action[:, 0].numpy().astype(int)
    np.testing.assert_array_equal(batch.obs.numpy(), data.obs[index])
    np.testing.assert_array_equal(batch.reward.numpy(), data.reward[index])
    raw = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(sampler.normalize_obs(raw).numpy(), raw)


def test_sampling_is_seeded():
    data = make_dataset()
    first, second, other = (OfflineSampler(data, seed) for seed in (5, 5, 6))
    for _ in range(3):
        a, b = first.sample(16), second.sample(16)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(first.sample(16).action, other.sample(16).action)
    torch.manual_seed(0)  # the global generator plays no part
    x = OfflineSampler(data, 7).sample(16).action
    torch.manual_seed(1)
    assert torch.equal(x, OfflineSampler(data, 7).sample(16).action)


def test_sampling_is_uniform():
    n, draws = 5, 50_000
    sampler = OfflineSampler(make_dataset(n), seed=3)
    index = torch.cat([sampler.sample(5_000).action[:, 0] for _ in range(draws // 5_000)])
    counts = np.bincount(index.numpy().astype(int), minlength=n)
    expected = draws / n
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 18.47  # χ²(4 d.o.f.) at p = 0.001


def test_generator_state_round_trip(tmp_path: Path):
    data = make_dataset()
    sampler = OfflineSampler(data, seed=11)
    for _ in range(3):
        sampler.sample(8)
    torch.save(sampler.state_dict(), tmp_path / "sampler.pt")
    expected = [sampler.sample(8) for _ in range(3)]
    resumed = OfflineSampler(data, seed=999)
    resumed.load_state_dict(torch.load(tmp_path / "sampler.pt", weights_only=True))
    for want in expected:
        for x, y in zip(resumed.sample(8), want):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="same dataset"):
        OfflineSampler(make_dataset(8), seed=0).load_state_dict(sampler.state_dict())


def test_sample_size_must_be_positive():
    with pytest.raises(ValueError):
        OfflineSampler(make_dataset(), seed=0).sample(0)


def test_d4rl_reference_scores_follow_the_environment_family():
    """A POSAC run's final checkpoint carries D4RL's references for the locomotion tasks."""
    references = offline_readers.d4rl_reference_scores
    # REF_MIN_SCORE / REF_MAX_SCORE of D4RL's d4rl/infos.py, typed here from it
    assert references("HalfCheetah-v5") == [-280.178953, 12135.0]
    assert references("Hopper-v5") == [-20.272305, 3234.3]
    assert references("Walker2d-v4") == [1.629008, 4592.3]
    assert references("Pendulum-v1") is None


def test_ant_has_d4rls_reference_returns_and_tasks_match_as_whole_words():
    """D4RL's ant: random −325.6, expert 3879.7 (d4rl/infos.py); "ant" is matched as a word,
    so AntMaze (whose references differ) and names that merely contain it get none."""
    references = offline_readers.d4rl_reference_scores
    assert references("Ant-v5") == [-325.6, 3879.7]
    assert references("ant_medium-v2.hdf5") == [-325.6, 3879.7]
    assert references("mujoco/ant/medium-v0") == [-325.6, 3879.7]
    for name in ("antmaze-umaze-v2", "AntMaze_UMaze-v5", "plant-v0", "giant-v1"):
        assert references(name) is None, name
