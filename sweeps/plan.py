"""A sweep's plan: which runs start, in what order, how many at once and with how many threads
each (from this machine's cores and memory, or the job array's settings), and the GPU flags
checked against the runs' cuda setting and this machine."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sweeps.gpus import check_gpu_ids, machine_gpus
from sweeps.script import Run
from utils import UsageError


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), or None."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as handle:
            line = next(text for text in handle if text.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return None


def cpu_count() -> int:
    """The cores this process may use."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_jobs(todo: list[Run]) -> tuple[int, str]:
    """What this machine can hold: one run per core, no more than memory allows (each run's
    peak memory as its training script's preflight estimates it)."""
    cores = cpu_count()
    jobs, why = cores, f"{cores} cores"
    free = available_memory()
    need = max((run.peak_bytes for run in todo), default=0)
    if free is not None and need > 0:
        fit = max(1, int(0.9 * free // need))
        if fit < jobs:
            jobs, why = fit, (f"memory: {free / 2**30:.1f} GiB free, up to "
                              f"{need / 2**30:.1f} GiB per run")
    return max(1, min(jobs, len(todo) or 1)), why


@dataclass
class Plan:
    """What a sweep will start, and how."""
    todo: list[Run]  # the unfinished runs, in launch order
    jobs: int  # at once (locally), or the job array's parallelism
    why: str  # where `jobs` comes from
    threads: int  # per run
    gpus: list[str]  # --gpus
    folder: Path  # submitit's job files


def results_root(runs: list[Run]) -> Path:
    """The results_dir shared by the sweep (the first run's, if task entries override it)."""
    return runs[0].results.parent if runs else Path("results")


def plan_of(runs: list[Run], args: argparse.Namespace) -> Plan:
    """Launch order (seed-major, so every (env, w2) cell gets its first seed early), the
    number of runs at once and the threads of each."""
    todo = [run for run in runs if not run.finished]
    seed_rank = {seed: rank for rank, seed in enumerate(dict.fromkeys(r.seed for r in runs))}
    todo.sort(key=lambda run: seed_rank[run.seed])  # stable: grid order within a seed
    if args.launcher == "local":
        jobs, why = (args.jobs, "--jobs") if args.jobs else default_jobs(todo)
        threads = args.threads_per_job or max(1, cpu_count() // jobs)
    else:
        jobs, why = (args.jobs or len(todo) or 1), "array parallelism"
        threads = args.threads_per_job or (
            args.cpus_per_task if args.launcher == "slurm"
            else max(1, cpu_count() // max(1, len(todo))))
    gpus = args.gpus or []
    folder = (args.submitit_dir or results_root(runs) / "submitit").resolve()
    return Plan(todo=todo, jobs=jobs, why=why, threads=threads, gpus=gpus, folder=folder)


def check_devices(plan: Plan, args: argparse.Namespace) -> None:
    """GPU flags against the runs' cuda setting and this machine: a warning, or an error for
    Slurm runs that would ask for no GPU, and for --gpus ids that do not name this machine's
    GPUs one each (a run's CUDA_VISIBLE_DEVICES would hide every GPU from it): UsageError."""
    cuda = [run.cuda for run in plan.todo]
    devices = machine_gpus() if plan.gpus and any(cuda) else None
    if devices is not None:  # else nvidia-smi cannot say: each run's --cuda check will
        check_gpu_ids(plan.gpus, devices)
    if plan.gpus and not all(cuda):
        print("run_sac.py: warning: --gpus given but some runs have cuda: false; they ignore "
              "their GPU", file=sys.stderr)
    if args.launcher == "slurm" and any(cuda) and not args.gpus_per_task:
        raise UsageError("runs have cuda: true but --gpus-per-task is 0")
    if args.launcher == "slurm" and args.gpus_per_task and not all(cuda):
        print("run_sac.py: warning: --gpus-per-task given but some runs have cuda: false; "
              "they leave their GPU idle", file=sys.stderr)
