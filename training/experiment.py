"""A running experiment, for every training script: stop handling, outputs (metrics CSV,
per-actor .npy, TensorBoard, config.json, summary.json), checkpoints, finite-value checks,
the progress and evaluation lines, and finishing (the layout is run_setup.py's).

The sweep tool (run_sac.py) reads summary.json (`steps`, `wall_time_s`, `final_eval`) and
parses the stdout lines whose formats LINE_PATTERNS gives. Torch and TensorBoard are imported
only inside the methods that need them: the sweep imports this module and stays torch-free.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

import numpy as np

from training.evaluation import evaluation_table
from training.run_setup import RunPaths, settings_conflicts, settings_of
from training.tracking import Tracker
from utils import (StopRequest, atomic_write, atomic_write_json, atomic_write_text,
                   format_duration, renamed_metric, usage_error)

# The lines a training script prints that the sweep tool reads back from its log.
LINE_PATTERNS = {
    "start": re.compile(r"^(Starting|Resuming) \S+ at step (\d+)"),
    "progress": re.compile(r"^step (\d+)/(\d+) .*\| ([\d.]+) steps/s"),
    "eval": re.compile(r"^Evaluation over \d+ episodes at step (\d+):"),
    "actor": re.compile(r"^\s+Actor (\d+) - Deterministic: (\S+)"),
    "finished": re.compile(r"^Finished \S+: (\d+) steps"),
    "error": re.compile(r"^\S+\.py: error: "),
}


# --------------------------------------------------------------------------- outputs
def metrics_to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Flatten an agent's metric tensors into named host floats (one sync)."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        values = value.detach().cpu().reshape(-1).tolist()
        if value.dim() == 0:
            flat[name] = values[0]
        else:
            flat.update({f"{name}_{i}": v for i, v in enumerate(values)})
    return flat


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a file object: np.save would append .npy to a path
        np.save(handle, array)


def write_outputs(paths: RunPaths, history: list[dict[str, float]], num_actors: int) -> None:
    """Rewrite the metrics CSV and the per-actor .npy files from the evaluation history."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(paths.metrics_csv, buffer.getvalue())
    for i in range(num_actors):
        returns = np.array([row[f"actor_{i}_deterministic"] for row in history], dtype=np.float64)
        atomic_write(paths.actor_returns(i), lambda tmp, r=returns: save_npy(tmp, r))


def torch_load(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def first_non_finite(state: Any, name: str = "") -> str | None:
    """The name of the first floating tensor in a nested state (dicts, lists) holding a NaN
    or an infinity, or None."""
    import torch

    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        if (isinstance(state, torch.Tensor) and state.is_floating_point()
                and not bool(torch.isfinite(state).all())):
            return name
        return None
    for key, value in items:
        found = first_non_finite(value, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def first_line(error: Exception) -> str:
    """An exception as "Type: its first line" (at most 120 characters of it)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:120] if lines else ''}"


def progress_line(step: int, total: int, details: str, rate: float) -> str:
    remaining = (total - step) / max(rate, 1e-9)
    return (f"step {step}/{total} ({100.0 * step / total:.1f}%) | {details} "
            f"| {rate:.1f} steps/s | ETA {format_duration(remaining)}")


@dataclass
class RunState:
    """The experiment's counters and evaluation history (the training loop's own counters
    and generators travel in the checkpoint beside it)."""
    total_steps: int = 0
    last_checkpoint_step: int = 0
    elapsed_before: float = 0.0  # wall seconds spent in earlier sessions of this run
    history: list[dict[str, float]] = field(default_factory=list)


class Experiment:
    """One run's outputs, clock, checkpoints and stop handling, for any training script.

    The script owns its loop, agent and data; it hands the experiment what to log and what
    to checkpoint (a dict of state_dicts), and the experiment writes it all in one layout."""

    def __init__(self, program: str, args: argparse.Namespace, paths: RunPaths,
                 num_actors: int):
        self.program, self.args, self.paths, self.num_actors = program, args, paths, num_actors
        self.state = RunState()
        self.stop = StopRequest()  # the script enters it around its loop
        self.resumed = paths.resumes(args.resume)
        self.session_start = time.time()
        self.writer: Any = None
        self.tracker: Tracker | None = None

    def open_writer(self) -> None:
        """The settings (config.json, first: TensorBoard events without it are another run's,
        run_setup.check_resume), TensorBoard, with the events an interrupted session logged
        after its checkpoint's step purged (those at that step came before the checkpoint,
        which flushed them: Trainer.checkpoint_if_due), and with --track the run's W&B run
        (training/tracking.py)."""
        from torch.utils.tensorboard import SummaryWriter

        atomic_write_json(self.paths.config_json, settings_of(self.args))

        self.writer = SummaryWriter(str(self.paths.tensorboard),
                                    purge_step=self.state.total_steps + 1)
        if self.args.track:
            self.tracker = Tracker.open(self.args, self.paths, self.program)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar to TensorBoard and, with --track, to W&B (sent at the next flush)."""
        self.writer.add_scalar(tag, value, step)
        if self.tracker is not None:
            self.tracker.scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()
        if self.tracker is not None:
            self.tracker.flush()

    def close_writers(self, exit_code: int, summary: dict[str, Any] | None = None) -> None:
        """Close TensorBoard and the W&B run (the summary is the final evaluation)."""
        if self.writer is not None:
            self.writer.close()
        if self.tracker is not None:
            self.tracker.finish(exit_code, summary)

    def elapsed(self) -> float:
        return self.state.elapsed_before + time.time() - self.session_start

    # -- checkpoints
    def save_checkpoint(self, parts: dict[str, Any]) -> None:
        """Write {"run": counters and history, **parts} atomically to the latest checkpoint,
        keeping the one before as the previous checkpoint. A non-finite value anywhere in
        `parts` stops the run instead: no checkpoint ever holds a diverged agent."""
        import torch

        bad = first_non_finite(parts)
        if bad is not None:
            self.diverged(bad, "in the state to checkpoint")
        self.flush()  # what is logged up to this step stays when a resume purges the rest
        self.state.last_checkpoint_step = self.state.total_steps
        run = {**asdict(self.state), "elapsed_before": self.elapsed()}
        checkpoint = {"run": run, "settings": settings_of(self.args), **parts}
        atomic_write(self.paths.latest_checkpoint, lambda tmp: torch.save(checkpoint, tmp),
                     backup=self.paths.previous_checkpoint)

    def load_checkpoint(self, restore: Callable[[dict[str, Any]], None]) -> None:
        """Restore the counters and history, and `restore(checkpoint)` the script's parts,
        from the newest checkpoint that loads; an unreadable one is named and skipped.
        With none left: one line naming the files and the fix, and exit status 2. One that
        loads but does not fit this run (written under other settings, or its data have
        changed since: `restore` raises) is one line and exit status 2 too: the one before
        it would not fit either."""
        problems = []
        for path in self.paths.resume_checkpoints:
            try:
                # on the CPU: generator states must stay CPU tensors; modules copy to their device
                checkpoint = torch_load(path)
                run = checkpoint["run"]
                history = [{renamed_metric(key): value for key, value in row.items()}
                           for row in run["history"]]
                state = RunState(**{**run, "history": history})
            except Exception as error:  # truncated, corrupt, or from another version
                problems.append(f"{path} is unreadable ({first_line(error)})")
                print(f"{self.program}: warning: {problems[-1]}", file=sys.stderr, flush=True)
                continue
            self.check_settings(checkpoint, path)
            try:
                restore(checkpoint)
            except Exception as error:
                usage_error(self.program, f"{path} does not fit this run ({first_line(error)}); "
                                          f"to start this run over instead, delete the "
                                          f"checkpoint file(s)")
            self.state = state
            if problems:
                print(f"{self.program}: warning: resuming from {path} instead, at step "
                      f"{self.state.total_steps}", file=sys.stderr, flush=True)
            return
        usage_error(self.program, f"{'; '.join(problems)}; delete the checkpoint file(s) to "
                                  f"start this run over, or restore a good copy")

    def check_settings(self, checkpoint: dict[str, Any], path: Path) -> None:
        """Exit 2 unless the checkpoint was written with these settings: one beside this
        run's config.json can still be another run's of the same name (two runs started at
        once with one --checkpoint-dir write one file), and resuming would train on it.
        A setting one side lacks (a flag added since, or a checkpoint from before settings
        were stored) is not compared."""
        saved, current = checkpoint.get("settings", {}), settings_of(self.args)
        shared = saved.keys() & current.keys()
        conflicts = settings_conflicts({key: saved[key] for key in shared},
                                       {key: current[key] for key in shared})
        if conflicts:
            usage_error(self.program, f"{path} was written by a run with other settings: "
                                      f"{'; '.join(conflicts)}; another run of this name "
                                      f"wrote it to this --checkpoint-dir: delete it to start "
                                      f"this run over, or resume that run with its flags")

    def diverged(self, quantities: dict[str, Any] | str, where: str = "") -> NoReturn:
        """Stop the run (exit status 1) with one line naming the step and what went
        non-finite; the last checkpoint, written before, holds finite values only."""
        kept = (self.paths.latest_checkpoint if self.paths.latest_checkpoint.exists()
                else "none written yet")
        what = quantities if isinstance(quantities, str) else ", ".join(
            f"{name} = {value}" for name, value in quantities.items())
        print(f"{self.program}: error: non-finite {what}{' ' + where if where else ''} at step "
              f"{self.state.total_steps}; stopping. Last good checkpoint: {kept}",
              file=sys.stderr)
        self.close_writers(exit_code=1)
        raise SystemExit(1)

    # -- logging
    def stop_if_not_finite(self, metrics: dict[str, float]) -> None:
        bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
        if bad:
            self.diverged(bad)

    def check_update(self, metrics: dict[str, Any], finite: Any) -> None:
        """After every update: `finite` is `utils.all_finite(metrics)`, one device-side test of all
        the metrics (losses included); only if it fails, the host copies that name the
        culprits."""
        if not bool(finite):
            self.stop_if_not_finite(metrics_to_floats(metrics))

    def host_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:
        """An update's metrics on the host; stops the run if any is not finite."""
        floats = metrics_to_floats(metrics)
        self.stop_if_not_finite(floats)
        return floats

    def log_training(self, metrics: dict[str, Any], details: str, rate: float) -> None:
        for name, value in self.host_metrics(metrics).items():
            self.add_scalar(f"train/{name}", value, self.state.total_steps)
        if self.tracker is not None:
            self.tracker.flush()
        print(progress_line(self.state.total_steps, self.args.num_steps, details, rate),
              flush=True)

    def record_evaluation(self, returns: np.ndarray, modes: tuple[str, ...],
                          counters: dict[str, float], metrics: dict[str, Any],
                          scores: Callable[[float], float] | None = None,
                          measures: dict[str, float] | None = None) -> None:
        """One evaluation: print it, add it to TensorBoard and to the history, and rewrite the
        outputs. `returns` is [actor, mode, episode]; `scores` maps a mean return to a
        normalised score, logged beside it where given; `measures` are further per-evaluation
        figures (e.g. POGO's spread_i), logged like the returns."""
        step = self.state.total_steps
        columns, lines = evaluation_table(returns, modes, step, scores=scores)
        columns.update(measures or {})
        print("\n".join(lines), flush=True)
        for name, value in columns.items():
            if not name.endswith("_std"):
                self.add_scalar(f"eval/{name}", value, step)
        row = {"step": step, **counters, "wall_time_s": round(self.elapsed(), 3), **columns,
               **self.host_metrics(metrics)}
        self.state.history.append(row)
        write_outputs(self.paths, self.state.history, self.num_actors)
        self.flush()

    # -- start and end
    def run(self, train: Callable[[], None], device: Any) -> None:
        """Announce the start, and train with SIGINT and SIGTERM handled: the run stops at
        its next safe point and exits 130 (143 for SIGTERM) naming the checkpoint to resume
        from."""
        print(("Resuming" if self.resumed else "Starting") + f" {self.paths.file_name} at step "
              f"{self.state.total_steps} on {device}", flush=True)
        try:
            with self.stop:
                train()
        except KeyboardInterrupt as stop:  # Stopped, or a KeyboardInterrupt outside `stop`
            self.interrupted(getattr(stop, "exit_code", 130))

    def interrupted(self, exit_code: int) -> NoReturn:
        self.close_writers(exit_code=exit_code)
        saved = self.paths.latest_checkpoint
        where = (f"--resume continues from {saved}" if saved.exists()
                 else "no checkpoint yet: --resume starts over")
        print(f"{self.program}: interrupted at step {self.state.total_steps}; {where}",
              file=sys.stderr)
        raise SystemExit(exit_code)

    def finish(self, final_parts: dict[str, Any], summary: dict[str, Any], counts: str) -> None:
        """Final networks, summary marker, and a one-screen report of where everything went.
        `counts` describes the run's length, e.g. '1000 steps, 12 episodes'."""
        import torch

        atomic_write(self.paths.final_checkpoint, lambda tmp: torch.save(final_parts, tmp))
        final = self.state.history[-1]
        atomic_write_json(self.paths.summary_json, {
            "file_name": self.paths.file_name, "steps": self.state.total_steps, **summary,
            "wall_time_s": round(self.elapsed(), 3), "final_eval": final})
        # only now that the run is marked finished: a kill before the marker resumes from them
        for resume_checkpoint in self.paths.resume_checkpoints:  # they hold the replay memory
            resume_checkpoint.unlink()
        self.close_writers(exit_code=0, summary={**final, "steps": self.state.total_steps})
        n, paths = self.num_actors, self.paths
        modes = [key.split("_", 2)[2] for key in final
                 if key.startswith("actor_0_") and not key.endswith(("_std", "_score"))]
        lines = [
            "",
            f"Finished {paths.file_name}: {counts}, {format_duration(self.elapsed())} wall time",
            *(f"  Actor {i}: " + ", ".join(f"{mode} {final[f'actor_{i}_{mode}']:.2f}"
                                           for mode in modes) for i in range(n)),
            f"  TensorBoard:   {paths.tensorboard}  (tensorboard --logdir {self.args.log_dir})",
            f"  Metrics CSV:   {paths.metrics_csv}",
            f"  Eval returns:  {paths.actor_returns(0)} … actor_{n - 1}.npy",
            f"  Config:        {paths.config_json}",
            f"  Summary:       {paths.summary_json}",
            f"  Final weights: {paths.final_checkpoint}",
        ]
        print("\n".join(lines))
