"""train_pogo.py end to end on tiny datasets written here (D4RL hdf5 and Minari), as real
subprocesses and in-process runs on real MuJoCo environments."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT as REPO_ROOT_TEXT
from conftest import (kill_at_first_checkpoint, output_flags, random_pendulum_hdf5,
                      stop_before_the_summary, tensorboard_scalars)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train_pogo

REPO_ROOT = Path(REPO_ROOT_TEXT)
RUN = "POGO_invertedpendulum_random_s3_w1.0-0.5"
TINY = ["--env-name", "InvertedPendulum-v5", "--seed", "3", "--num-actors", "2",
        "--w2-weights", "1.0,0.5", "--num-samples", "3", "--num-steps", "300",
        "--eval-freq", "100", "--eval-episodes", "2", "--batch-size", "32",
        "--hidden-size", "32", "--log-freq", "100", "--checkpoint-freq", "100"]


@pytest.fixture(scope="module")
def hdf5_dataset(tmp_path_factory) -> Path:
    """2,000 uniform-random InvertedPendulum-v5 steps in D4RL's flat layout."""
    return random_pendulum_hdf5(tmp_path_factory.mktemp("data") / "invertedpendulum_random.hdf5",
                                2000)


def command(dataset: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train_pogo.py"), "--dataset", str(dataset),
            *TINY, *output_flags(root), *extra]


def rows_of(root: Path, run: str = RUN) -> list[dict[str, str]]:
    with open(root / "results" / run / "training" / f"{run}_metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"}
                for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def finished(hdf5_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("pogo_a")
    result = subprocess.run(command(hdf5_dataset, root), capture_output=True, text=True,
                            timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    return root, result


def test_end_to_end_outputs(finished):
    root, result = finished
    rows = rows_of(root)
    assert [int(row["step"]) for row in rows] == [100, 200, 300]
    for column in ("actor_0_deterministic", "actor_1_deterministic", "critic_loss", "q_data",
                   "actor_loss_0", "actor_loss_1", "w2_0", "w2_1", "actor_q_1", "spread_0",
                   "spread_1"):
        assert column in rows[-1], column
    assert "actor_0_stochastic" not in rows[-1]  # POGO evaluates deterministic episodes
    # D4RL has no reference scores for InvertedPendulum: raw returns only
    assert not any(key.endswith("_score") for key in rows[-1])
    assert "Actor 1 - Deterministic:" in result.stdout
    results = root / "results" / RUN
    for i in range(2):
        returns = np.load(results / f"{RUN}_actor_{i}.npy")
        assert returns.tolist() == [float(row[f"actor_{i}_deterministic"]) for row in rows]
    config = json.loads((results / "config.json").read_text())
    assert config["w2_weights"] == [1.0, 0.5] and config["distance"] == "exact"
    assert json.loads((results / "summary.json").read_text())["steps"] == 300
    checkpoints = root / "checkpoints" / "invertedpendulum_random"
    assert (checkpoints / f"{RUN}_final.pt").exists()
    assert not (checkpoints / f"{RUN}_latest.pt").exists()
    events = EventAccumulator(str(root / "runs" / RUN))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("train/critic_loss", "train/w2_1", "eval/actor_1_deterministic",
                "eval/spread_0", "eval/spread_1"):
        assert tag in tags, tag
    assert [e.step for e in events.Scalars("eval/actor_0_deterministic")] == [100, 200, 300]
    assert [e.value for e in events.Scalars("eval/spread_1")] == \
           pytest.approx([float(row["spread_1"]) for row in rows])


def test_spread_is_the_final_actors_spread_at_the_documented_states(finished, hdf5_dataset):
    """spread_i of the last row, recomputed from the final checkpoint's actors: the
    standard deviation over SPREAD_DRAWS noise draws at SPREAD_STATES dataset states drawn
    from the run's 'spread' stream, averaged over states and action dimensions."""
    from offline.data import load_dataset
    from training.evaluation import SPREAD_STATES
    from training.final_checkpoint import build_actors, read_final_checkpoint
    from utils import stream_seed

    root, _ = finished
    checkpoint = read_final_checkpoint(
        root / "checkpoints" / "invertedpendulum_random" / f"{RUN}_final.pt")
    data = load_dataset(str(hdf5_dataset), "InvertedPendulum-v5")
    rows = np.random.default_rng(stream_seed(3, "spread")).choice(
        len(data), SPREAD_STATES, replace=False)
    obs = torch.as_tensor(data.obs[np.sort(rows)], dtype=torch.float64)
    obs = (obs - checkpoint["obs_mean"].double()) / checkpoint["obs_std"].double()
    generator = torch.Generator().manual_seed(stream_seed(3, "spread"))
    last = rows_of(root)[-1]
    for i, actor in enumerate(build_actors(checkpoint, [0, 1])):
        noise = torch.randn(len(obs), train_pogo.SPREAD_DRAWS, 1, generator=generator,
                            dtype=torch.float64)
        with torch.no_grad():
            actions = actor.double()(obs.unsqueeze(1).expand(-1, noise.shape[1], -1), noise)
        expected = np.std(actions.numpy(), axis=1, ddof=1).mean()
        assert float(last[f"spread_{i}"]) == pytest.approx(expected, rel=1e-9), i
        assert expected > 0.0


def test_kill_9_and_resume_equals_the_uninterrupted_run(finished, hdf5_dataset, tmp_path):
    """Same seed → same numbers, across a SIGKILL and --resume."""
    checkpoint = tmp_path / "checkpoints" / "invertedpendulum_random" / f"{RUN}_latest.pt"
    kill_at_first_checkpoint(command(hdf5_dataset, tmp_path), tmp_path, checkpoint)
    result = subprocess.run(command(hdf5_dataset, tmp_path, "--resume"), capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0 and "Resuming" in result.stdout, result.stderr
    assert rows_of(tmp_path) == rows_of(finished[0])
    assert tensorboard_scalars(tmp_path / "runs" / RUN) == \
           tensorboard_scalars(finished[0] / "runs" / RUN)
    for i in range(2):
        name = f"{RUN}_actor_{i}.npy"
        assert (tmp_path / "results" / RUN / name).read_bytes() == \
               (finished[0] / "results" / RUN / name).read_bytes()


def test_minari_dataset_and_normalised_scores(tmp_path, monkeypatch):
    import make_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    make_dataset.main(["--env-name", "InvertedPendulum-v5", "--policy", "random",
                       "--num-steps", "1500", "--seed", "1", "--dataset-id",
                       "test/invertedpendulum/random-v0", "--ref-min-score", "5",
                       "--ref-max-score", "1000"])
    flags = [flag for flag in TINY if flag not in ("--env-name", "InvertedPendulum-v5")]
    train_pogo.main(["--dataset", "test/invertedpendulum/random-v0", *flags,
                     "--num-steps", "100", *output_flags(tmp_path)])
    run = "POGO_test-invertedpendulum-random-v0_s3_w1.0-0.5"
    row = rows_of(tmp_path, run)[-1]
    for i in range(2):
        raw = float(row[f"actor_{i}_deterministic"])
        assert float(row[f"actor_{i}_deterministic_score"]) == \
               pytest.approx(100 * (raw - 5) / (1000 - 5))
    assert "spread_behaviour" not in row  # a uniform random policy's is not recorded
    # a dataset whose record has the behaviour policy's spread: logged beside the actors'
    metadata_path = tmp_path / "minari" / "test/invertedpendulum/random-v0/data/metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["make_dataset"]["summary"]["behaviour_spread"] = 0.0917
    metadata_path.write_text(json.dumps(metadata))
    train_pogo.main(["--dataset", "test/invertedpendulum/random-v0", *flags,
                     "--num-steps", "100", "--run-name", "spread", *output_flags(tmp_path)])
    assert [float(row["spread_behaviour"]) for row in rows_of(tmp_path, "spread")] == [0.0917]
    scalars = tensorboard_scalars(tmp_path / "runs" / "spread")
    assert [value for _, value in scalars["eval/spread_behaviour"]] == pytest.approx([0.0917])


def test_td3_bc_is_a_configuration(hdf5_dataset, tmp_path):
    flags = ["--env-name", "InvertedPendulum-v5", "--num-steps", "50", "--eval-freq", "50",
             "--eval-episodes", "1", "--batch-size", "16", "--hidden-size", "16"]
    args, paths, task = train_pogo.parse_and_check(
        ["--dataset", str(hdf5_dataset), "--td3-bc", *flags, *output_flags(tmp_path)])
    config = train_pogo.agent_config(args, task.data.action_dim)
    assert paths.file_name == "TD3BC_invertedpendulum_random_s0_w1.0"
    assert (config.num_actors, config.deterministic_actors, config.q_normalize) == (1, True, 2.5)
    assert config.w2_weights == (1.0,)  # 1/dim(A) with one action dimension


def test_new_terms_and_seed_units_name_their_runs_and_reach_the_agent(hdf5_dataset, tmp_path):
    argv = ["--dataset", str(hdf5_dataset), *TINY, *output_flags(tmp_path)]
    args, paths, task = train_pogo.parse_and_check(argv)
    assert paths.file_name == RUN  # the defaults add nothing: earlier runs keep their names
    args, paths, task = train_pogo.parse_and_check(
        [*argv, "--distance", "unbiased", "--data-term", "energy", "--weight-units", "seed"])
    assert paths.file_name == f"{RUN}_unbiased_energy_seed-units"
    config = train_pogo.agent_config(args, task.data.action_dim)
    assert (config.distance, config.data_term) == ("unbiased", "energy")
    _, anchored, _ = train_pogo.parse_and_check([*argv, "--data-term", "anchored"])
    assert anchored.file_name == f"{RUN}_anchored"
    assert config.w2_weights == (1.0, 0.25)  # 1.0 per dimension of 1; 0.5 on ½‖x − y‖²
    args.w2_weights = [10.0, 10.0, 10.0]
    # HalfCheetah's 6 action dimensions: the seed's [10, 10, 10] is [10/6, 5, 5] summed
    assert train_pogo.summed_weights(args, 6) == pytest.approx((10 / 6, 5.0, 5.0))


@pytest.mark.parametrize("distance", ["exact", "unbiased"])
def test_eight_samples_with_an_enumerating_distance_warn_of_the_cost(hdf5_dataset, tmp_path,
                                                                     capsys, distance):
    argv = ["--dataset", str(hdf5_dataset), *TINY, *output_flags(tmp_path),
            "--distance", distance]
    train_pogo.parse_and_check([*argv, "--num-samples", "7"])
    train_pogo.parse_and_check([*argv, "--num-samples", "8", "--distance", "sinkhorn"])
    train_pogo.parse_and_check([*argv, "--num-samples", "8", "--num-actors", "1",
                                "--w2-weights", "1"])  # no chain, nothing enumerated
    assert "warning" not in capsys.readouterr().err
    train_pogo.parse_and_check([*argv, "--num-samples", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train_pogo.py: warning: num_samples 8 with "
                                               f"the {distance} distance enumerates 40,320")


def test_flag_choices_are_the_agents():
    # the script names them without importing torch; the agent and transport.py define them
    import pogo
    import transport
    assert train_pogo.DISTANCES == transport.METHODS
    assert train_pogo.DATA_TERMS == pogo.DATA_TERMS
    config = pogo.POGOConfig()
    assert (config.distance, config.data_term) == (train_pogo.DISTANCES[0],
                                                   train_pogo.DATA_TERMS[0])


@pytest.mark.parametrize("extra, message", [
    ([], "--dataset is required"),
    (["--dataset", "missing.hdf5", "--env-name", "Hopper-v5"], "missing.hdf5"),
    (["--dataset", "nobody/hopper/medium-v0"], "minari download"),
    (["--dataset", "DATA", "--env-name", "HalfCheetah-v5"], "HalfCheetah-v5"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--seed=-1"], "[0, 2**63)"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--num-samples", "9"],
     "num_samples"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--distance", "energy"],
     "--distance"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--num-actors", "3",
      "--w2-weights", "1,2"], "--w2-weights has 2 values"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--w2-weights", "-1"],
     "non-negative"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--td3-bc",
      "--num-actors", "2"], "--td3-bc"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--td3-bc",
      "--weight-units", "seed"], "drop --weight-units"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--data-term", "energy",
      "--num-samples", "1"], "num_samples ≥ 2"),
    (["--dataset", "DATA", "--env-name", "InvertedPendulum-v5", "--data-term", "energy",
      "--deterministic-actors"], "stochastic actors"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(hdf5_dataset, tmp_path, capsys,
                                                          monkeypatch, extra, message):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    argv = [str(hdf5_dataset) if word == "DATA" else word for word in extra]
    with pytest.raises(SystemExit) as exit_info:
        train_pogo.main([*argv, *output_flags(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train_pogo.py: error:") and message in err[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_help_imports_no_torch():
    code = "import sys; sys.argv = ['train_pogo.py', '--help']\n" \
           "import train_pogo\ntry:\n    train_pogo.main()\nexcept SystemExit:\n    pass\n" \
           "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT,
                   capture_output=True)
    assert torch.__version__  # the suite itself has torch


def test_a_run_stopped_after_its_last_checkpoint_resumes_to_the_uninterrupted_outputs(
        hdf5_dataset, tmp_path, monkeypatch):
    """--num-steps is a checkpoint step but not an evaluation step: the final evaluation
    comes before that checkpoint, so a run stopped after it (here as it writes summary.json)
    resumes to the uninterrupted run's metrics (the update's losses in the last row
    included) and TensorBoard scalars."""
    flags = ["--dataset", str(hdf5_dataset), *TINY, "--eval-freq", "200"]
    train_pogo.main(flags + output_flags(tmp_path / "whole"))
    stop_before_the_summary(train_pogo.main, flags + output_flags(tmp_path / "cut"), monkeypatch)
    train_pogo.main(flags + output_flags(tmp_path / "cut") + ["--resume"])
    rows = rows_of(tmp_path / "cut")
    assert [int(row["step"]) for row in rows] == [200, 300] and rows[-1]["critic_loss"]
    assert rows == rows_of(tmp_path / "whole")
    assert tensorboard_scalars(tmp_path / "cut" / "runs" / RUN) == \
           tensorboard_scalars(tmp_path / "whole" / "runs" / RUN)


def test_a_dataset_changed_since_the_checkpoint_is_named_not_called_unreadable(tmp_path):
    """The checkpoint loads, but its sampler drew from another dataset under this path: one
    line that says so, exit 2, and no fallback to the previous checkpoint (it would not fit
    either) or advice that only deleting helps."""
    dataset = random_pendulum_hdf5(tmp_path / "invertedpendulum_random.hdf5", 2000)
    checkpoint = tmp_path / "checkpoints" / "invertedpendulum_random" / f"{RUN}_latest.pt"
    kill_at_first_checkpoint(command(dataset, tmp_path), tmp_path, checkpoint)
    random_pendulum_hdf5(dataset, 3000)
    result = subprocess.run(command(dataset, tmp_path, "--resume"), capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "unreadable" not in result.stderr
    assert f"{checkpoint} does not fit this run" in errors[0]
    assert "2000" in errors[0] and "3000" in errors[0]


def test_reward_normalisation_without_complete_episodes_is_one_line_before_any_work(
        tmp_path, capsys):
    """CORL's reward scale needs complete episodes with different returns: data that never
    end an episode have none, which start-up says (exit 2), not a traceback at the build."""
    import h5py

    dataset = random_pendulum_hdf5(tmp_path / "endless.hdf5", 500)
    with h5py.File(dataset, "r+") as file:
        for key in ("terminals", "timeouts"):
            file[key][...] = False
    with pytest.raises(SystemExit) as stopped:
        train_pogo.main(["--dataset", str(dataset), *TINY, "--normalize-rewards",
                         *output_flags(tmp_path / "out")])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert stopped.value.code == 2 and len(errors) == 1
    assert "--normalize-rewards" in errors[0] and "found 0 episodes" in errors[0]
    assert not (tmp_path / "out").exists()
