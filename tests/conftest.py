"""Make the repository root importable (replay_memory, utils, train_sac) from the tests, run
the tests' PyTorch (in process and in the training subprocesses) on one thread, skip the
tests marked `cuda` where no CUDA GPU is present (CI has none), and write the small offline
dataset several test files train on (random_pendulum_hdf5), the output flags they pass
(output_flags), and a file system without flock (without_flock)."""

import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# The tests' tiny networks gain nothing from a second thread, and PyTorch's spinning threads
# make a 2-thread training subprocess crawl (1 step/s, past its timeout) while a sweep keeps
# the cores busy. An explicit OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one")


def pytest_collection_modifyitems(config, items):
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


def without_flock(monkeypatch) -> None:
    """Every flock fails as on a file system without locks (ENOLCK, as some NFS mounts
    give)."""
    import errno
    import fcntl

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)


def kill_at_first_checkpoint(command: list[str], cwd: Path, checkpoint: Path) -> None:
    """Start a training command and SIGKILL it as soon as `checkpoint` (its first resume
    checkpoint) exists; fails if the run ended on its own first."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's TensorBoard folder as TensorBoard shows it, per tag, as (step,
    value) pairs: with the events a resumed session purged left out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def stop_before_the_summary(main: Any, argv: list[str], monkeypatch: Any) -> None:
    """Run a training script's main(argv) and stop it after its final checkpoint, as it
    writes summary.json (its config.json and resume checkpoints stay)."""
    import pytest

    import training.experiment

    write_json = training.experiment.atomic_write_json

    def stop_at_the_summary(path: Path, value: Any) -> None:
        if path.name == "summary.json":
            raise RuntimeError("stopped between the final checkpoint and the summary")
        write_json(path, value)

    with monkeypatch.context() as patch:
        patch.setattr(training.experiment, "atomic_write_json", stop_at_the_summary)
        with pytest.raises(RuntimeError, match="stopped between"):
            main(argv)


def output_flags(root: Path) -> list[str]:
    """A training script's output flags, every folder under `root`."""
    return ["--results-dir", str(root / "results"), "--log-dir", str(root / "runs"),
            "--checkpoint-dir", str(root / "checkpoints")]


def random_pendulum_hdf5(path: Path, steps: int) -> Path:
    """`steps` uniform-random InvertedPendulum-v5 steps in D4RL's flat hdf5 layout (the
    same steps for the same `steps`: the environment and the actions are seeded)."""
    import gymnasium as gym
    import h5py
    import numpy as np

    env = gym.make("InvertedPendulum-v5")
    rng = np.random.default_rng(0)
    columns = {key: [] for key in ("observations", "actions", "rewards", "next_observations",
                                   "terminals", "timeouts")}
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = rng.uniform(-3.0, 3.0, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(columns, (obs, action, reward, next_obs, terminated, truncated)):
            columns[key].append(value)
        obs = env.reset(seed=int(rng.integers(2**31)))[0] if terminated or truncated else next_obs
    with h5py.File(path, "w") as handle:
        for key, values in columns.items():
            handle[key] = np.array(values)
    return path
