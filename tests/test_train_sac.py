"""train_sac.py end to end on real MuJoCo environments, as real subprocesses."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT as REPO_ROOT_TEXT
from conftest import kill_at_first_checkpoint, output_flags, tensorboard_scalars
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train_sac
from training import evaluation
from utils import STREAMS

REPO_ROOT = Path(REPO_ROOT_TEXT)

FILE_NAME = "POSAC_InvertedPendulum-v5_s7_w0.0-0.2"
SMALL_RUN = ["--env-name", "InvertedPendulum-v5", "--seed", "7", "--num-steps", "700",
             "--start-steps", "200", "--batch-size", "32", "--hidden-size", "32",
             "--num-actors", "2", "--w2-weights", "0.2", "--eval-freq", "10",
             "--eval-episodes", "2", "--log-freq", "100", "--checkpoint-freq", "150"]


def train_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "train_sac.py"), *SMALL_RUN, *output_flags(root),
            *extra]


def run_training(root: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(train_command(root, *extra), capture_output=True, text=True,
                            timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    return result


def metrics_rows(root: Path) -> list[dict[str, str]]:
    path = root / "results" / FILE_NAME / "training" / f"{FILE_NAME}_metrics.csv"
    with open(path) as handle:
        return list(csv.DictReader(handle))


def without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in rows]


def assert_same_results(root: Path, expected_root: Path) -> None:
    """Identical metrics CSV (every column but wall time), .npy files and TensorBoard
    scalars, bit for bit."""
    assert without_wall_time(metrics_rows(root)) == without_wall_time(metrics_rows(expected_root))
    assert tensorboard_scalars(root / "runs" / FILE_NAME) == \
           tensorboard_scalars(expected_root / "runs" / FILE_NAME)
    for i in range(2):
        name = f"{FILE_NAME}_actor_{i}.npy"
        assert (root / "results" / FILE_NAME / name).read_bytes() == \
               (expected_root / "results" / FILE_NAME / name).read_bytes()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_a")
    return root, run_training(root)


def test_end_to_end_outputs(finished_run):
    root, result = finished_run
    results = root / "results" / FILE_NAME
    rows = metrics_rows(root)
    assert len(rows) >= 3 and int(rows[-1]["step"]) == 700
    assert "Actor 1 - Deterministic:" in result.stdout and "Finished" in result.stdout
    for column in ["step", "episode", "wall_time_s", "actor_0_deterministic",
                   "actor_0_stochastic", "actor_1_deterministic", "actor_1_stochastic",
                   "critic_loss", "alpha", "actor_loss_0", "actor_loss_1", "w2_1"]:
        assert column in rows[-1], column
    for i in range(2):
        returns = np.load(results / f"{FILE_NAME}_actor_{i}.npy", allow_pickle=False)
        assert returns.tolist() == [float(r[f"actor_{i}_deterministic"]) for r in rows]
    config = json.loads((results / "config.json").read_text())
    assert config["w2_weights"] == [0.0, 0.2] and config["num_steps"] == 700
    assert config["thread_environment"]["OMP_NUM_THREADS"] == "1"  # conftest's: it wins
    summary = json.loads((results / "summary.json").read_text())
    assert summary["steps"] == 700
    final = root / "checkpoints" / "InvertedPendulum-v5" / f"{FILE_NAME}_final.pt"
    state = torch.load(final, weights_only=True)
    assert len(state["agent"]["actors"]) == 2
    assert not (root / "checkpoints" / "InvertedPendulum-v5" / f"{FILE_NAME}_latest.pt").exists()

    events = EventAccumulator(str(root / "runs" / FILE_NAME))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ["train/critic_loss", "train/alpha", "train/w2_1", "train/actor_q_0",
                "train/actor_q_1", "train/actor_loss_1", "train/episode_return",
                "eval/actor_0_deterministic", "eval/actor_1_stochastic"]:
        assert tag in tags, tag
    eval_steps = [e.step for e in events.Scalars("eval/actor_1_deterministic")]
    assert eval_steps == [int(r["step"]) for r in rows]


def test_agent_learns_something_measurable(finished_run):
    """Not a benchmark: the critic loss is finite and Q estimates moved off zero."""
    rows = metrics_rows(finished_run[0])
    assert math.isfinite(float(rows[-1]["critic_loss"]))
    assert abs(float(rows[-1]["actor_q_0"])) > 0.1


def test_same_seed_gives_identical_metrics(finished_run, tmp_path):
    run_training(tmp_path)
    assert_same_results(tmp_path, finished_run[0])


def test_actor_zero_and_critic_of_a_chain_train_exactly_as_a_one_actor_run(finished_run,
                                                                            tmp_path):
    """Actor 0 and the critic never see the chain: a 1-actor run with the same seed
    reproduces the 2-actor run's actor-0 returns and critic losses bit for bit."""
    flags = SMALL_RUN[:SMALL_RUN.index("--num-actors")] + SMALL_RUN[
        SMALL_RUN.index("--w2-weights") + 2:]
    subprocess.run([sys.executable, str(REPO_ROOT / "train_sac.py"), *flags,
                    *output_flags(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    single = tmp_path / "results" / "POSAC_InvertedPendulum-v5_s7_w0.0" / "training"
    with open(single / "POSAC_InvertedPendulum-v5_s7_w0.0_metrics.csv") as handle:
        single_rows = list(csv.DictReader(handle))
    chain_rows = metrics_rows(finished_run[0])
    shared = ["step", "episode", "actor_0_deterministic", "actor_0_stochastic", "critic_loss",
              "q_data", "alpha", "actor_loss_0", "actor_q_0", "entropy_0"]
    assert [[row[k] for k in shared] for row in single_rows] == \
           [[row[k] for k in shared] for row in chain_rows]


def test_sigkill_and_resume_matches_uninterrupted_run(finished_run, tmp_path):
    """Resumed with another --checkpoint-freq (a setting allowed to change on resume: it
    changes no number), the run still ends as the uninterrupted one."""
    checkpoint = tmp_path / "checkpoints" / "InvertedPendulum-v5" / f"{FILE_NAME}_latest.pt"
    kill_at_first_checkpoint(train_command(tmp_path), tmp_path, checkpoint)
    assert not (tmp_path / "results" / FILE_NAME / "summary.json").exists()

    result = run_training(tmp_path, "--resume", "--checkpoint-freq", "70")
    assert "Resuming" in result.stdout
    assert_same_results(tmp_path, finished_run[0])
    resumed, whole = progress_details(result.stdout), progress_details(finished_run[1].stdout)
    assert resumed and resumed.items() <= whole.items()  # e.g. "last return" carried over


def progress_details(stdout: str) -> dict[int, str]:
    """Each progress line's fields but its rate and ETA, by step."""
    return {int(line.split()[1].split("/")[0]): " | ".join(line.split(" | ")[:-2])
            for line in stdout.splitlines() if line.startswith("step ")}


def test_a_resumed_run_still_reports_the_episode_return_before_its_checkpoint(tmp_path):
    """Pendulum's episodes last 200 steps: the resumed session's progress line at step 250
    comes before any episode of its own has ended, and must still show episode 1's return."""
    flags = ["--env-name", "Pendulum-v1", "--seed", "0", "--num-steps", "400",
             "--start-steps", "400", "--batch-size", "16", "--hidden-size", "8",
             "--eval-episodes", "1", "--eval-freq", "400", "--log-freq", "50",
             "--checkpoint-freq", "200"]

    def command(root: Path, *extra: str) -> list[str]:
        return [sys.executable, str(REPO_ROOT / "train_sac.py"), *flags, *output_flags(root),
                *extra]

    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    checkpoint = (tmp_path / "cut" / "checkpoints" / "Pendulum-v1"
                  / "POSAC_Pendulum-v1_s0_w0.0_latest.pt")
    kill_at_first_checkpoint(command(tmp_path / "cut"), tmp_path, checkpoint)
    resumed = subprocess.run(command(tmp_path / "cut", "--resume"), capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
    lines = progress_details(resumed.stdout)
    assert "Resuming" in resumed.stdout and "episode 1 | last return -" in lines[250]
    assert lines.items() <= progress_details(whole.stdout).items()


def kill_after_two_checkpoints(root: Path, *extra: str) -> tuple[Path, Path]:
    """Start the small run and SIGKILL it once it has a latest and a previous checkpoint."""
    folder = root / "checkpoints" / "InvertedPendulum-v5"
    latest, previous = folder / f"{FILE_NAME}_latest.pt", folder / f"{FILE_NAME}_previous.pt"
    process = subprocess.Popen(train_command(root, *extra), cwd=root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (latest.exists() and previous.exists()) and process.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return latest, previous


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(finished_run, tmp_path):
    latest, previous = kill_after_two_checkpoints(tmp_path)
    latest.write_bytes(latest.read_bytes()[:1000])  # a disk-full or half-copied file
    result = run_training(tmp_path, "--resume")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert str(latest) in warnings[0] and "unreadable" in warnings[0]
    assert f"resuming from {previous} instead" in warnings[1]
    assert_same_results(tmp_path, finished_run[0])
    assert not latest.exists() and not previous.exists()  # a finished run keeps neither


def test_unreadable_checkpoints_give_one_line_and_exit_2(tmp_path, capsys):
    latest, previous = kill_after_two_checkpoints(tmp_path)
    latest.write_bytes(b"not a checkpoint")
    previous.write_bytes(previous.read_bytes()[:-100])
    with pytest.raises(SystemExit) as exit_info:  # in process: no exception but SystemExit
        train_sac.main([*SMALL_RUN, *output_flags(tmp_path), "--resume"])
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line]
    assert len(error) == 1
    assert str(latest) in error[0] and str(previous) in error[0] and "delete" in error[0]


def wait_until_mapped(process: subprocess.Popen, library: str) -> None:
    """Wait until the process has loaded a shared library whose name contains `library`."""
    maps, deadline = Path(f"/proc/{process.pid}/maps"), time.time() + 120
    while library not in maps.read_text() and process.poll() is None \
            and time.time() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("delay", [0.0, 1.0, 2.5])
def test_ctrl_c_during_start_up_exits_130_with_one_line(tmp_path, delay):
    # Python turns SIGINT into KeyboardInterrupt only if it was not ignored when the process
    # started (a shell's background job, as this suite may be, ignores it): restore it
    process = subprocess.Popen(train_command(tmp_path), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # the delays count from the program's first import under its SIGINT handling (numpy's),
    # not from the launch: on a busy machine the interpreter's own start-up, before the
    # program's first line, can outlast a fixed delay
    wait_until_mapped(process, "_multiarray_umath")
    time.sleep(delay)  # importing torch and Gymnasium, building environments and the agent
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("train_sac.py: interrupted")


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_exits_128_plus_it_and_names_the_checkpoint_to_resume_from(
        tmp_path, signum, exit_code):
    """Ctrl-C, or the SIGTERM a scheduler (Slurm) sends before it kills a job: the run stops
    at its next safe point, closes its writers and names the checkpoint."""
    checkpoint = tmp_path / "checkpoints" / "InvertedPendulum-v5" / f"{FILE_NAME}_latest.pt"
    process = subprocess.Popen(train_command(tmp_path), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == exit_code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("train_sac.py: interrupted at step") and str(checkpoint) in last


def make_trainer(tmp_path, *flags):
    args, paths, env = train_sac.parse_and_check([*flags, *output_flags(tmp_path)])
    return train_sac.SACTrainer(args, paths, env)


def test_sigint_is_honoured_between_steps_not_where_it_lands(tmp_path):
    """Inside the loop SIGINT only sets a flag: a KeyboardInterrupt raised wherever the signal
    lands can leave a library's lock held (TensorBoard's writer) and deadlock the exit."""
    trainer = make_trainer(tmp_path, "--env-name", "Pendulum-v1", "--num-steps", "300",
                           "--start-steps", "100", "--batch-size", "16",
                           "--eval-episodes", "1", "--hidden-size", "8")
    stop = trainer.experiment.stop
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    with stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler has run: nothing was raised here
        with pytest.raises(KeyboardInterrupt):
            trainer.evaluator.run(train_sac.evaluation_policies(trainer.agent), "cpu", stop.check)
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
        assert trainer.state.total_steps == 0
        with pytest.raises(KeyboardInterrupt):  # a second SIGINT interrupts at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_behavior_actor_collects_the_data(tmp_path):
    trainer = make_trainer(tmp_path, "--env-name", "InvertedPendulum-v5", "--num-actors", "2",
                           "--behavior-actor", "1", "--hidden-size", "8")
    with torch.no_grad():
        for actor, sign in zip(trainer.agent.actors, (1.0, -1.0)):
            actor.net[-1].weight.zero_()
            actor.net[-1].bias.copy_(torch.tensor([5.0 * sign, -10.0]))  # μ = ±5, log σ = −10
    obs, _ = trainer.env.reset(seed=0)
    action = trainer.policy_action(obs)
    assert action == pytest.approx([3.0 * math.tanh(-5.0)], abs=1e-3)  # actor 1, not actor 0


@pytest.mark.parametrize("update_after, first_update_step", [(0, 16), (250, 250)])
def test_updates_start_after_a_batch_and_update_after_steps(tmp_path, update_after,
                                                            first_update_step):
    trainer = make_trainer(tmp_path, "--env-name", "Pendulum-v1", "--num-steps", "300",
                           "--start-steps", "100", "--batch-size", "16",
                           "--updates-per-step", "2", "--update-after", str(update_after),
                           "--eval-episodes", "1", "--hidden-size", "8")
    trainer.train()
    # one round of 2 updates after each of the steps first_update_step, …, 300
    assert trainer.agent.num_updates == 2 * (300 - first_update_step + 1)


def test_time_limit_truncation_is_stored_as_non_terminal(tmp_path):
    """Pendulum-v1 never terminates; its 200-step time limit must keep mask = 1."""
    trainer = make_trainer(tmp_path, "--env-name", "Pendulum-v1", "--num-steps", "450",
                           "--start-steps", "450", "--batch-size", "500", "--replay-size", "1000",
                           "--eval-episodes", "1", "--hidden-size", "8")
    trainer.train()
    memory = trainer.memory
    assert trainer.episodes == 2 and len(memory) == 450
    assert torch.all(memory.mask[memory.sampled_slots[:len(memory)]] == 1.0)
    # two final observations in slots of their own, plus the running episode's next observation
    assert memory.filled == 453
    assert torch.all(memory.sample(256).mask == 1.0)


class FaultyEnv(gym.Env):
    """A tiny continuous task that emits a NaN reward or observation after 300 steps
    (fault injection, as an environment with a numerical bug would)."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, fault: str = "reward"):
        self.fault, self.steps = fault, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3), {}

    def step(self, action):
        self.steps += 1
        obs, reward = self.np_random.uniform(-1, 1, 3), float(action.sum())
        if self.steps > 300:
            obs[1] = np.nan if self.fault == "observation" else obs[1]
            reward = float("nan") if self.fault == "reward" else reward
        return obs, reward, False, False, {}


gym.register("NaNReward-v0", entry_point=FaultyEnv, kwargs={"fault": "reward"},
             max_episode_steps=50)
gym.register("NaNObservation-v0", entry_point=FaultyEnv, kwargs={"fault": "observation"},
             max_episode_steps=50)
FAULT_FLAGS = ["--num-steps", "2000", "--start-steps", "100", "--batch-size", "16",
               "--hidden-size", "16", "--eval-freq", "100", "--log-freq", "1000",
               "--checkpoint-freq", "100"]


def assert_finite_checkpoint(path: Path) -> dict:
    state = torch.load(path, weights_only=True)
    for group in ("critic", "critic_target"):
        for tensor in state["agent"][group].values():
            assert torch.isfinite(tensor).all()
    for actor in state["agent"]["actors"]:
        for tensor in actor.values():
            assert torch.isfinite(tensor).all()
    assert state["run"]["last_checkpoint_step"] == state["run"]["total_steps"]
    return state


@pytest.mark.parametrize("env_name, quantity", [("NaNReward-v0", "reward"),
                                                ("NaNObservation-v0", "observation")])
def test_nan_from_the_environment_stops_at_that_step(tmp_path, capsys, env_name, quantity):
    with pytest.raises(SystemExit) as exit_info:
        train_sac.main(["--env-name", env_name, *FAULT_FLAGS, *output_flags(tmp_path)])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    # the 301st step emits the NaN: 300 steps done, and it never reaches the replay memory
    assert f"non-finite {quantity} = " in message and "at step 300;" in message
    checkpoint = tmp_path / "checkpoints" / env_name / f"POSAC_{env_name}_s123456_w0.0_latest.pt"
    assert str(checkpoint) in message
    assert assert_finite_checkpoint(checkpoint)["run"]["total_steps"] == 300


def test_a_diverging_update_stops_the_run_at_once(tmp_path, capsys):
    """A learning rate of 1e12 blows the networks up within a few updates: the run stops
    after the first update whose metrics are not finite, never later, and no checkpoint
    holds a non-finite parameter."""
    trainer = make_trainer(tmp_path, "--env-name", "Pendulum-v1", *FAULT_FLAGS,
                           "--lr", "3e6", "--checkpoint-freq", "20",
                           "--update-after", "250")  # a checkpoint at step 200 comes first
    seen = []
    real_learn = trainer.update_step

    def recording_learn():
        metrics, finite = real_learn()
        seen.append(all(bool(torch.isfinite(v).all()) for v in metrics.values()))
        return metrics, finite

    trainer.update_step = recording_learn
    with pytest.raises(SystemExit) as exit_info:
        trainer.train()
    assert exit_info.value.code == 1
    assert seen[-1] is False and all(seen[:-1])  # stopped by the first non-finite update
    assert len(seen) >= 2 and trainer.state.total_steps == 250 + len(seen) - 1
    assert "non-finite" in capsys.readouterr().err
    checkpoint = (tmp_path / "checkpoints" / "Pendulum-v1"
                  / "POSAC_Pendulum-v1_s123456_w0.0_latest.pt")
    assert assert_finite_checkpoint(checkpoint)["run"]["total_steps"] == 200


def test_batched_evaluation_equals_one_episode_at_a_time(tmp_path):
    """Evaluator steps all 2·N·E episodes together; playing each episode alone, with the
    same reset seed and the same noise stream, gives the same returns."""
    trainer = make_trainer(tmp_path, "--env-name", "HalfCheetah-v5", "--num-actors", "2",
                           "--eval-episodes", "2", "--hidden-size", "32")
    evaluator, agent = trainer.evaluator, trainer.agent
    assert torch.all(evaluator.noise[:, 0] == 0.0)  # deterministic mode: tanh(μ)·scale + bias
    batched = evaluator.run(train_sac.evaluation_policies(agent))
    env = gym.make("HalfCheetah-v5")
    for actor, mode, episode in np.ndindex(*batched.shape):
        policy = train_sac.evaluation_policies(agent)[actor]
        obs, _ = env.reset(seed=evaluator.reset_seeds[episode])
        total, done, t = 0.0, False, 0
        while not done:
            noise = evaluator.noise[actor, mode, episode, t].unsqueeze(0)
            action = evaluator.act(policy, obs[None], noise)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done, t = total + reward, terminated or truncated, t + 1
        assert total == batched[actor, mode, episode], (actor, mode, episode)
    assert not np.allclose(batched[:, 0], batched[:, 1])  # stochastic ≠ deterministic


def test_gymnasium_xml_deprecation_is_hidden_and_other_mujoco_warnings_are_not(capfd):
    evaluation.make_env("HalfCheetah-v5").close()
    gym.make("HalfCheetah-v5").close()  # as the evaluator builds its environments
    evaluation.forward_mujoco_warning("some other MuJoCo warning")
    err = capfd.readouterr().err
    assert "settotalmass" not in err
    assert "WARNING: some other MuJoCo warning" in err


def test_random_actions_for_exactly_start_steps_then_the_behaviour_actor(tmp_path):
    """Steps 0 … start_steps − 1 act uniformly at random; step start_steps already comes
    from the behaviour actor (pinned here to a constant action)."""
    trainer = make_trainer(tmp_path, "--env-name", "InvertedPendulum-v5", "--num-actors", "2",
                           "--behavior-actor", "1", "--start-steps", "5", "--num-steps", "9",
                           "--batch-size", "64", "--hidden-size", "8", "--eval-episodes", "1")
    with torch.no_grad():
        for actor in trainer.agent.actors:
            actor.net[-1].weight.zero_()
        trainer.agent.actors[0].net[-1].bias.copy_(torch.tensor([-5.0, -10.0]))
        trainer.agent.actors[1].net[-1].bias.copy_(torch.tensor([5.0, -10.0]))
    trainer.train()
    actions = trainer.memory.action[trainer.memory.slot_at_rank[:9]].squeeze(-1)
    policy = 3.0 * math.tanh(5.0)  # actor 1's μ = 5 with σ = e^-10, scaled to [-3, 3]
    assert torch.all((actions[:5] - policy).abs() > 1e-3)  # uniform on [-3, 3]
    assert torch.allclose(actions[5:], torch.full((4,), policy), atol=1e-3)


def test_deterministic_outputs_hold_the_noise_free_episodes(finished_run):
    """The CSV's actor_i_deterministic, the .npy files and TensorBoard's eval scalars hold
    the returns of tanh(μ(s)) episodes, replayed here from the final weights."""
    root, _ = finished_run
    env = gym.make("InvertedPendulum-v5")
    state = torch.load(root / "checkpoints" / "InvertedPendulum-v5" / f"{FILE_NAME}_final.pt",
                       weights_only=True)["agent"]
    rows = metrics_rows(root)
    events = EventAccumulator(str(root / "runs" / FILE_NAME))
    events.Reload()
    scale = torch.as_tensor(env.action_space.high, dtype=torch.float64)
    for i, actor_state in enumerate(state["actors"]):
        weights = [actor_state[f"net.{k}.{p}"].double() for k in (0, 2, 4)
                   for p in ("weight", "bias")]
        returns = []
        for k in range(2):  # --eval-episodes 2, reset seeds SeedSequence((7, index, k))
            index = STREAMS.index("evaluation")
            obs, _ = env.reset(seed=int(np.random.SeedSequence([7, index, k]).generate_state(
                1, np.uint64)[0]))
            total, done = 0.0, False
            while not done:
                h = torch.as_tensor(obs, dtype=torch.float64)
                for layer in range(3):
                    h = weights[2 * layer] @ h + weights[2 * layer + 1]
                    h = torch.relu(h) if layer < 2 else h
                action = (torch.tanh(h[:1]) * scale).float().numpy()  # μ only: no noise
                obs, reward, terminated, truncated, _ = env.step(action)
                total, done = total + reward, terminated or truncated
            returns.append(total)
        expected = float(np.mean(returns))
        assert float(rows[-1][f"actor_{i}_deterministic"]) == pytest.approx(expected, rel=1e-9)
        npy = np.load(root / "results" / FILE_NAME / f"{FILE_NAME}_actor_{i}.npy")
        assert npy[-1] == pytest.approx(expected, rel=1e-9)
        scalar = events.Scalars(f"eval/actor_{i}_deterministic")[-1].value
        assert scalar == pytest.approx(expected, rel=1e-6)
        assert float(rows[-1][f"actor_{i}_stochastic"]) != pytest.approx(expected, rel=1e-9)
