"""Fault trials of the sweep tool: each fault, at a random moment, against a small sweep of
tiny InvertedPendulum runs, then the re-run the sweep asks for; the outcomes are counted.

    OMP_NUM_THREADS=1 python benchmarks/sweep_faults.py --trials 5

The faults (each trial draws its moment, and its victim or variant, at random; a moment is
uniform over a span measured on the reference sweep below):
    kill     SIGKILL of one of the two runs' process (its pid from its log's `=== pid N` line),
             within one run's training time of its `Starting` line (--jobs 2)
    corrupt  run s1's summary.json damaged after s1 finished, while s2 trains or after the
             sweep ended (truncated at a random byte, emptied, made a list, or one key the
             sweep reads removed) (--jobs 1)
    yaml     the YAML edited after the sweep validated it and started s1 (--jobs 1): a seed
             added, a setting changed (lr), or the file made invalid (malformed, or an unknown
             key); after the re-run with the edited file, the file is put back if it was refused
    stop     SIGINT or SIGTERM to the sweep itself after both runs started (--jobs 2)

Every trial's results are compared with one uninterrupted sweep of the same file (metrics
CSV, every column except wall_time_s, and the .npy files, bit for bit: CPU, one thread per
run). The table (markdown) lists each fault's checks and how many trials passed them; a
failed check is printed with its trial's folder (kept with --keep, or on a failure).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
RUN_SAC = REPO / "run_sac.py"
ENV = "InvertedPendulum-v5"
FAULTS = ("kill", "corrupt", "yaml", "stop")
TINY = {"num_actors": 2, "start_steps": 100, "hidden_size": 16, "batch_size": 16,
        "replay_size": 5000, "eval_episodes": 1, "eval_freq": 10, "log_freq": 100,
        "checkpoint_freq": 100}
LAUNCH = ("--threads-per-job", "1", "--no-summary", "--progress-interval", "3600")


def config(num_steps: int, seeds: list[int], **extra) -> dict:
    return {"common": {"seeds": seeds, "enabled_environments": [ENV], "num_steps": num_steps,
                       **TINY, **extra},
            "environments": {ENV: {"w2_weights": [0.0, 0.1]}}}


def name(seed: int) -> str:
    return f"POSAC_{ENV}_s{seed}_w0.0-0.1"


class Trial:
    """One trial's folder, its sweep processes and the checks it passed."""

    def __init__(self, root: Path, num_steps: int, seeds: list[int]):
        root.mkdir(parents=True)
        self.root, self.num_steps = root, num_steps
        self.write(config(num_steps, seeds))
        self.checks: dict[str, bool] = {}
        self.outputs: list[str] = []

    def write(self, data: dict | str) -> None:
        (self.root / "sweep.yaml").write_text(data if isinstance(data, str)
                                              else yaml.safe_dump(data))

    @property
    def results(self) -> Path:
        return self.root / "results"

    def log(self, seed: int) -> Path:
        return self.results / "logs" / f"{name(seed)}.log"

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(RUN_SAC), "--config", "sweep.yaml", *args],
                                cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def finish(self, process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
        out, err = process.communicate(timeout=timeout)
        self.outputs.append(f"$ run_sac.py {' '.join(process.args[4:])}\n{out}{err}")
        return process.returncode, out, err

    def sweep(self, *args: str) -> tuple[int, str, str]:
        return self.finish(self.start(*args))

    def check(self, label: str, ok: bool) -> None:
        self.checks[label] = self.checks.get(label, True) and bool(ok)

    def wait_for(self, condition: Callable[[], bool], process: subprocess.Popen,
                 timeout: float = 300) -> bool:
        """Until `condition` holds (True) or the sweep ended first (False)."""
        deadline = time.time() + timeout
        while not condition():
            if process.poll() is not None or time.time() > deadline:
                return False
            time.sleep(0.02)
        return True

    def logs(self) -> dict[str, str]:
        folder = self.results / "logs"
        return {p.name: p.read_text() for p in folder.iterdir()} if folder.exists() else {}


def row(text: str, seed: int, rest: str) -> bool:
    return re.search(rf"^{re.escape(name(seed))}\s+{rest}", text, re.M) is not None


def pid_of(log: Path) -> int | None:
    found = re.findall(r"^=== pid (\d+)$", log.read_text(), re.M) if log.exists() else []
    return int(found[-1]) if found else None


def metrics(results: Path) -> list[dict[str, str]]:
    path = results / "training" / f"{results.name}_metrics.csv"
    with open(path, newline="") as handle:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(handle)]


def same_results(trial: Trial, reference: Path, seeds: list[int]) -> bool:
    """Every run finished, with the uninterrupted sweep's metrics CSV (but wall_time_s) and
    .npy files."""
    for seed in seeds:
        mine, theirs = trial.results / name(seed), reference / name(seed)
        npys = sorted(p.name for p in theirs.glob("*.npy"))
        if not (mine / "summary.json").exists() or not npys:
            return False
        if any((mine / n).read_bytes() != (theirs / n).read_bytes() for n in npys):
            return False
        if metrics(mine) != metrics(theirs):
            return False
    return True


def no_traceback(trial: Trial) -> bool:
    return not any("Traceback" in output for output in trial.outputs)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- the faults
def kill_trial(trial: Trial, rng: random.Random, span: float, reference: Path) -> str:
    """SIGKILL one run's process at a random moment of its life."""
    victim, other = rng.choice([(1, 2), (2, 1)])
    checkpoint = trial.root / "checkpoints" / ENV / f"{name(victim)}_latest.pt"
    process = trial.start("--jobs", "2", *LAUNCH)
    trial.wait_for(lambda: trial.log(victim).exists()
                   and "\nStarting " in trial.log(victim).read_text(), process)
    time.sleep(rng.uniform(0, span))  # a moment of its training
    pid = pid_of(trial.log(victim))
    if pid is None or process.poll() is not None or not alive(pid):
        trial.finish(process)
        return "the run had ended before the kill"
    had_checkpoint = checkpoint.exists()
    os.kill(pid, signal.SIGKILL)
    code, out, err = trial.finish(process)
    if row(out, victim, "finished"):  # it exited between the check and the kill
        return "the run had ended before the kill"
    trial.check("sweep: the run `failed`, `killed by SIGKILL` under its row, the other "
                "finished, exit 1 with 're-running retries'",
                code == 1 and row(out, victim, r"failed\s+\d+/") and "killed by SIGKILL" in out
                and row(out, other, "finished") and "Re-running the sweep retries them" in err)
    other_log = trial.log(other).read_text()
    code, out, err = trial.sweep("--jobs", "2", *LAUNCH)
    attempt = trial.log(victim).read_text().split("=== run_sac.py ")[-1]
    trial.check("re-run: exit 0, the finished run skipped (its log untouched)",
                code == 0 and row(out, other, "skipped")
                and trial.log(other).read_text() == other_log)
    if had_checkpoint:
        resumed = re.search(r"^Resuming \S+ at step (\d+)", attempt, re.M)
        trial.check("re-run: the killed run resumed from its checkpoint (`Resuming … at step "
                    "N`, N > 0)", resumed is not None and int(resumed.group(1)) > 0)
    else:
        trial.check("re-run: the killed run (no checkpoint yet) started over",
                    re.search(r"^Starting \S+ at step 0", attempt, re.M) is not None)
    trial.check("results equal to the uninterrupted sweep's",
                same_results(trial, reference, [1, 2]))
    return "after its first checkpoint" if had_checkpoint else "before its first checkpoint"


def corrupt_summary(path: Path, rng: random.Random) -> str:
    """Damage a summary.json one of four ways; which one."""
    text = path.read_text()
    kind = rng.choice(["truncated", "empty", "not an object", "key removed"])
    if kind == "truncated":
        path.write_text(text[:rng.randrange(0, len(text.rstrip()) - 1)])
    elif kind == "empty":
        path.write_text("")
    elif kind == "not an object":
        path.write_text(json.dumps(list(json.loads(text))))
    else:
        summary = json.loads(text)
        key = rng.choice(["steps", "wall_time_s", "final_eval", "final_eval.actor_1"])
        if key == "final_eval.actor_1":
            del summary["final_eval"]["actor_1_deterministic"]
        else:
            del summary[key]
        path.write_text(json.dumps(summary))
    return kind


def corrupt_trial(trial: Trial, rng: random.Random, span: float, reference: Path) -> str:
    """Damage run s1's summary.json at a random moment after it finished (s2 then runs)."""
    process = trial.start("--jobs", "1", *LAUNCH)
    summary = trial.results / name(1) / "summary.json"
    trial.wait_for(summary.exists, process)
    time.sleep(rng.uniform(0, span))
    running = process.poll() is None
    original = json.loads(summary.read_text())
    kind = corrupt_summary(summary, rng)
    damaged = summary.read_bytes()
    files = {p: p.read_bytes() for p in (trial.results / name(1)).rglob("*")
             if p.is_file() and p.name != "summary.json"}
    label = ("sweep (if it ended after the damage) and its re-run: s1 `corrupt`, the note "
             "naming what is wrong and the fix, exit 1; s2 unaffected")
    code, out, err = trial.finish(process)
    trial.check(label, code == 0 and row(out, 2, "finished")
                or code == 1 and row(out, 1, "corrupt") and row(out, 2, "finished"))
    code, out, err = trial.sweep("--jobs", "1", *LAUNCH)  # the re-run: nothing to train
    trial.check(label, code == 1 and row(out, 1, r"corrupt\s+\d+/") and row(out, 2, "skipped")
                and "summary.json unreadable (" in out and "--rebuild-summaries" in out)
    trial.check("nothing re-trained or overwritten (s1's log, CSV, .npy, the damaged "
                "summary.json)",
                summary.read_bytes() == damaged
                and all(p.read_bytes() == data for p, data in files.items())
                and trial.log(1).read_text().count("=== pid") == 1)
    code, out, err = trial.sweep("--summarize")
    trial.check("--summarize: exit 0, the tables written, a warning naming summary.json",
                code == 0 and (trial.results / "summary" / "summary.csv").exists()
                and "summary.json unreadable" in err)
    code, out, err = trial.sweep("--rebuild-summaries")
    rebuilt = json.loads(summary.read_text()) if code == 0 else {}
    trial.check("--rebuild-summaries: exit 0, final_eval and steps as in the lost summary.json",
                code == 0 and rebuilt.get("final_eval") == original["final_eval"]
                and rebuilt.get("steps") == original["steps"])
    code, out, err = trial.sweep("--jobs", "1", *LAUNCH)
    trial.check("next sweep: exit 0, both skipped; results equal to the uninterrupted sweep's",
                code == 0 and row(out, 1, "skipped") and row(out, 2, "skipped")
                and same_results(trial, reference, [1, 2]))
    return f"{kind} {'while the sweep ran' if running else 'after it ended'}"


EDITS = {
    "seed 3 added": lambda n: config(n, [1, 2, 3]),
    "lr changed": lambda n: config(n, [1, 2], lr=0.001),
    "malformed YAML": lambda n: yaml.safe_dump(config(n, [1, 2])).replace("common:",
                                                                          "common: [", 1),
    "unknown key": lambda n: config(n, [1, 2], batch_sise=32),
}


def yaml_trial(trial: Trial, rng: random.Random, span: float, reference: Path) -> str:
    """Edit the YAML at a random moment after the sweep validated it and started s1."""
    edit = rng.choice(list(EDITS))
    process = trial.start("--jobs", "1", *LAUNCH)
    trial.wait_for(trial.log(1).exists, process)
    time.sleep(rng.uniform(0, span))
    before = (trial.root / "sweep.yaml").read_text()
    running = process.poll() is None
    trial.write(EDITS[edit](trial.num_steps))
    code, out, err = trial.finish(process)
    saved = [saved_lr(trial.results / name(s)) for s in (1, 2)]
    trial.check("running sweep kept the plan it validated: exit 0, its 2 runs finished with "
                "the original settings, nothing else started",
                code == 0 and row(out, 1, "finished") and row(out, 2, "finished")
                and saved == [0.0003, 0.0003] and not (trial.results / name(3)).exists())
    logs = trial.logs()
    ok = True
    code, out, err = trial.sweep("--jobs", "1", *LAUNCH)
    lines = err.splitlines()
    if edit == "seed 3 added":
        ok = (code == 0 and "3 runs: 2 finished already (skipped), 1 to run" in out
              and row(out, 3, "finished")
              and {k: v for k, v in trial.logs().items() if k in logs} == logs)
    else:
        expected = {"lr changed": 2, "malformed YAML": 1, "unknown key": 1}[edit]
        ok = (code == 2 and out == "" and len(lines) == expected
              and all(line.startswith("run_sac.py: error: sweep.yaml") for line in lines)
              and trial.logs() == logs)
    trial.check("re-run with the edited file: a new run starts and the finished are skipped; "
                "a changed setting or an invalid file: one line per problem, exit 2, nothing "
                "started", ok)
    seeds = [1, 2, 3] if edit == "seed 3 added" else [1, 2]
    if edit != "seed 3 added":  # the user puts the file back
        trial.write(before)
        code, out, err = trial.sweep("--jobs", "1", *LAUNCH)
        ok = code == 0 and row(out, 1, "skipped") and row(out, 2, "skipped")
    trial.check("results equal to the uninterrupted sweep's (after the file is put back)",
                ok and same_results(trial, reference, seeds))
    return f"{edit} {'while the sweep ran' if running else 'after it ended'}"


def saved_lr(results: Path) -> float | None:
    try:
        return json.loads((results / "config.json").read_text())["lr"]
    except (OSError, ValueError, KeyError):
        return None


def stop_trial(trial: Trial, rng: random.Random, span: float, reference: Path) -> str:
    """SIGINT or SIGTERM to the sweep at a random moment while its runs train."""
    signum = rng.choice([signal.SIGINT, signal.SIGTERM])
    process = trial.start("--jobs", "2", *LAUNCH)
    trial.wait_for(lambda: bool(pid_of(trial.log(1)) and pid_of(trial.log(2))), process)
    time.sleep(rng.uniform(0, span))
    pids = [pid_of(trial.log(s)) for s in (1, 2)]
    if process.poll() is not None:
        trial.finish(process)
        variant = "after the sweep ended"
    else:
        process.send_signal(signum)
        code, out, _ = trial.finish(process)
        if "interrupted" in out:
            variant = "while runs trained"
            trial.check("sweep: exit 128 + signal, the running runs `interrupted` with the "
                        "checkpoint they resume from, no run process left",
                        code == 128 + signum
                        and ("└ resumes from " in out or "└ no checkpoint yet" in out)
                        and not any(pid and alive(pid) for pid in pids))
        else:
            variant = "after the runs ended"
    code, _, _ = trial.sweep("--jobs", "2", *LAUNCH)
    trial.check("re-run: exit 0; results equal to the uninterrupted sweep's",
                code == 0 and same_results(trial, reference, [1, 2]))
    return f"{signal.Signals(signum).name} {variant}"


TRIALS = {"kill": kill_trial, "corrupt": corrupt_trial, "yaml": yaml_trial, "stop": stop_trial}
TITLES = {"kill": "one run SIGKILLed mid-sweep", "corrupt": "a finished run's summary.json "
          "damaged", "yaml": "the YAML edited mid-sweep", "stop": "SIGINT/SIGTERM to the sweep"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="trials per fault")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset")
    parser.add_argument("--num-steps", type=int, default=400, help="steps per run")
    parser.add_argument("--seed", type=int, default=0, help="of the random moments")
    parser.add_argument("--keep", action="store_true", help="keep every trial's folder")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    faults = [f for f in args.faults.split(",") if f]
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="sweep_faults_"))
    start = time.time()
    reference = Trial(work / "reference", args.num_steps, [1, 2, 3])
    code, out, err = reference.sweep("--jobs", "2", *LAUNCH)
    if code != 0:
        print(out + err, file=sys.stderr)
        return 1
    span = (time.time() - start) * 2 / 3  # about two runs' life, start-up included
    training = max(json.loads((reference.results / name(s) / "summary.json").read_text())
                   ["wall_time_s"] for s in (1, 2, 3))  # one run's training, at 2 at once
    print(f"reference sweep (3 runs, 2 at once): {time.time() - start:.0f} s; a kill at a "
          f"random moment within {training:.0f} s of its run's `Starting` line, other faults "
          f"within {span:.0f} s of their trigger; work folder {work}", flush=True)
    results: dict[str, list[tuple[str, dict[str, bool]]]] = {}
    failed = False
    for fault in faults:
        for index in range(args.trials):
            trial = Trial(work / f"{fault}_{index}", args.num_steps, [1, 2])
            t0 = time.time()
            variant = TRIALS[fault](trial, rng, training if fault == "kill" else span,
                                    reference.results)
            trial.check("no traceback in any output", no_traceback(trial))
            results.setdefault(fault, []).append((variant, trial.checks))
            bad = [label for label, ok in trial.checks.items() if not ok]
            print(f"{fault} #{index + 1}: {variant}: "
                  + (f"FAILED {bad} ({trial.root})" if bad else "all checks passed")
                  + f" [{time.time() - t0:.0f} s]", flush=True)
            if bad:
                failed = True
                (trial.root / "outputs.txt").write_text("\n".join(trial.outputs))
            elif not args.keep:
                shutil.rmtree(trial.root)
    print(f"\n{sum(len(v) for v in results.values())} trials in {time.time() - start:.0f} s "
          f"(python benchmarks/sweep_faults.py --trials {args.trials} --seed {args.seed})\n")
    print("| fault | trials (moment or variant drawn) | outcome | trials |")
    print("|---|---|---|---|")
    for fault, trials in results.items():
        variants: dict[str, int] = {}
        for variant, _ in trials:
            variants[variant] = variants.get(variant, 0) + 1
        drawn = f"{len(trials)} ({', '.join(f'{n} {v}' for v, n in variants.items())})"
        labels: list[str] = []  # each trial's checks in its order, merged
        for _, checks in trials:
            at = -1
            for label in checks:
                if label not in labels:
                    labels.insert(at + 1, label)
                at = labels.index(label)
        for index, label in enumerate(labels):
            passed = sum(checks.get(label, False) for _, checks in trials)
            tried = sum(label in checks for _, checks in trials)
            print(f"| {TITLES[fault] if index == 0 else ''} | {drawn if index == 0 else ''} "
                  f"| {label} | {passed}/{tried} |")
    if not failed and not args.keep:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
