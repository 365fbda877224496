"""What the sweep shows: each run's state read back from its log (the lines experiment.py's
LINE_PATTERNS describe), the live progress view, and the final status table (run_sac.py's
view room). Knows nothing of the algorithm: only the lines every training script prints, the
summary.json it writes last, and (when that is unreadable) its metrics CSV's last row.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.script import CorruptSummary, Run, corrupt_note, last_evaluation
from training.experiment import LINE_PATTERNS
from utils import format_duration


@dataclass
class RunStatus:
    """What the launcher knows about a run, partly read back from its log."""
    run: Run
    # pending queued running finished skipped failed interrupted busy, "not started", corrupt
    status: str = "pending"
    offset: int = 0  # log bytes already parsed
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None
    message: str = ""  # why it failed
    start_step: int = 0
    step: int = 0
    rate: float = 0.0
    eval_step: int | None = None
    returns: dict[int, float] = field(default_factory=dict)
    last_line: str = ""
    error_line: str = ""
    gpu: str | None = None
    job_id: str = ""

    def read_log(self) -> None:
        """Parse what the run wrote since the last call (complete lines only)."""
        try:
            with open(self.run.log, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            self.parse(line)

    def parse(self, line: str) -> None:
        if line.startswith("=== "):  # the sweep's own header and footer lines
            return
        if line.strip():
            self.last_line = line.strip()
        if LINE_PATTERNS["error"].match(line):
            self.error_line = line.strip()
        if match := LINE_PATTERNS["start"].match(line):
            self.start_step = self.step = int(match.group(2))
        if match := LINE_PATTERNS["progress"].match(line):
            self.step = max(self.step, int(match.group(1)))
            self.rate = float(match.group(3))
        if match := LINE_PATTERNS["eval"].match(line):
            self.eval_step = int(match.group(1))
            self.step = max(self.step, self.eval_step)
            self.returns = {}
        if match := LINE_PATTERNS["actor"].match(line):
            self.returns[int(match.group(1))] = float(match.group(2))
        if match := LINE_PATTERNS["finished"].match(line):
            self.step = int(match.group(1))

    def eta(self) -> str:
        total = self.run.num_steps
        if self.status != "running" or self.step >= total:
            return ""
        rate = self.rate  # the script's own, between progress lines (evaluations excluded)
        elapsed = time.time() - self.started
        if self.step > self.start_step and elapsed > 60:
            rate = (self.step - self.start_step) / elapsed  # this attempt's, evaluations included
        return f"ETA {format_duration((total - self.step) / rate)}" if rate > 0 else "ETA ?"

    def line(self) -> str:
        total = self.run.num_steps
        pct = 100.0 * self.step / total if total else 0.0
        evals = ""
        if self.eval_step is not None and self.returns:
            evals = (f"eval@{self.eval_step}: "
                     + " ".join(f"A{i} {r:.1f}" for i, r in sorted(self.returns.items())))
        extra = self.job_id and f"job {self.job_id}"
        return "  ".join(part for part in (
            f"{self.run.file_name}", f"{self.status:<11}",
            f"{self.step:>8}/{total} {pct:5.1f}%", evals, self.eta(), extra) if part)


class ProgressView:
    """A live view, one line per run. On a terminal it redraws in place every second;
    otherwise it prints start/end events and, every `interval` seconds, the running runs."""

    def __init__(self, states: list[RunStatus], interval: float, stream: Any = None):
        self.states, self.interval = states, interval
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.last_print = time.time()
        self.started = time.time()

    def event(self, state: RunStatus, text: str) -> None:
        if not self.tty:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def ended(self, state: RunStatus) -> None:
        self.event(state, f"{state.status:<8} {state.run.file_name}"
                          + (f": {state.message}" if state.message else ""))

    def header(self) -> str:
        counts: dict[str, int] = {}
        for state in self.states:
            counts[state.status] = counts.get(state.status, 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in counts.items())
        return (f"sweep: {len(self.states)} runs ({parts}) | "
                f"{format_duration(time.time() - self.started)}")

    def refresh(self, force: bool = False) -> None:
        for state in self.states:
            if state.status == "running":
                state.read_log()
        if self.tty:
            if force or time.time() - self.last_print >= 1.0:
                self.last_print = time.time()
                self.redraw()
        elif force or time.time() - self.last_print >= self.interval:
            self.last_print = time.time()
            running = [s for s in self.states if s.status == "running"]
            if running:
                print(self.header(), file=self.stream)
                for state in running:
                    print("  " + state.line(), file=self.stream)
                self.stream.flush()

    def redraw(self) -> None:
        width, height = shutil.get_terminal_size()
        shown = self.states
        if len(shown) + 1 > height - 1:  # too many for the screen: the active ones first
            order = {"running": 0, "queued": 1, "failed": 2, "interrupted": 3}
            shown = sorted(self.states, key=lambda s: order.get(s.status, 9))[:max(height - 2, 1)]
        lines = [self.header()] + [state.line() for state in shown]
        out = f"\x1b[{self.drawn}F" if self.drawn else ""
        out += "".join(f"\x1b[2K{line[:width - 1]}\n" for line in lines)
        if len(lines) < self.drawn:
            out += "".join("\x1b[2K\n" for _ in range(self.drawn - len(lines)))
            out += f"\x1b[{self.drawn - len(lines)}F"
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(lines)


# --------------------------------------------------------------------------- the status table
def final_returns(state: RunStatus) -> dict[int, float]:
    """Each actor's final deterministic return: from summary.json for a finished run (which
    also gives its steps and its training time over all attempts); for one whose summary.json
    is unreadable, from its metrics CSV's last evaluation; else from the log."""
    if state.run.finished:
        try:
            summary = state.run.read_summary()
        except CorruptSummary:
            last = last_evaluation(state.run)
            state.step = int(last.get("step", state.step))
            return {i: last[key] for i in range(state.run.num_actors)
                    if (key := f"actor_{i}_deterministic") in last}
        final = summary["final_eval"]
        state.step, state.seconds = summary["steps"], summary["wall_time_s"]
        return {i: final[f"actor_{i}_deterministic"] for i in range(state.run.num_actors)}
    return dict(state.returns)


def check_summaries(states: list[RunStatus], config: Path) -> list[RunStatus]:
    """Finished and skipped runs whose summary.json is unreadable become `corrupt`, with a
    note of what is wrong and what to do. Returns them."""
    corrupt = []
    for state in states:
        if state.status in ("finished", "skipped") and state.run.finished:
            problem = state.run.summary_problem()
            if problem is not None:
                state.status, state.message = "corrupt", corrupt_note(state.run, problem, config)
                corrupt.append(state)
    return corrupt


def status_table(states: list[RunStatus]) -> str:
    """run | status | steps | final deterministic return per actor | wall time | log."""
    actors = max((s.run.num_actors for s in states), default=1)
    rows = [["run", "status", "steps", *(f"actor {i}" for i in range(actors)), "wall", "log"]]
    notes: dict[int, str] = {}
    for state in states:
        returns = final_returns(state)
        rows.append([state.run.file_name, state.status, f"{state.step}/{state.run.num_steps}",
                     *(f"{returns[i]:.2f}" if i in returns else "-" for i in range(actors)),
                     format_duration(state.seconds) if state.seconds else "-",
                     str(state.run.log) if state.run.log.exists() else "-"])
        if state.message:
            notes[len(rows) - 1] = state.message
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if index in notes:
            lines.append(f"    └ {notes[index]}")
    return "\n".join(lines)
