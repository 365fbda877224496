"""Starting the runs: one training-script process per run, its appended and flock-ed log,
the local pool, and the submitit job callable and job array (Slurm, or submitit's
LocalExecutor). run_sac.py's launch room: it knows a run only by its command, log, summary
and checkpoint paths, never what the script trains.

A run's log, {results_dir}/logs/{file_name}.log, gets every attempt appended below a header
(the command with its thread and GPU variables, then the pid) and above a footer (exit
status and duration). While a process works on the run the log is flock-ed, so a second
sweep, or a Slurm job of the same sweep, leaves the run alone (`busy`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import utils
from sweeps.gpus import gpu_of
from sweeps.script import Run
from sweeps.view import ProgressView, RunStatus
from utils import CaughtSignals, format_duration

STOP_GRACE_S = 15.0  # after forwarding SIGINT, wait this long before SIGKILL
# the launch loops stop their runs on these, between polls
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


# --------------------------------------------------------------------------- one run's process
def die_with_parent() -> None:
    """In the child, before exec: SIGKILL this process if its supervisor dies (Linux), so a
    crashed launcher or job never leaves an unsupervised run writing its checkpoints."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env(threads: int, gpu: str | None = None) -> dict[str, str]:
    """What a run's environment adds: thread limits (and a pinned GPU)."""
    extra = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
             "OPENBLAS_NUM_THREADS": str(threads)}
    if gpu is not None:  # numbered as nvidia-smi numbers them (CUDA's default is fastest first)
        extra.update(CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=gpu)
    return extra


def shell_line(command: list[str], extra_env: dict[str, str]) -> str:
    """A run's command as one copy-pasteable shell line, its extra environment variables
    first: what --dry-run prints and what heads each attempt in the run's log."""
    return shlex.join([f"{k}={v}" for k, v in extra_env.items()] + command)


def open_locked_log(path: Path) -> Any:
    """The run's log, opened for appending, line-buffered, and flock-ed (utils.locked_file);
    None if another process holds it. The child inherits the descriptor as its stdout, so
    the lock lasts as long as it runs."""
    return utils.locked_file(path, buffering=1)


def start_child(payload: dict[str, Any], log: Any, new_session: bool) -> subprocess.Popen:
    """Start the run's process, stdout and stderr into its log below the attempt's header."""
    log.write(f"=== run_sac.py {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}: "
              f"{shell_line(payload['command'], payload['env'])}\n")
    child = subprocess.Popen(payload["command"], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=payload["cwd"],
                             env={**os.environ, **payload["env"]},
                             start_new_session=new_session, preexec_fn=die_with_parent)
    log.write(f"=== pid {child.pid}\n")
    return child


def end_log(log: Any, returncode: int, seconds: float) -> None:
    """The attempt's footer; closing the log releases its lock."""
    log.write(f"=== run_sac.py: {describe_exit(returncode)} after {format_duration(seconds)}\n")
    log.close()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def stop_child(child: subprocess.Popen, grace: float) -> None:
    """SIGINT (the script stops at once; its last checkpoint stays), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        child.wait()


def payload_of(run: Run, extra_env: dict[str, str]) -> dict[str, Any]:
    """Everything a job needs to run one experiment, as plain picklable values."""
    return {"file_name": run.file_name, "command": run.command, "env": extra_env,
            "cwd": os.getcwd(), "log": str(run.log.resolve()),
            "summary_json": str(run.summary_json.resolve())}


class RunTask:
    """The callable each submitit job runs: one training-script process, with the same lock,
    skip and log rules as the local launcher. On a Slurm timeout or preemption submitit
    calls checkpoint(): the run is stopped and the job requeued; it resumes from the run's
    own checkpoint. Pickled by value (with this module's code), so a job needs nothing of
    this repository on its path."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._child = None

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        log = open_locked_log(Path(payload["log"]))
        if log is None:
            return {"status": "busy", "returncode": None, "seconds": 0.0}
        if Path(payload["summary_json"]).exists():
            log.close()
            return {"status": "skipped", "returncode": 0, "seconds": 0.0}
        start = time.time()
        self._child = start_child(payload, log, new_session=False)
        try:
            returncode = self._child.wait()
        except BaseException:  # a cancel (KeyboardInterrupt), or submitit requeuing the job
            stop_child(self._child, grace=30.0)  # (SystemExit) after checkpoint()
            end_log(log, self._child.returncode, time.time() - start)
            raise
        end_log(log, returncode, time.time() - start)
        return {"status": "finished" if returncode == 0 else "failed",
                "returncode": returncode, "seconds": time.time() - start}

    def checkpoint(self, payload: dict[str, Any]) -> Any:
        """Called by submitit's signal handler while __call__ waits on the child. It only
        sends SIGINT: waiting here would wait on the lock __call__'s wait() holds. submitit
        then requeues and exits, and __call__ reaps the child on the way out."""
        import submitit

        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                self._child.send_signal(signal.SIGINT)
        return submitit.helpers.DelayedSubmission(RunTask(), payload)


# --------------------------------------------------------------------------- outcomes
# how a run the sweep stopped exits: the script's own exit on SIGINT or SIGTERM, or killed by
# a signal
STOPPED_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT,
                      -signal.SIGTERM, -signal.SIGKILL)


def mark_interrupted(state: RunStatus) -> None:
    """A run stopped by the sweep: where it will resume from."""
    state.status = "interrupted"
    state.message = (f"resumes from {state.run.latest_checkpoint}"
                     if state.run.latest_checkpoint.exists() else "no checkpoint yet: starts over")


def finish_state(state: RunStatus, returncode: int, log: Any) -> None:
    """A local run's process ended: close its log and read how it went."""
    state.seconds = time.time() - state.started
    state.returncode = returncode
    end_log(log, returncode, state.seconds)
    state.read_log()
    if returncode == 0 and state.run.finished:
        state.status = "finished"
    else:
        state.status = "failed"
        state.message = state.error_line or (
            f"{describe_exit(returncode)}; last line: {state.last_line}" if state.last_line
            else describe_exit(returncode))


# --------------------------------------------------------------------------- local pool
class Child(NamedTuple):
    state: RunStatus
    process: subprocess.Popen
    log: Any


def start_next(pending: list[RunStatus], threads: int, gpu: str | None,
               view: ProgressView) -> Child | None:
    """Start the first pending run that is neither finished nor busy; None if none is left."""
    while pending:
        state = pending.pop(0)
        if state.run.finished:  # finished since the sweep started (another launcher)
            state.status = "skipped"
            continue
        log = open_locked_log(state.run.log)
        if log is None:
            state.status, state.message = "busy", "another process holds its log lock"
            view.event(state, f"busy     {state.run.file_name} (another process is running it)")
            continue
        state.gpu = gpu
        payload = payload_of(state.run, child_env(threads, gpu))
        state.offset = state.run.log.stat().st_size  # read this attempt only
        process = start_child(payload, log, new_session=True)
        state.status, state.started = "running", time.time()
        view.event(state, f"started  {state.run.file_name} (log {state.run.log})")
        return Child(state, process, log)
    return None


def launch_local(states: list[RunStatus], jobs: int, threads: int, gpus: list[str],
                 view: ProgressView, grace: float = STOP_GRACE_S) -> int | None:
    """Run the pending runs, `jobs` at a time, the run in slot k on GPU gpu_of(k). Returns
    the signal number that stopped the sweep, or None when every run ended."""
    pending = [s for s in states if s.status == "pending"]
    slots: list[Child | None] = [None] * jobs
    with CaughtSignals(*STOP_SIGNALS) as stop:
        while (pending or any(slots)) and not stop.count:
            for slot in range(jobs):
                if slots[slot] is None and pending:
                    slots[slot] = start_next(pending, threads, gpu_of(slot, gpus), view)
            for slot, child in enumerate(slots):
                if child is not None and child.process.poll() is not None:
                    slots[slot] = None
                    finish_state(child.state, child.process.returncode, child.log)
                    view.ended(child.state)
            view.refresh()
            if pending or any(slots):
                time.sleep(0.2)
        if stop.count:
            return stop_local([c for c in slots if c is not None], pending, stop, view, grace)
    view.refresh(force=True)
    return None


def stop_local(running: list[Child], pending: list[RunStatus], stop: CaughtSignals,
               view: ProgressView, grace: float) -> int | None:
    """SIGINT to every running run's process group; SIGKILL after `grace` seconds or at the
    next signal. The runs stay resumable."""
    print(f"\n{SIGNAL_NAMES.get(stop.signum, 'signal')}: stopping {len(running)} running "
          f"run(s); re-run the same command to resume them from their checkpoints "
          f"(Ctrl-C again kills them now)", file=sys.stderr, flush=True)
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGINT)
    deadline, count = time.time() + grace, stop.count
    while any(child.process.poll() is None for child in running):
        if time.time() > deadline or stop.count > count:
            for child in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
        time.sleep(0.1)
    for child in running:
        finish_state(child.state, child.process.returncode, child.log)
        # a run may also have finished or failed on its own during the grace period
        if child.process.returncode in STOPPED_EXIT_CODES:
            mark_interrupted(child.state)
    for state in pending:
        state.status = "not started"
    view.refresh(force=True)
    return stop.signum


# --------------------------------------------------------------------------- submitit
def make_executor(args: argparse.Namespace, folder: Path, array_parallelism: int,
                  name: str) -> Any:
    """submitit's executor for Slurm, or its LocalExecutor, with the CLI's resources."""
    import submitit

    cluster = "slurm" if args.launcher == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster,
                                     slurm_max_num_timeout=args.max_requeues)
    executor.update_parameters(
        name=name, timeout_min=args.time, nodes=1, tasks_per_node=1,
        cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_task, mem_gb=args.mem_gb,
        slurm_partition=args.partition, slurm_array_parallelism=array_parallelism,
        slurm_additional_parameters=dict(args.slurm_extra) or None)
    return executor


def submit(todo: list[RunStatus], args: argparse.Namespace, threads: int, folder: Path,
           name: str) -> list[Any]:
    """One submitit job array, a RunTask per run; the jobs import nothing of this repository
    (this module and utils travel by value), so they start from any working directory."""
    import cloudpickle

    for module in (sys.modules[__name__], utils):
        cloudpickle.register_pickle_by_value(module)
    executor = make_executor(args, folder, args.jobs or len(todo), name)
    jobs = executor.map_array(RunTask(), [payload_of(s.run, child_env(threads)) for s in todo])
    for state, job in zip(todo, jobs):
        state.status, state.job_id = "queued", str(job.job_id)
        state.offset = state.run.log.stat().st_size if state.run.log.exists() else 0
    return jobs


def launch_submitit(states: list[RunStatus], args: argparse.Namespace, threads: int,
                    folder: Path, view: ProgressView, name: str) -> int | None:
    """Submit the pending runs as one job array named `name`, then (unless --detach) follow
    it. Returns the signal number that stopped the sweep, or None."""
    todo = [s for s in states if s.status == "pending"]
    jobs = submit(todo, args, threads, folder, name)
    print(f"submitted {len(jobs)} run(s) through submitit: "
          + (f"Slurm job array {jobs[0].job_id.split('_')[0]}" if args.launcher == "slurm"
             else f"local jobs {', '.join(str(job.job_id) for job in jobs)}")
          + f" (submitit files in {folder})", flush=True)
    if args.detach:
        for state in todo:
            print(f"  {state.job_id}  {state.run.file_name}  log {state.run.log}")
        return None
    return follow_jobs(list(zip(todo, jobs)), 2.0 if args.launcher == "slurm" else 0.5, view)


def follow_jobs(waiting: list[tuple[RunStatus, Any]], poll: float,
                view: ProgressView) -> int | None:
    """Follow the jobs until they end (every `poll` seconds: done() reads the shared file
    system); on a stop signal cancel the rest, which stay resumable."""
    with CaughtSignals(*STOP_SIGNALS) as stop:
        while waiting and not stop.count:
            for state, job in list(waiting):
                if state.status == "queued" and job.state.upper() in ("RUNNING", "COMPLETING"):
                    state.status, state.started = "running", time.time()
                    view.event(state, f"started  {state.run.file_name} (job {state.job_id})")
                if job.done():
                    waiting.remove((state, job))
                    collect_job(state, job)
                    view.ended(state)
            view.refresh()
            time.sleep(poll)
        if stop.count:
            return cancel_jobs(waiting, stop)
    view.refresh(force=True)
    return None


def cancel_jobs(waiting: list[tuple[RunStatus, Any]], stop: CaughtSignals) -> int | None:
    """Cancel the jobs still going (their runs stay resumable); the stopping signal."""
    print(f"\nstopping: cancelling {len(waiting)} job(s); re-run the same command to "
          f"resume them from their checkpoints", file=sys.stderr, flush=True)
    for _, job in waiting:
        job.cancel(check=False)
    deadline = time.time() + STOP_GRACE_S
    while time.time() < deadline and not all(job.done() for _, job in waiting):
        time.sleep(0.2)
    for state, _ in waiting:
        state.read_log()
        if state.status == "running":
            mark_interrupted(state)
        else:
            state.status = "not started"
    return stop.signum


def collect_job(state: RunStatus, job: Any) -> None:
    """A job ended: its RunTask's result, or why the job itself failed."""
    state.read_log()
    try:
        result = job.result()
    except Exception as error:  # the job itself failed (node failure, cancelled, …)
        state.status = "failed"
        state.message = f"job {state.job_id}: {str(error).strip().splitlines()[-1]}"
        return
    state.returncode = result["returncode"]
    state.seconds = result["seconds"]
    state.status = result["status"]
    if state.status == "finished" and not state.run.finished:
        state.status = "failed"
    if state.status == "failed":
        state.message = state.error_line or (f"{describe_exit(state.returncode)}; last line: "
                                             f"{state.last_line}")
