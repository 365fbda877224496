"""The skeleton of one training run, shared by train_sac.py and train_pogo.py: the checks
before any work, evaluation with its video recorder, the checkpoint-due rule, the update
call with its finite check, the final evaluation and finishing.

A training script holds only what differs: its flags and their checks, what it trains on
(`open_task`: an environment, or a dataset and the environment it is evaluated on), and a
Trainer subclass that builds its agent and data and runs its loop. Torch, Gymnasium and
TensorBoard are imported only when a run is built, so a script's `--help` stays instant.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from training import run_setup
from training.evaluation import Evaluator
from training.experiment import Experiment, first_line
from training.final_checkpoint import final_checkpoint
from training.run_setup import (RunPaths, check_cuda, finished_already, settings_of,
                                use_threads)
from utils import StopRequest, UsageError, code_version, usage_error
from video.recording import RunVideos, check_capture, prefer_headless

MEMORY_OVERHEAD_BYTES = 600 * 2**20  # torch + MuJoCo + Python per process (resident)


@dataclass(frozen=True)
class Task:
    """What a run trains on, as its checks built it: the environment it is evaluated on (id,
    keyword arguments and one built copy), the dataset of an offline run (or of an online
    one's minibatches), and the run it starts from, if any: that run's final checkpoint
    (None when the run resumes from its own) and the link to it the run keeps
    (offline/to_online.py)."""
    env_id: str
    env: Any
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    init: Any = None
    init_link: dict[str, Any] | None = None


def parse_and_check(program: str, parser: argparse.ArgumentParser, argv: list[str] | None,
                    validate_args: Callable[[argparse.Namespace], None],
                    open_task: Callable[[argparse.Namespace, RunPaths], Task],
                    run_paths: Callable[[argparse.Namespace], RunPaths]
                    ) -> tuple[argparse.Namespace, RunPaths, Task]:
    """A training script's flags, its run paths and its task, or one line and exit status 2:
    the flags' own checks, the GPU, the task (environment or dataset), video capture, then
    the resume rules. Nothing is written before all of them pass. A finished run needs only
    the flags' checks (its task is None): it is reported and left alone, even if the data or
    the run it started from have moved since."""
    def checks(args: argparse.Namespace) -> tuple[RunPaths, Task | None]:
        args.thread_environment = use_threads(args.threads)  # before torch loads
        validate_args(args)
        paths = run_paths(args)
        if paths.summary_json.exists():
            return paths, None
        check_cuda(args)
        prefer_headless(args)  # MUJOCO_GL before MuJoCo renders anything
        task = open_task(args, paths)
        check_capture(args, task.env_id, task.env_kwargs)
        return paths, task

    return run_setup.parse_and_check(program, parser, argv, checks)


class Trainer(abc.ABC):
    """One run: its experiment (outputs, checkpoints, stop handling), device, evaluator and
    the latest update's metrics (kept on the device until logged).

    A subclass sets `program` and `modes` (the evaluation modes) and gives:
      build(task)          its agent (`self.agent`), data and `self.update_step`, a call
                           without arguments that makes one update on a fresh minibatch and
                           returns (metrics, whether all are finite as a device tensor);
      policies()           the evaluation policies, one per actor (training/evaluation.py);
      checkpoint_parts()   what its resume checkpoint holds besides the run's counters, and
      restore(checkpoint)  the inverse;
      train()              its loop, made of update(), log_if_due(), evaluate(),
                           checkpoint_if_due() and final_evaluation();
      summary()            the keys it adds to summary.json and the run's length in words;
      algorithm()          its name in the self-contained final checkpoint.
    It may override eval_counters(), eval_measures() and scores (normalised scores, where
    they exist)."""
    program: ClassVar[str]
    modes: ClassVar[tuple[str, ...]]
    scores: Callable[[float], float] | None = None

    def __init__(self, args: argparse.Namespace, paths: RunPaths, task: Task):
        import torch

        self.args, self.task = args, task
        self.experiment = Experiment(self.program, args, paths, args.num_actors)
        self.device = torch.device("cuda" if args.cuda else "cpu")
        self.videos = (RunVideos(args.video_size, paths.results, args.num_actors, task.env_id,
                                 task.env_kwargs, every=args.video_every)
                       if args.capture_video else None)
        self.evaluator = Evaluator(task.env_id, args.num_actors, args.eval_episodes, args.seed,
                                   self.modes, task.env_kwargs,
                                   make_recorded_env=self.videos.make_env if self.videos else None)
        self.metrics: dict[str, Any] = {}  # the latest update's metrics, still on the device
        self.agent: Any = None
        self.update_step: Callable[[], tuple[dict[str, Any], Any]]
        self.build(task)
        if self.experiment.resumed:
            self.experiment.load_checkpoint(self.restore)
        self.experiment.open_writer()
        self.log_clock = time.time()  # the first rate leaves out building and loading

    # -- what a script gives
    @abc.abstractmethod
    def build(self, task: Task) -> None:
        """Build self.agent, the data it learns from, and self.update_step."""

    @abc.abstractmethod
    def policies(self) -> list[Any]:
        """The evaluation policies, one per actor (see training/evaluation.py)."""

    @abc.abstractmethod
    def checkpoint_parts(self) -> dict[str, Any]:
        """The resume checkpoint's parts besides the run's counters and history."""

    @abc.abstractmethod
    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Load what checkpoint_parts() saved."""

    @abc.abstractmethod
    def train(self) -> None:
        """The loop, to --num-steps or until stopped, ending with final_evaluation()."""

    @abc.abstractmethod
    def algorithm(self) -> str:
        """The algorithm's name in the final checkpoint (final_checkpoint.ALGORITHMS)."""

    @abc.abstractmethod
    def summary(self) -> tuple[dict[str, Any], str]:
        """The keys the script adds to summary.json, and the run's length in words."""

    def eval_counters(self) -> dict[str, float]:
        """Counters an evaluation row holds besides the step (e.g. training episodes)."""
        return {}

    def eval_measures(self) -> dict[str, float]:
        """Figures measured at each evaluation besides the returns (TensorBoard eval/ and
        the metrics CSV), e.g. each actor's spread."""
        return {}

    # -- the shared parts
    @property
    def state(self) -> Any:
        return self.experiment.state

    def update(self) -> None:
        """One gradient update; the run stops at the first update with a non-finite metric."""
        self.metrics, finite = self.update_step()
        self.experiment.check_update(self.metrics, finite)

    def log_if_due(self, details: Callable[[], str]) -> None:
        """Every --log-freq steps: the metrics to TensorBoard and a progress line."""
        if self.state.total_steps % self.args.log_freq == 0:
            now = time.time()
            self.experiment.log_training(self.metrics, details(),
                                         self.args.log_freq / (now - self.log_clock))
            self.log_clock = now

    def evaluate(self) -> None:
        """Every actor's fixed-seed evaluation episodes, logged and written out; at every
        --video-every-th evaluation with --capture-video, the first deterministic episode
        of every actor is filmed as it is scored."""
        recorder = (self.videos.start(len(self.state.history), self.state.total_steps)
                    if self.videos else None)  # None: this evaluation is not recorded
        returns = self.evaluator.run(self.policies(), self.device, self.experiment.stop.check,
                                     recorder)
        self.experiment.record_evaluation(returns, self.modes, self.eval_counters(),
                                          self.metrics, self.scores, self.eval_measures())
        if recorder is not None:  # the recorded episodes: deterministic episode 0
            recorder.finish(returns[:, self.modes.index("deterministic"), 0],
                            self.experiment.writer)
            if self.experiment.tracker is not None:
                self.experiment.tracker.videos([*recorder.paths, recorder.chain_path],
                                               self.state.total_steps)

    def final_evaluation(self) -> None:
        """The evaluation at the last step, unless the loop's schedule just made it."""
        history = self.state.history
        if not history or history[-1]["step"] != self.state.total_steps:
            self.evaluate()

    def checkpoint_if_due(self) -> None:
        """Every --checkpoint-freq steps. At the last step the final evaluation comes first,
        so that a resumed run logs nothing at or before its checkpoint's step (TensorBoard
        keeps those events, training/experiment.py open_writer) and its next evaluation
        follows an update (the latest update's metrics, which an evaluation row holds, are
        not checkpointed)."""
        if self.state.total_steps - self.state.last_checkpoint_step >= self.args.checkpoint_freq:
            if self.state.total_steps >= self.args.num_steps:
                self.final_evaluation()
            self.save_checkpoint()

    def save_checkpoint(self) -> None:
        self.experiment.host_metrics(self.metrics)  # never checkpoint a diverged agent
        self.experiment.save_checkpoint(self.checkpoint_parts())

    def final_header(self) -> dict[str, Any]:
        """What the self-contained final checkpoint holds besides the agent's state
        (training/final_checkpoint.py); a script adds its own with `final_extras`."""
        import torch

        space = self.task.env.action_space
        return {"algorithm": self.algorithm(), "program": self.program,
                "code_version": code_version(), "env_id": self.task.env_id,
                "env_kwargs": dict(self.task.env_kwargs),
                "observation_shape": list(self.task.env.observation_space.shape),
                "action_low": torch.as_tensor(space.low, dtype=torch.float32),
                "action_high": torch.as_tensor(space.high, dtype=torch.float32),
                "agent_config": dataclasses.asdict(self.agent.config), "obs_mean": None,
                "obs_std": None, "reference_scores": None, "seed": self.args.seed,
                "steps": self.state.total_steps, "settings": settings_of(self.args),
                **self.final_extras()}

    def final_extras(self) -> dict[str, Any]:
        """A script's own final-checkpoint keys (observation statistics, reference scores)."""
        return {}

    def finish(self) -> None:
        summary, counts = self.summary()
        path = self.experiment.paths.final_checkpoint
        self.experiment.finish(final_checkpoint(self.final_header(), self.agent.state_dict()),
                               {**summary, "final_checkpoint": str(path.resolve())}, counts)


class OfflineTrainer(Trainer):
    """A Trainer of a fixed dataset: one gradient update per step on `self.sampler`'s
    minibatches (offline.data.OfflineSampler), evaluated every --eval-freq steps; the
    sampler's generator is checkpointed with the agent. A subclass builds `self.agent`,
    `self.data` and `self.sampler` and gives policies(), algorithm() and summary()."""

    def checkpoint_parts(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "sampler": self.sampler.state_dict()}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.agent.load_state_dict(checkpoint["agent"])
        self.sampler.load_state_dict(checkpoint["sampler"])

    def train(self) -> None:
        args, state = self.args, self.state
        while state.total_steps < args.num_steps:
            self.experiment.stop.check()
            self.update()
            state.total_steps += 1
            self.log_if_due(lambda: self.data.source)
            if state.total_steps % args.eval_freq == 0:
                self.evaluate()
            self.checkpoint_if_due()
        self.final_evaluation()


def train_to_end(program: str, parse_and_check: Callable[[Any], tuple[Any, RunPaths, Task]],
                 argv: Any, make_trainer: Callable[[Any, RunPaths, Task], Trainer]) -> None:
    """A training script's main: its checks, then nothing for a finished run; else hold the
    run's folders (RunPaths.owned), build the script's Trainer, train with SIGINT and SIGTERM
    handled, and finish.

    During start-up a first SIGINT or SIGTERM is held until the start-up is done (then it
    exits 130 or 143 like one during training): raised inside a third-party import, a
    KeyboardInterrupt can surface as a misleading ImportError ("MuJoCo is not installed").
    A second one interrupts at once."""
    with contextlib.ExitStack() as owned:
        with StopRequest() as start_up:
            args, paths, task = parse_and_check(argv)
            if finished_already(paths):
                return
            try:
                owned.enter_context(paths.owned())  # until the process has finished the run
            except UsageError as error:
                usage_error(program, str(error))
            trainer = build_or_refuse(program, make_trainer, args, paths, task)
        start_up.check()
        trainer.experiment.run(trainer.train, trainer.device)
        trainer.finish()


def build_or_refuse(program: str, make_trainer: Callable[[Any, RunPaths, Task], Trainer],
                    args: Any, paths: RunPaths, task: Task) -> Trainer:
    """The script's Trainer, or one line and exit status 2 if its networks and data do not
    fit in memory (nothing is written before the trainer is built)."""
    try:
        return make_trainer(args, paths, task)
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "allocate" not in str(error):
            raise
        usage_error(program, f"this run does not fit in memory ({first_line(error)}); lower "
                             f"its sizes (--replay-size, --hidden-size)")
