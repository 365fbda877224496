"""Experiment tracking with Weights & Biases (`--track`), offline-first.

What a run logs to TensorBoard goes to one W&B run as well, at the same x-axis (the run's
step: environment steps for train_sac.py, gradient steps for train_pogo.py, logged as
`global_step`): every training scalar at --log-freq, every evaluation (returns, normalised
scores, spreads), the chain videos with --capture-video, the flags as the run's config and
the final evaluation as its summary. Values reach W&B only where the run already holds them
on the host for TensorBoard: tracking adds no device synchronisation to the update loop.

One W&B run per training run: its id is stored in the run's results folder (RUN_ID_FILE)
when the run first starts, and every later session of the run (--resume, a SIGKILL and
resume, a Slurm requeue) continues that W&B run. A session that stops cleanly (Ctrl-C,
SIGTERM, a divergence) records what it sent (SENT_FILE, after W&B has finished its run):
the last step, the tags it sent at that step (a stop inside an evaluation leaves that
step's training scalars sent and its evaluation not), and the steps whose videos it sent.
The next session, which replays the steps after its checkpoint with the same numbers,
sends only what that record lacks: no value is logged twice and none is lost. After a
SIGKILL nothing is recorded, so the replayed steps may reach W&B twice (the same values),
but none is lost. A finished run is skipped before anything is built, so it is never logged
again. W&B's own files go to the run's results folder
(results/{file_name}/wandb/); offline runs are uploaded later with `wandb sync`.

Without --track, wandb is never imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import netrc
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from training.run_setup import RunPaths, settings_of
from utils import UsageError, atomic_write_json, atomic_write_text, code_version

RUN_ID_FILE = "wandb_run_id"
SENT_FILE = "wandb_sent.json"  # what the cleanly stopped sessions sent (Tracker.finish)
WANDB_MODES = ("online", "offline")
KNOWN_MODES = ("online", "offline", "dryrun", "disabled")  # what WANDB_MODE may say
DEFAULT_PROJECT = "posac"


def add_tracking_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracking (Weights & Biases)")
    group.add_argument("--track", action=argparse.BooleanOptionalAction, default=False,
                       help="log the run to Weights & Biases as well (one W&B run per run, "
                            "continued across --resume)")
    group.add_argument("--wandb-project", default=DEFAULT_PROJECT, help="W&B project")
    group.add_argument("--wandb-entity", default=None,
                       help="W&B entity (team or user; default: the login's)")
    group.add_argument("--wandb-group", default=None,
                       help="W&B group (run_sac.py sets the sweep's name)")
    group.add_argument("--wandb-mode", choices=WANDB_MODES, default=None,
                       help="online or offline (then `wandb sync`); default: wandb's own, "
                            "i.e. $WANDB_MODE, else online")


def check_tracking(args: argparse.Namespace) -> None:
    """With --track: UsageError unless wandb is installed and the mode it would use works
    (a known $WANDB_MODE; online needs a login). Runs before any work, without importing
    wandb."""
    if not args.track:
        return
    if importlib.util.find_spec("wandb") is None:
        raise UsageError("--track needs the wandb package: pip install -r requirements.txt "
                         "(it pins wandb), or drop --track")
    mode = args.wandb_mode or os.environ.get("WANDB_MODE") or "online"
    if mode not in KNOWN_MODES:
        raise UsageError(f"WANDB_MODE={mode!r} is not a W&B mode; set it to online or offline, "
                         f"or pass --wandb-mode")
    if mode == "online" and not has_login():
        raise UsageError("--track logs online but no W&B login was found (WANDB_API_KEY or "
                         "~/.netrc): run `wandb login`, or log offline with --wandb-mode "
                         "offline and upload later with `wandb sync`")


def has_login() -> bool:
    """Whether W&B finds an API key: $WANDB_API_KEY, or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def stored_run_id(paths: RunPaths) -> str:
    """The W&B run id of this training run: the one stored in its results folder, or a new
    one, stored there (atomically) before W&B sees it."""
    path = paths.results / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(6)  # W&B ids are short strings of [a-z0-9]
    paths.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, run_id + "\n")
    return run_id


class Tracker:
    """One training run's W&B run. Scalars are buffered by step and sent at `flush`, which
    the experiment calls where it flushes TensorBoard (each log line and evaluation). What
    earlier sessions of the run sent (SENT_FILE) is not sent again: steps before the last one
    they sent, the tags they sent at it, videos of the steps they sent videos for."""

    def __init__(self, run: Any, sent_file: Path):
        self.run = run
        self.pending: dict[int, dict[str, Any]] = {}
        self.sent_file = sent_file
        sent = json.loads(sent_file.read_text()) if sent_file.is_file() else {}
        self.last_step: int = sent.get("step", -1)  # the last step sent so far
        self.tags_at_last: set[str] = set(sent.get("tags", []))  # the tags sent at it
        self.video_steps: set[int] = set(sent.get("video_steps", []))

    @classmethod
    def open(cls, args: argparse.Namespace, paths: RunPaths, program: str) -> Tracker:
        """Start, or resume, the W&B run whose id the results folder stores."""
        import wandb

        run = wandb.init(
            project=args.wandb_project, entity=args.wandb_entity, group=args.wandb_group,
            name=paths.file_name, id=stored_run_id(paths), resume="allow", job_type=program,
            mode=args.wandb_mode, dir=str(paths.results),
            config={**settings_of(args), "program": program, "code_version": code_version()},
            settings=wandb.Settings(quiet=True))
        run.define_metric("global_step")
        run.define_metric("*", step_metric="global_step")
        return cls(run, paths.results / SENT_FILE)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.pending.setdefault(step, {})[tag] = value

    def flush(self) -> None:
        for step in sorted(s for s in self.pending if s >= self.last_step):
            unsent = {tag: value for tag, value in self.pending[step].items()
                      if step > self.last_step or tag not in self.tags_at_last}
            if not unsent:
                continue
            self.run.log({"global_step": step, **unsent})
            if step > self.last_step:
                self.last_step, self.tags_at_last = step, set()
            self.tags_at_last |= set(unsent)
        self.pending.clear()

    def videos(self, files: list[Path], step: int) -> None:
        """The evaluation's MP4s (one per actor and the chain's), as W&B videos."""
        import wandb

        if step in self.video_steps:  # an earlier session sent this evaluation's videos
            return
        self.video_steps.add(step)
        self.run.log({"global_step": step,
                      **{f"video/{path.stem.split('_', 2)[2]}": wandb.Video(str(path),
                                                                          format="mp4")
                         for path in files if path.exists()}})

    def finish(self, exit_code: int = 0, summary: dict[str, Any] | None = None) -> None:
        """Send what is buffered, the final summary if given, and close the W&B run (exit code
        nonzero for a stopped or diverged session, which a resume continues)."""
        self.flush()
        if summary:
            self.run.summary.update(summary)
        self.run.finish(exit_code=exit_code)
        atomic_write_json(self.sent_file, {  # W&B has all of this now
            "step": self.last_step, "tags": sorted(self.tags_at_last),
            "video_steps": sorted(self.video_steps)})
