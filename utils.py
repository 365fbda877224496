"""Small pure helpers shared by the scripts: random streams, Adam, target updates, usage errors,
weight parsing, run naming, durations, atomic file writes and signal catching. Knows nothing
of the agents or of experiments."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, NoReturn, Sequence

if TYPE_CHECKING:  # torch is not imported at run time: `train_sac.py --help` stays instant
    from torch import nn


# Every random generator of a run is seeded here, by stream name, so no two generators of a
# run share a stream. POSAC's original streams keep the seed + offset they had when the
# reference results were made, so plain SAC (actor 0) reproduces them; every later stream
# derives from numpy's SeedSequence((seed, index)), so it is no stream of a nearby seed.
# Every random stream of a run, by name. A stream's seed is numpy's SeedSequence of (the
# run's seed, the stream's index, its keys), so no stream of one seed is a stream of
# another seed or another stream of the same one. Append only: the index is part of the seed
# (the datasets made here were drawn from the first ones).
STREAMS = (
    "chain",  # the chain actors' noise (actors 1 … N−1)
    "actor",  # POGO: actor 0's noise input
    "act",  # POGO: stochastic actions from `act`, apart from the training streams
    "dataset_resets",  # make_dataset.py: episode reset seeds
    "dataset_actions",  # make_dataset.py: uniform random actions
    "dataset_noise",  # make_dataset.py: the actor's ε
    "spread",  # the states and noise of a spread measurement (train_pogo.py, make_dataset.py)
    "offline_data",  # train_sac.py --offline-data: the dataset's share of each minibatch
    "init",  # network initialisation
    "agent",  # POSAC: actor 0's ε (acting, TD targets, its loss); POGO: TD target noise
    "data",  # minibatch sampling (replay memory, offline dataset)
    "environment",  # training episodes' reset seeds and uniform random actions
    "evaluation",  # evaluation episode k's reset seed (key: k)
    "evaluation_noise",  # stochastic evaluation episode k of actor i's ε (keys: i, k)
)


# Metric names of earlier versions (checkpoints written before this one hold them): POSAC's
# λ_i was `lambda`, POGO's W2 term `distance`.
RENAMED_METRICS = {"lambda": "q_scale", "distance": "w2"}


def renamed_metric(name: str) -> str:
    """Today's name of a metric or per-actor column (`lambda_1` → `q_scale_1`)."""
    base, _, index = name.rpartition("_")
    if index.isdigit() and base in RENAMED_METRICS:
        return f"{RENAMED_METRICS[base]}_{index}"
    return RENAMED_METRICS.get(name, name)


def stream_seed(seed: int, stream: str, *keys: int) -> int:
    """The seed of one of a run's random streams (STREAMS), below 2**64."""
    import numpy as np

    entropy = [seed % 2**64, STREAMS.index(stream), *keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def adam(params: Any, lr: float) -> Any:
    """torch.optim.Adam as one fused kernel over all tensors (same update rule as the
    per-tensor loop, a fraction of its dispatch cost on the CPU); on a GPU with its step
    count on the device (capturable), so that the step can be recorded in a CUDA graph."""
    import torch

    params = list(params)
    return torch.optim.Adam(params, lr=lr, fused=True,
                            capturable=params[0].device.type == "cuda")


def load_moments(optimizer: Any, state: dict[str, Any]) -> None:
    """An optimizer's saved state (Adam's moments and step counts) under this optimizer's
    own settings: torch's load_state_dict would also take the saved lr, betas, eps and
    fused/capturable flags, so a continued run would train at the earlier run's lr."""
    groups = [{**saved, **{key: value for key, value in own.items() if key != "params"}}
              for saved, own in zip(state["param_groups"], optimizer.param_groups, strict=True)]
    optimizer.load_state_dict({**state, "param_groups": groups})


def descend_(optimizer: Any, loss: Any) -> None:
    """One optimizer step on `loss`: fresh gradients, backward, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def soft_update_(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging θ' ← τ·θ + (1 − τ)·θ', in place (on .data: outside autograd)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.data.lerp_(param.data, tau)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Turn off gradients into `module`'s parameters for the duration of the block.

    Autograd then still differentiates through the module with respect to its inputs,
    but computes and stores no parameter gradients for it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class UsageError(Exception):
    """Bad input, reported as one line and exit status 2 before any work starts."""


def usage_error(program: str, message: str) -> NoReturn:
    """Report bad input as the one line `{program}: error: {message}`; exit status 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line with a --help hint (pass prog=)."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, f"{message} (see python {self.prog} --help)")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


# Seeds lie in [0, MAX_SEED): numpy and Gymnasium take no negative seed (every generator is
# seeded through stream_seed, whose seeds lie below 2**64 as torch's generators need).
MAX_SEED = 2**63


def seed_int(text: str) -> int:
    """argparse type of --seed: an integer in [0, 2**63)."""
    value = int(text)
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63), got {text}")
    return value


def parse_w2_weights(text: str, num_actors: int, actor0_zero: bool) -> list[float]:
    """Parse `--w2-weights`: a comma list with one finite, non-negative value per actor, or a
    single number w meaning [0.0, w, w, …] when actor 0's weight must be 0.0 (`actor0_zero`,
    POSAC) and [w, w, …] otherwise (POGO). Raises ValueError naming the problem."""
    example = "0.0,0.1" if actor0_zero else "10,10,10"
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--w2-weights {text!r} is not a comma-separated list of numbers; "
                         f"use e.g. --w2-weights {example}") from None
    if len(values) == 1:
        values = [0.0] + values * (num_actors - 1) if actor0_zero else values * num_actors
    if len(values) != num_actors:
        raise ValueError(f"--w2-weights has {len(values)} values but --num-actors is {num_actors}; "
                         f"give one weight per actor or a single number")
    if actor0_zero and values[0] != 0.0:
        raise ValueError(f"--w2-weights: actor 0 learns with the plain SAC loss, so its weight "
                         f"must be 0.0 (got {values[0]})")
    if any(not (w >= 0.0 and w != float("inf")) for w in values):
        raise ValueError(f"--w2-weights must be finite and non-negative (got {text!r})")
    return values


def flag_fields(config_class: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The values of an agent config's fields from the parsed flags of the same names (a
    list becomes a tuple)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)}
    return {name: tuple(value) if isinstance(value, list) else value
            for name, value in values.items()}


def config_from_flags(config_class: Any, args: argparse.Namespace) -> Any:
    """An agent's config dataclass built from the parsed flags by field name; the dataclass
    validates itself (ValueError)."""
    return config_class(**flag_fields(config_class, args))


def check_agent_settings(config: Any) -> None:
    """The settings every agent config shares (num_actors, w2_weights, hidden_size, lr,
    gamma, tau); ValueError naming a bad one."""
    if config.num_actors < 1:
        raise ValueError(f"num_actors must be at least 1, got {config.num_actors}")
    if len(config.w2_weights) != config.num_actors:
        raise ValueError(f"w2_weights needs one value per actor ({config.num_actors}), "
                         f"got {len(config.w2_weights)}")
    if any(not (0.0 <= w < float("inf")) for w in config.w2_weights):
        raise ValueError(f"w2_weights must be finite and non-negative, got {config.w2_weights}")
    for name, valid, expected in (("hidden_size", config.hidden_size >= 1, "at least 1"),
                                  ("lr", 0.0 < config.lr < float("inf"), "positive"),
                                  ("gamma", 0.0 <= config.gamma <= 1.0, "in [0, 1]"),
                                  ("tau", 0.0 < config.tau <= 1.0, "in (0, 1]")):
        if not valid:
            raise ValueError(f"{name} must be {expected}, got {getattr(config, name)}")


def all_finite(metrics: dict[str, Any]) -> Any:
    """Whether every metric of an update is finite, as one boolean tensor on the device."""
    import torch

    return torch.isfinite(torch.cat([value.reshape(-1) for value in metrics.values()])).all()


def with_finite(metrics: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """An update's metrics and `all_finite(metrics)`."""
    return metrics, all_finite(metrics)


def format_weights(weights: Sequence[float]) -> str:
    """Compact, file-name-safe spelling of a weight list: [0.0, 0.1] → '0.0-0.1'."""
    return "-".join(str(float(w)) for w in weights)


def dataset_task(dataset: str) -> str:
    """A dataset as a run names it: a Minari id, or a D4RL hdf5 file's stem."""
    path = Path(dataset)
    return path.stem if path.suffix in (".hdf5", ".h5") else dataset


def run_name(prefix: str, task: str, seed: int, weights: Sequence[float] | None) -> str:
    """Name derived from the settings that identify a run, so it can be found again; the
    prefix names the algorithm (POSAC, POGO, TD3BC), the task an environment or dataset."""
    name = f"{prefix}_{task.replace('/', '-')}_s{seed}"
    return name if weights is None else f"{name}_w{format_weights(weights)}"


def code_version() -> str:
    """The git commit of this code, marked when the checkout has uncommitted changes."""
    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), *command],
                              capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes)" if dirty else "")


def format_duration(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def atomic_write(path: Path, write: Callable[[Path], Any], backup: Path | None = None) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`
    (after renaming the old `path` to `backup`, when given).

    A reader (or a resumed run) sees the old file or the new one, never half of one; with a
    backup, a kill between the two renames leaves the backup and no `path`. The file gets
    the permissions of one opened normally (mkstemp's are owner-only: results shared on a
    cluster would be unreadable to the group), the folder is synced after the rename (so
    the rename survives a power loss), and temporary files a kill left beside `path` by an
    earlier write are removed (one run writes a path at a time: the sweep's lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        fsync(tmp)
        if backup is not None and path.exists():
            os.replace(path, backup)
        os.replace(tmp, path)
        fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync(path: Path) -> None:
    """Flush a file's data or a folder's entries to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def locked_file(path: Path, buffering: int = -1) -> IO[str] | None:
    """`path` (its folder made if need be) opened for appending with an exclusive flock,
    which the OS releases when the file closes or the process ends, even by SIGKILL; None
    while another process holds it. OSError if the folder or the file cannot be made;
    UsageError if its file system cannot lock it (some NFS or Lustre mounts)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a", buffering=buffering)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except OSError as error:
        handle.close()
        raise UsageError(f"cannot lock {path} ({error.strerror}): its file system does not "
                         f"support flock, which keeps two processes from writing one output; "
                         f"put it on one that does (a local disk)") from None
    return handle


class CaughtSignals:
    """While entered, the given signals only record a request (the first signal's number and
    how many arrived) for the caller to act on at a safe point, instead of raising wherever
    they land."""

    def __init__(self, *signums: int) -> None:
        self.signums = signums
        self.signum: int | None = None
        self.count = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> CaughtSignals:
        for signum in self.signums:
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum
        self.count += 1


class Stopped(KeyboardInterrupt):
    """A stop request (SIGINT, or SIGTERM as a scheduler sends before it kills a job),
    honoured where it is safe; the process then exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class StopRequest(CaughtSignals):
    """While entered, SIGINT and SIGTERM only set a flag that the loops honour at their next
    safe point (`check`, between environment steps or updates). A KeyboardInterrupt raised
    at an arbitrary point can land inside a library that holds a lock (TensorBoard's
    writer), and the exit then deadlocks on that lock. A second signal stops at once."""

    def __init__(self) -> None:
        super().__init__(signal.SIGINT, signal.SIGTERM)

    def handle(self, signum: int, frame: Any) -> None:
        super().handle(signum, frame)
        if self.count > 1:
            raise Stopped(self.signum)

    def check(self) -> None:
        if self.count:
            raise Stopped(self.signum)
