"""train_sac.py from data to the environment, end to end on a tiny dataset written here:
POSAC offline (--dataset), then online from its final checkpoint (--init-from), with the
dataset in every minibatch (--offline-data), on real MuJoCo: the runs as real subprocesses,
the bad-input cases in process."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT as REPO_ROOT_TEXT
from conftest import (kill_at_first_checkpoint, output_flags, random_pendulum_hdf5,
                      tensorboard_scalars)

import train_sac
from training.final_checkpoint import read_final_checkpoint, resolve_run

REPO_ROOT = Path(REPO_ROOT_TEXT)
OFFLINE_RUN = "POSAC_invertedpendulum_random_s3_w0.0-0.5_data1"
ONLINE_RUN = ("POSAC_InvertedPendulum-v5_s3_w0.0-0.5_from-invertedpendulum_random_s3_w0.0-0.5"
              "_data1_mix0.5-invertedpendulum_random")
CHAIN = ["--env-name", "InvertedPendulum-v5", "--seed", "3", "--num-actors", "2",
         "--w2-weights", "0.0,0.5", "--batch-size", "32", "--hidden-size", "32",
         "--eval-episodes", "2", "--log-freq", "100", "--checkpoint-freq", "100"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return random_pendulum_hdf5(tmp_path_factory.mktemp("data") / "invertedpendulum_random.hdf5",
                                2000)


def offline_command(dataset: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train_sac.py"), *CHAIN, "--dataset", str(dataset),
            "--data-weight", "1", "--alpha", "0.05", "--num-steps", "300",
            "--eval-freq", "100", *output_flags(root), *extra]


def online_flags(init_root: Path, dataset: Path) -> list[str]:
    return [*CHAIN, "--init-from", str(init_root / "results" / OFFLINE_RUN),
            "--offline-data", str(dataset), "--num-steps", "300", "--eval-freq", "5",
            "--automatic-entropy-tuning"]


def online_command(init_root: Path, dataset: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train_sac.py"), *online_flags(init_root, dataset),
            *output_flags(root), *extra]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def rows_of(root: Path, name: str) -> list[dict[str, str]]:
    with open(root / "results" / name / "training" / f"{name}_metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"}
                for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def offline(dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("offline")
    result = run(offline_command(dataset, root), root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def online(offline, dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("online")
    result = run(online_command(offline, dataset, root), root)
    assert result.returncode == 0, result.stderr
    return root


def test_the_offline_run_is_posac_on_raw_data_with_its_data_term_logged(offline, dataset,
                                                                        tmp_path):
    rows = rows_of(offline, OFFLINE_RUN)
    assert [int(row["step"]) for row in rows] == [100, 200, 300]
    # E[−log π0(a_D|s)] (its value against the equations: tests/test_sac.py): logged, and a
    # log score of a tanh-Gaussian on a 1-D action in [−3, 3], neither 0 nor runaway
    assert all(0.0 < abs(float(row["w2_0"])) < 50.0 for row in rows)
    checkpoint = torch.load(offline / "checkpoints" / "invertedpendulum_random"
                            / f"{OFFLINE_RUN}_final.pt", weights_only=True)
    assert checkpoint["algorithm"] == "POSAC" and checkpoint["obs_mean"] is None
    assert checkpoint["agent_config"]["data_weight"] == 1.0
    assert checkpoint["env_id"] == "InvertedPendulum-v5"
    # the minibatches are the file's transitions as stored: raw observations and rewards
    import h5py
    import numpy as np

    args, paths, task = train_sac.parse_and_check(offline_command(dataset, tmp_path)[2:])
    batch = train_sac.OfflineSACTrainer(args, paths, task).sampler.sample(64)
    with h5py.File(dataset, "r") as handle:
        stored = np.concatenate([handle["observations"][:],
                                 handle["rewards"][:].reshape(-1, 1)], axis=1).astype(np.float32)
    sampled = np.concatenate([batch.obs.numpy(), batch.reward.reshape(-1, 1).numpy()], axis=1)
    # every sampled (s, r) is a stored row, to float32 precision
    gaps = np.abs(sampled[:, None, :] - stored[None, :, :]).max(axis=2).min(axis=1)
    assert gaps.max() < 1e-6


def test_the_online_run_starts_where_the_offline_run_ended(offline, online):
    """Its evaluation at step 0 (before any environment step) scores every actor, in both
    modes, exactly as the offline run's final evaluation: nothing is lost at the switch."""
    final = rows_of(offline, OFFLINE_RUN)[-1]
    first = rows_of(online, ONLINE_RUN)[0]
    assert first["step"] == "0"
    scores = [key for key in final if key.startswith("actor_") and "_std" not in key
              and key.endswith(("deterministic", "stochastic"))]
    assert len(scores) == 4
    assert {key: first[key] for key in scores} == {key: final[key] for key in scores}
    summary = json.loads((online / "results" / ONLINE_RUN / "summary.json").read_text())
    assert summary["init_from"]["steps"] == 300
    assert summary["init_from"]["final_checkpoint"].endswith(f"{OFFLINE_RUN}_final.pt")


def test_a_finished_online_run_is_left_alone_after_its_offline_run_moved(offline, online,
                                                                        dataset, capsys):
    """Its name comes from --init-from's name alone, and a finished run reads nothing else:
    the same command after the offline run was moved away reports it finished."""
    run, moved = offline / "results" / OFFLINE_RUN, offline / "moved"
    run.rename(moved)
    try:
        train_sac.main([*online_flags(offline, dataset), *output_flags(online), "--resume"])
    finally:
        moved.rename(run)
    assert f"{ONLINE_RUN} already finished" in capsys.readouterr().out


def build_online(offline: Path, dataset: Path, root: Path) -> train_sac.SACTrainer:
    args, paths, task = train_sac.parse_and_check([*online_flags(offline, dataset),
                                                   *output_flags(root)])
    return train_sac.SACTrainer(args, paths, task)


def test_init_from_loads_every_network_and_alpha_and_collects_from_step_0(offline, dataset,
                                                                         tmp_path):
    trainer = build_online(offline, dataset, tmp_path)
    trained = torch.load(offline / "checkpoints" / "invertedpendulum_random"
                         / f"{OFFLINE_RUN}_final.pt", weights_only=True)["agent"]
    agent = trainer.agent
    for module, state in [*zip(agent.actors, trained["actors"]), (agent.critic, trained["critic"]),
                          (agent.critic_target, trained["critic_target"])]:
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    # the optimisers' moments and step counts from the offline run, under this run's lr, but
    # actor 0's: its loss is another online (no data term, λ_0 = 1), so its Adam starts anew
    assert agent.actor_optimizers[0].state_dict()["state"] == {}
    optimizers = [(agent.critic_optimizer, trained["critic_optimizer"]),
                  *zip(agent.actor_optimizers[1:], trained["actor_optimizers"][1:])]
    for optimizer, saved in optimizers:
        for index, tensors in saved["state"].items():
            loaded = optimizer.state_dict()["state"][index]
            for key in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(loaded[key], tensors[key], rtol=0, atol=0)
    lr_trainer = train_sac.SACTrainer(*train_sac.parse_and_check(
        [*online_flags(offline, dataset), "--lr", "0.001", *output_flags(tmp_path / "lr")]))
    assert {group["lr"] for optimizer in (lr_trainer.agent.critic_optimizer,
                                          *lr_trainer.agent.actor_optimizers)
            for group in optimizer.param_groups} == {0.001}  # the offline run's was 3e-4
    # α from the offline run (fixed there at 0.05), tuned from there on, and recorded so
    assert agent.log_alpha.item() == trained["log_alpha"].item() == pytest.approx(math.log(0.05))
    assert agent.log_alpha.requires_grad
    assert trainer.args.alpha is None and agent.config.alpha == pytest.approx(0.05)
    alpha_trainer = train_sac.SACTrainer(*train_sac.parse_and_check(
        [*online_flags(offline, dataset), "--alpha", "0.3", *output_flags(tmp_path / "a")]))
    assert alpha_trainer.agent.log_alpha.item() == pytest.approx(math.log(0.3))  # given: restart
    assert trainer.args.start_steps == 0  # the pretrained behaviour actor collects at once
    assert agent.config.data_weight == 0.0  # online, actor 0 is plain SAC again


def test_another_seed_or_episode_count_than_the_offline_runs_is_a_warning(offline, dataset,
                                                                           tmp_path, capsys):
    """Starting from the offline run with its seed and evaluation episodes says nothing;
    with others, one warning line (once the checks have passed: a bad input stays one
    line) says the step-0 evaluation will not repeat its last."""
    def warnings() -> list[str]:  # (the dataset's own caveat about D4RL files aside)
        return [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("train_sac.py: warning")]

    build_online(offline, dataset, tmp_path / "a")
    assert warnings() == []
    train_sac.SACTrainer(*train_sac.parse_and_check(
        [*online_flags(offline, dataset), "--seed", "4", "--eval-episodes", "3",
         *output_flags(tmp_path / "b")]))
    err = warnings()
    assert len(err) == 1 and err[0].endswith(
        f"{OFFLINE_RUN} was evaluated with --seed 3, --eval-episodes 2; this run's evaluation "
        f"at step 0 will not repeat its last one, and reports.finetune takes continued runs "
        f"only with their offline run's seed"), err


def test_actor_0s_first_online_step_is_a_fresh_adams(offline, dataset, tmp_path):
    """A fresh Adam's first step moves every parameter by lr·g/(|g| + ε), i.e. by lr
    wherever its gradient is not tiny; the offline run's moments (of actor 0's offline loss,
    λ_0-scaled with its data term) would move them by other amounts."""
    import numpy as np

    trainer = build_online(offline, dataset, tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(64):
        obs = rng.normal(size=4).astype(np.float32)
        trainer.memory.push(obs, rng.uniform(-3, 3, 1).astype(np.float32), 1.0, obs, False,
                            False)
    actor = trainer.agent.actors[0]
    before = [p.detach().clone() for p in actor.parameters()]
    trainer.agent.update(trainer.sample())
    lr = trainer.args.lr
    steps = torch.cat([(p.detach() - b).abs().flatten()
                       for p, b in zip(actor.parameters(), before)])
    moved = steps[steps > 0]
    assert len(moved) > 0.5 * len(steps)
    assert moved.max() <= lr * (1 + 1e-4)
    assert torch.quantile(moved, 0.1) >= 0.9 * lr


def test_offline_data_fills_its_share_of_every_minibatch(offline, dataset, tmp_path):
    """RLPD's symmetric sampling: the first half of each minibatch from the dataset, the
    second from the replay memory."""
    import h5py
    import numpy as np

    trainer = build_online(offline, dataset, tmp_path)
    for k in range(100):  # transitions no dataset holds
        obs = np.full(4, 100.0 + k, np.float32)
        trainer.memory.push(obs, np.zeros(1, np.float32), 0.0, obs, False, False)
    batch = trainer.sample()
    with h5py.File(dataset) as handle:
        data_obs = torch.as_tensor(np.asarray(handle["observations"]), dtype=torch.float32)
    in_data = (batch.obs[:, None, :] == data_obs[None]).all(-1).any(-1)
    assert in_data[:16].all() and not in_data[16:].any()
    assert (batch.obs[16:] >= 100.0).all()


@pytest.mark.parametrize("phase", ["offline", "online"])
def test_kill_and_resume_gives_the_uninterrupted_run(phase, offline, online, dataset,
                                                     tmp_path):
    """In either phase. A continued run resumes from its own checkpoint and the link it
    kept (init_from.json): its offline run is moved away in between, and its summary.json
    still names the checkpoint it started from."""
    if phase == "offline":
        name, command = OFFLINE_RUN, lambda *extra: offline_command(dataset, tmp_path, *extra)
        group, reference = "invertedpendulum_random", offline
    else:
        name, command = ONLINE_RUN, lambda *extra: online_command(offline, dataset, tmp_path,
                                                                   *extra)
        group, reference = "InvertedPendulum-v5", online
    kill_at_first_checkpoint(command(), tmp_path, tmp_path / "checkpoints" / group
                             / f"{name}_latest.pt")
    moved = [offline / "results" / OFFLINE_RUN, offline / "checkpoints"] \
        if phase == "online" else []
    for path in moved:
        path.rename(path.with_name(path.name + "_moved"))
    try:
        result = run(command("--resume"), tmp_path)
    finally:
        for path in moved:
            path.with_name(path.name + "_moved").rename(path)
    assert result.returncode == 0 and "Resuming" in result.stdout, result.stderr
    assert rows_of(tmp_path, name) == rows_of(reference, name)
    assert tensorboard_scalars(tmp_path / "runs" / name) == \
           tensorboard_scalars(reference / "runs" / name)
    if phase == "online":
        link, reference_link = (json.loads((root / "results" / name / "summary.json")
                                           .read_text())["init_from"]
                                for root in (tmp_path, online))
        assert link == reference_link
        kept = json.loads((tmp_path / "results" / name / "init_from.json").read_text())
        assert kept == {**link, "env_kwargs": {}, "alpha": pytest.approx(0.05)}


def test_an_unreadable_init_link_is_one_line_on_resume(offline, dataset, tmp_path, capsys):
    """The link a continued run keeps is what its resume reads of the run it started from:
    unreadable, it is named with the fix, exit 2, before anything is written."""
    checkpoint = tmp_path / "checkpoints" / "InvertedPendulum-v5" / f"{ONLINE_RUN}_latest.pt"
    link = tmp_path / "results" / ONLINE_RUN / "init_from.json"
    for path, text in ((checkpoint, ""), (link, '{"steps": 300}')):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        train_sac.main([*online_flags(offline, dataset), *output_flags(tmp_path), "--resume"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"train_sac.py: error: cannot read {link} (no final_checkpoint, program, settings, "
        f"env_kwargs, alpha), which links this run to the one it started from; restore it, "
        f"or delete it to read --init-from"), err
    assert sorted(path for path in tmp_path.rglob("*") if path.is_file()) == [checkpoint, link]


def test_init_from_builds_the_environment_with_the_runs_settings(offline, dataset, tmp_path,
                                                                 capsys):
    """The online environment takes the offline run's env kwargs (those it was evaluated
    with, so step 0 scores what it scored), and a dataset from other settings is refused."""
    trained = torch.load(offline / "checkpoints" / "invertedpendulum_random"
                         / f"{OFFLINE_RUN}_final.pt", weights_only=True)
    trained["env_kwargs"] = {"reset_noise_scale": 0.05}
    checkpoint = tmp_path / f"{OFFLINE_RUN}_final.pt"
    torch.save(trained, checkpoint)
    flags = [*CHAIN, "--init-from", str(checkpoint), *output_flags(tmp_path)]
    _, _, task = train_sac.parse_and_check(flags)
    assert task.env_kwargs == {"reset_noise_scale": 0.05}
    assert task.env.unwrapped._reset_noise_scale == 0.05
    with pytest.raises(SystemExit) as exit_info:
        train_sac.parse_and_check([*flags, "--offline-data", str(dataset)])
    assert exit_info.value.code == 2
    assert "give an --offline-data dataset of the run's environment" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pogo_run(dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pogo")
    command = [sys.executable, str(REPO_ROOT / "train_pogo.py"), "--dataset", str(dataset),
               "--env-name", "InvertedPendulum-v5", "--num-actors", "2", "--hidden-size", "32",
               "--num-steps", "20", "--eval-freq", "20", "--eval-episodes", "1",
               "--batch-size", "32", *output_flags(root)]
    result = run(command, root)
    assert result.returncode == 0, result.stderr
    return next(p for p in (root / "results").iterdir() if p.is_dir())


@pytest.mark.parametrize("extra, message", [
    (["--init-from", "POGO"], "is a POGO run: its noise-input"),
    (["--init-from", "OFFLINE", "--env-name", "InvertedDoublePendulum-v5"],
     "give --env-name InvertedPendulum-v5"),
    (["--init-from", "OFFLINE", "--num-actors", "3", "--w2-weights", "0.5"],
     "give --num-actors 2"),
    (["--init-from", "OFFLINE", "--hidden-size", "64"], "give --hidden-size 32"),
    (["--init-from", "OTHER_SPACES"], ("differ from the InvertedPendulum-v5 ones the actors "
                                       "were trained on (observations (5,)",
                                       "; the environment has changed since that run (another "
                                       "Gymnasium or MuJoCo version?); continue it with the "
                                       "versions it was trained with")),
    (["--init-from", "MISSING"], "nowhere does not exist"),
    (["--init-from", "UNFINISHED"], "has no summary.json"),
    (["--data-weight", "1"], "add --dataset"),
    (["--dataset", "DATA", "--automatic-entropy-tuning"], "the data term sets actor 0's entropy"),
    (["--dataset", "DATA", "--init-from", "OFFLINE"], "--init-from does not go with --dataset"),
    (["--offline-data", "DATA", "--offline-ratio", "1.5"], "--offline-ratio must lie in (0, 1)"),
    (["--offline-data", "DATA", "--batch-size", "32", "--offline-ratio", "0.01"],
     "leaves the dataset or the replay memory no row"),
    (["--dataset", "DATA", "--env-name", "Hopper-v5"], "Hopper-v5 has"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(extra, message, offline, pogo_run,
                                                          dataset, tmp_path, capsys):
    """In process, as tests/test_cli_errors.py's cases (the checks are train_sac.py's own
    Python; a subprocess per case would add only torch's start-up)."""
    paths = {"POGO": pogo_run, "OFFLINE": offline / "results" / OFFLINE_RUN,
             "MISSING": tmp_path / "nowhere", "UNFINISHED": tmp_path, "DATA": dataset,
             "OTHER_SPACES": tmp_path / "other_spaces_final.pt"}
    if "OTHER_SPACES" in extra:  # the offline run's final checkpoint, one observation more
        checkpoint = read_final_checkpoint(resolve_run(paths["OFFLINE"])[0])
        torch.save({**checkpoint, "observation_shape": [5]}, paths["OTHER_SPACES"])
    argv = [str(paths.get(word, word)) for word in extra]
    base = ["--env-name", "InvertedPendulum-v5", "--num-actors", "2", "--w2-weights", "0.0,0.5",
            "--hidden-size", "32", "--num-steps", "10"]
    with pytest.raises(SystemExit) as exit_info:
        train_sac.main([*base, *argv, *output_flags(tmp_path)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and captured.out == "", captured
    fragments = message if isinstance(message, tuple) else (message,)
    assert lines[0].startswith("train_sac.py: error: ")
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert not any((tmp_path / folder).exists() for folder in ("results", "runs", "checkpoints"))
