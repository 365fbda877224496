"""Run a sweep: YAML → validated grid → training-script processes → status table → results.

    python run_sac.py --config config_sac.yaml --dry-run     # every command and where it writes
    python run_sac.py --config config_sac.yaml               # run it here (--jobs K at once)
    python run_sac.py --config config_sac.yaml --launcher slurm --partition gpu --gpus-per-task 1
    python run_sac.py --config config_sac.yaml --summarize   # tables and learning curves
    python run_sac.py --config config_sac.yaml --rebuild-summaries   # unreadable summary.json

The grid is enabled task × w2 setting × seed; one process of the file's training script
(`script:`, default train_sac.py) per run, always started with --resume, so re-running a
sweep skips finished runs (summary.json) and continues unfinished ones from their
checkpoints. The tasks are named for the script: `environments:` and
`common.enabled_environments` for train_sac.py, `datasets:` and `common.enabled_datasets`
for train_pogo.py (its SWEEP_SECTION). Every YAML key other than the sweep keys (seeds,
enabled_{tasks}, w2_weights, w2_weights_list) is a flag of the script by one rule:
`batch_size` or `batch-size` → `--batch-size=VALUE`, true/false → `--flag`/`--no-flag`.

The whole file is validated before anything starts, against the script's own parser and
checks (the script is imported on first use; neither it nor the sweep imports torch at
import time, so `--help` stays instant).

The file is read once, at start: editing it while a sweep runs changes nothing of that
sweep; the next run of run_sac.py validates the edited file like any other (new runs start,
finished ones are skipped, and runs whose settings changed after they wrote results are
refused by the script's resume check before anything starts). A run killed mid-sweep is
`failed` in the status table (exit status 1) and resumes from its checkpoint on the next
run. A finished run whose summary.json is unreadable is `corrupt` (exit status 1): never
re-run or overwritten, with a note saying what is wrong; --rebuild-summaries writes it
again from the run's metrics CSV (its final evaluation).

The rooms, in the package sweeps/: config.py (the file and the grid), script.py (the
training script and its runs), plan.py (launch order, runs at once, threads, GPU flags
checked), launch.py (processes, logs, local pool, submitit), gpus.py (this machine's GPUs,
--gpus checked), view.py (logs read back, live view, status table); this file: the CLI, the
dry run, the sweep and its report, the summary.

Per run, next to the script's own outputs:
    {results_dir}/logs/{file_name}.log       stdout+stderr of every attempt, appended; locked
                                             (flock) while a process works on the run
    {results_dir}/summary/                   --summarize (and the end of a sweep): tables, plots
    {results_dir}/submitit/                  submitit's job files (--launcher slurm/submitit-local)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from sweeps.config import ConfigError, load_sweep
from sweeps.launch import child_env, launch_local, launch_submitit, shell_line
from sweeps.plan import Plan, check_devices, plan_of, results_root
from sweeps.script import CorruptSummary, Run, Script, rebuild_summary
from sweeps.view import ProgressView, RunStatus, check_summaries, status_table
from utils import (OneLineErrorParser, UsageError, non_negative_int, positive_float, positive_int,
                   usage_error)


def fail(message: str) -> NoReturn:
    usage_error("run_sac.py", message)


# --------------------------------------------------------------------------- CLI
def parse_minutes(text: str) -> int:
    """--time as `sbatch --time` reads it: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS;
    seconds round up to a minute. A field after the first must lie within its unit (hours
    below 24 after days, minutes and seconds below 60): an overflowing one is a typo that
    would lengthen the limit unseen. Zero, which Slurm reads as no limit, is refused."""
    forms = {r"(\d+)": "m", r"(\d+):(\d\d)": "ms", r"(\d+):(\d\d):(\d\d)": "hms",
             r"(\d+)-(\d+)": "dh", r"(\d+)-(\d+):(\d\d)": "dhm",
             r"(\d+)-(\d+):(\d\d):(\d\d)": "dhms"}
    fields = next(({unit: int(value) for unit, value in zip(units, match.groups())}
                   for pattern, units in forms.items()
                   if (match := re.fullmatch(pattern, text))), None)
    limits = {"h": 24, "m": 60, "s": 60}
    if fields is None or any(fields[unit] >= limit for unit, limit in limits.items()
                             if unit in fields and unit != next(iter(fields))):
        raise argparse.ArgumentTypeError(
            f"expected sbatch's MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, with "
            f"minutes and seconds below 60 and hours below 24 after days (e.g. 90, 1:30:00, "
            f"1-12), got {text!r}")
    minutes = (fields.get("d", 0) * 1440 + fields.get("h", 0) * 60 + fields.get("m", 0)
               + math.ceil(fields.get("s", 0) / 60))
    if minutes == 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive limit, got {text!r} (Slurm would read it as no limit)")
    return minutes


def gpu_ids(text: str) -> list[str]:
    """--gpus: distinct GPU ids as CUDA_VISIBLE_DEVICES takes them, comma-separated: an
    index, or a UUID as nvidia-smi -L prints it (GPU-…, MIG-…). Anything else would reach
    the runs as a CUDA_VISIBLE_DEVICES that hides every GPU."""
    ids = [part.strip() for part in text.split(",")]
    if not all(re.fullmatch(r"[0-9]+|(?:GPU|MIG)-[0-9A-Za-z/-]+", part) for part in ids):
        raise argparse.ArgumentTypeError(
            f"expected GPU ids such as 0,1 (indices, or GPU-/MIG- UUIDs from nvidia-smi -L), "
            f"got {text!r}")
    if len(set(ids)) != len(ids):  # round-robin would give that GPU more launch slots
        raise argparse.ArgumentTypeError(f"lists a GPU twice ({text!r}); give each GPU once")
    return ids


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="run_sac.py",
        description="Run a sweep of a training script (train_sac.py unless the file names "
                    "another): tasks (environments, or datasets for train_pogo.py) × w2 "
                    "settings × seeds from a YAML file, skipping "
                    "finished runs and resuming unfinished ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config_sac.yaml"),
                        help="sweep file (see config_sac.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="validate, then print every command and where its results go")
    mode.add_argument("--summarize", action="store_true",
                      help="only write the results tables and learning curves")
    mode.add_argument("--rebuild-summaries", action="store_true",
                      help="only rewrite each finished run's unreadable summary.json from its "
                           "metrics CSV's final evaluation (the status table marks such runs "
                           "`corrupt`)")
    local = parser.add_argument_group("running here (--launcher local)")
    local.add_argument("--jobs", type=positive_int, default=None,
                       help="runs at once (default: one per CPU core, fewer if memory is short; "
                            "with Slurm: the job array's parallelism)")
    local.add_argument("--threads-per-job", type=positive_int, default=None,
                       help="OMP/MKL threads per run (default: cores // jobs, at least 1; "
                            "with Slurm: --cpus-per-task)")
    local.add_argument("--gpus", type=gpu_ids, default=None,
                       help="GPU ids, each once (indices, or GPU-/MIG- UUIDs from "
                            "nvidia-smi -L), e.g. 0,1: each of the --jobs launch slots keeps one, "
                            "round-robin, and its runs get CUDA_VISIBLE_DEVICES set to it; set "
                            "cuda: true in the YAML")
    local.add_argument("--progress-interval", type=positive_float, default=60.0,
                       help="seconds between progress printouts when stdout is not a terminal")
    cluster = parser.add_argument_group("Slurm (--launcher slurm, through submitit)")
    cluster.add_argument("--launcher", choices=("local", "slurm", "submitit-local"),
                         default="local",
                         help="local: subprocesses here; slurm: one submitit job array; "
                              "submitit-local: that same job array run by submitit's "
                              "LocalExecutor on this machine (all runs at once; for testing)")
    cluster.add_argument("--partition", default=None, help="Slurm partition")
    cluster.add_argument("--time", type=parse_minutes, default=1440,
                         help="time limit per job, as sbatch --time reads it (90, 1:30:00, "
                              "1-12); a job that hits it is requeued and resumes from its "
                              "checkpoint")
    cluster.add_argument("--gpus-per-task", type=non_negative_int, default=0,
                         help="GPUs per run (needs cuda: true in the YAML)")
    cluster.add_argument("--cpus-per-task", type=positive_int, default=4, help="CPUs per run")
    cluster.add_argument("--mem-gb", type=positive_float, default=None,
                         help="memory per run (default: the cluster's)")
    cluster.add_argument("--max-requeues", type=non_negative_int, default=5,
                         help="times a job may be requeued after hitting --time")
    cluster.add_argument("--slurm-extra", type=key_value, action="append", default=[],
                         metavar="KEY=VALUE",
                         help="extra #SBATCH setting, e.g. account=myproj (repeatable)")
    cluster.add_argument("--submitit-dir", type=Path, default=None,
                         help="submitit's job files (default: {results_dir}/submitit)")
    cluster.add_argument("--detach", action="store_true",
                         help="submit and exit instead of following the jobs")
    output = parser.add_argument_group("results")
    output.add_argument("--summary-dir", type=Path, default=None,
                        help="tables and plots (default: {results_dir}/summary)")
    output.add_argument("--no-summary", action="store_true",
                        help="do not write the results summary at the end of a sweep")
    return parser


def dry_run(runs: list[Run], plan: Plan, args: argparse.Namespace) -> None:
    """The plan, and every run's state, paths and command as one shell line."""
    print(f"{len(runs)} runs from {args.config}: {len(runs) - len(plan.todo)} finished "
          f"(skipped), {len(plan.todo)} to run, launched seed by seed (every cell's first seed "
          f"first)")
    if args.launcher == "local":
        print(f"launcher local: {plan.jobs} at once ({plan.why}), {plan.threads} thread(s) each"
              + (f"; launch slot k keeps GPU k mod {len(plan.gpus)} of {','.join(plan.gpus)} "
                 f"(CUDA_VISIBLE_DEVICES)" if plan.gpus else ""))
    else:
        print(f"launcher {args.launcher}: one submitit job array of {len(plan.todo)} task(s), "
              f"{plan.jobs} at once; time {args.time} min, {args.cpus_per_task} CPUs, "
              f"{args.gpus_per_task} GPUs per task"
              + (f", partition {args.partition}" if args.partition else "")
              + (f", {args.mem_gb} GB" if args.mem_gb else "")
              + f"; job files in {plan.folder}")
    for run in runs:
        if run.finished and (problem := run.summary_problem()) is not None:
            state = (f"finished, but summary.json unreadable ({problem}): skip; see "
                     f"--rebuild-summaries")
        elif run.finished:
            state = "finished: skip"
        elif run.latest_checkpoint.exists():
            state = f"resume from {run.latest_checkpoint}"
        elif run.results.exists():
            state = "started before, no checkpoint: starts over"
        else:
            state = "new"
        print(f"\n# {run.file_name} [{state}]")
        print(f"#   results {run.results}  log {run.log}")
        print(shell_line(run.command, child_env(plan.threads)))


# --------------------------------------------------------------------------- the sweep
def summarize(runs: list[Run], summary_dir: Path) -> None:
    """plot_results' tables and learning curves of the runs' metrics CSVs (a finished run
    whose summary.json is unreadable counts as finished, with a warning)."""
    from reports import curves as plot_results
    for run in runs:
        if run.finished and (problem := run.summary_problem()) is not None:
            print(f"run_sac.py: warning: {run.summary_json} unreadable ({problem}); the "
                  f"summary uses the run's metrics CSV as usual (see --rebuild-summaries)",
                  file=sys.stderr)
    records = [plot_results.RunRecord(task=r.task, w2_weights=r.w2_weights, seed=r.seed,
                                      metrics_csv=r.metrics_csv, finished=r.finished)
               for r in runs]
    plot_results.write_summary(records, summary_dir)


def launch(runs: list[Run], plan: Plan, args: argparse.Namespace, script: Script,
           summary_dir: Path) -> int:
    """Start the plan's runs, follow them, then the status table and the summary."""
    states = [RunStatus(run=run) for run in plan.todo]
    done = [RunStatus(run=run, status="skipped") for run in runs if run.finished]
    view = ProgressView(states, args.progress_interval)
    print(f"{len(runs)} runs: {len(done)} finished already (skipped), {len(plan.todo)} to run; "
          + (f"{plan.jobs} at once ({plan.why}), {plan.threads} thread(s) each"
             if args.launcher == "local"
             else f"launcher {args.launcher}, {plan.threads} thread(s) each")
          + (f", GPUs {','.join(plan.gpus)}" if plan.gpus else ""), flush=True)
    stopped = None
    try:
        if plan.todo and args.launcher == "local":
            stopped = launch_local(states, plan.jobs, plan.threads, plan.gpus, view)
        elif plan.todo:
            stopped = launch_submitit(states, args, plan.threads, plan.folder, view,
                                      f"{script.path.stem}-sweep")
            if args.detach:
                return 0
    except UsageError as error:  # a log that cannot be locked, at the first run it starts
        fail(str(error))
    return report(runs, states + done, stopped, args, summary_dir)


def report(runs: list[Run], states: list[RunStatus], stopped: int | None,
           args: argparse.Namespace, summary_dir: Path) -> int:
    """The status table, the summary (unless stopped), and the exit status."""
    by_name = {s.run.file_name: s for s in states}
    ordered = [by_name[run.file_name] for run in runs]
    corrupt = check_summaries(ordered, args.config)
    print("\n" + status_table(ordered), flush=True)
    failed = [s for s in ordered if s.status == "failed"]
    if stopped is None and not args.no_summary and any(r.metrics_csv.exists() for r in runs):
        print()
        summarize(runs, summary_dir)
    if stopped is not None:
        return 128 + stopped
    if failed:
        print(f"\n{len(failed)} run(s) failed; see their logs. Re-running the sweep retries "
              f"them and skips the finished ones.", file=sys.stderr)
    if corrupt:
        print(f"\n{len(corrupt)} finished run(s) have an unreadable summary.json (see the "
              f"notes under their rows); they are not re-run. Rebuild it from the metrics CSV "
              f"with: python run_sac.py --config {shlex.quote(str(args.config))} "
              f"--rebuild-summaries", file=sys.stderr)
    return 1 if failed or corrupt else 0


def rebuild_summaries(runs: list[Run]) -> int:
    """--rebuild-summaries: each finished run's unreadable summary.json, written again from
    its metrics CSV. 0 if every one was rebuilt (or none needed it), else 1."""
    broken = [(run, problem) for run in runs
              if run.finished and (problem := run.summary_problem()) is not None]
    if not broken:
        print(f"{len(runs)} runs: every finished run's summary.json is readable; nothing to do")
        return 0
    left = 0
    for run, problem in broken:
        try:
            source = rebuild_summary(run)
        except CorruptSummary as error:
            left += 1
            print(f"run_sac.py: error: cannot rebuild {run.summary_json} ({problem}): {error}; "
                  f"delete {run.results} to train the run again", file=sys.stderr)
            continue
        print(f"rebuilt {run.summary_json} ({problem}) from the {source}")
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.launcher != "local" and args.gpus:
        fail("--gpus pins runs on this machine; with Slurm use --gpus-per-task")
    try:
        runs, script = load_sweep(args.config,
                                 thorough=not (args.summarize or args.rebuild_summaries))
    except ConfigError as error:
        for problem in error.problems:
            print(f"run_sac.py: error: {problem}", file=sys.stderr)
        return 2
    summary_dir = args.summary_dir or results_root(runs) / "summary"
    if args.summarize:
        summarize(runs, summary_dir)
        return 0
    if args.rebuild_summaries:
        return rebuild_summaries(runs)
    plan = plan_of(runs, args)
    try:
        check_devices(plan, args)
    except UsageError as error:
        fail(str(error))
    if args.dry_run:
        dry_run(runs, plan, args)
        return 0
    if args.launcher == "slurm" and plan.todo and shutil.which("srun") is None:
        fail("--launcher slurm needs Slurm's srun on PATH (run it on a login node); "
             "--launcher submitit-local runs the same job array on this machine")
    return launch(runs, plan, args, script, summary_dir)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before anything was launched
        print("\nrun_sac.py: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. --dry-run | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
