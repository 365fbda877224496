"""training/experiment.py: a checkpoint written before the metric renames (POSAC's `lambda`,
POGO's `distance`) resumes with today's names, so the resumed run's CSV has one column per
metric; and utils.atomic_write, which writes every checkpoint and results file. (The
whole-run resume checks live in test_train_sac.py and test_train_pogo.py.)"""

import argparse
import os
import stat

import pytest
import torch

from training.experiment import Experiment
from training.run_setup import RunPaths
from utils import atomic_write, atomic_write_text, renamed_metric


def test_old_metric_names_are_renamed_on_resume(tmp_path):
    args = argparse.Namespace(resume=True, results_dir=str(tmp_path / "results"),
                              log_dir=str(tmp_path / "runs"), run_name=None,
                              checkpoint_dir=str(tmp_path / "checkpoints"))
    paths = RunPaths.of(args, "RUN", group="task")
    old_row = {"step": 10, "actor_0_deterministic": 1.5, "lambda_0": 1.0, "lambda_1": 0.25,
               "distance_1": 0.5, "w2_1": 0.5, "critic_loss": 2.0}
    paths.latest_checkpoint.parent.mkdir(parents=True)
    torch.save({"run": {"total_steps": 10, "last_checkpoint_step": 10, "elapsed_before": 1.0,
                        "history": [old_row]}, "agent": {}}, paths.latest_checkpoint)
    experiment = Experiment("train_sac.py", args, paths, num_actors=2)
    experiment.load_checkpoint(lambda checkpoint: None)
    (row,) = experiment.state.history
    assert list(row) == ["step", "actor_0_deterministic", "q_scale_0", "q_scale_1", "w2_1",
                         "critic_loss"]  # order kept; the two spellings of w2_1 are one
    assert row["q_scale_1"] == 0.25 and experiment.state.total_steps == 10


def test_a_checkpoint_resumes_only_under_its_own_settings(tmp_path, capsys):
    """Settings a resumed run may change (threads), and settings only one side has (a flag
    added since; the old checkpoint above has none), are not compared; any other is."""
    args = argparse.Namespace(resume=True, results_dir=str(tmp_path / "results"),
                              log_dir=str(tmp_path / "runs"), run_name=None,
                              checkpoint_dir=str(tmp_path / "checkpoints"), lr=3e-4, threads=1)
    experiment = Experiment("train_sac.py", args, RunPaths.of(args, "RUN", group="task"), 1)
    saved = {**vars(args), "threads": 2, "gone_flag": 1}
    experiment.check_settings({"settings": saved}, tmp_path / "RUN_latest.pt")
    args.new_flag = True
    experiment.check_settings({"settings": saved}, tmp_path / "RUN_latest.pt")
    with pytest.raises(SystemExit) as stopped:
        experiment.check_settings({"settings": {**saved, "lr": 1e-3}}, tmp_path / "RUN_latest.pt")
    assert stopped.value.code == 2
    assert "lr (saved 0.001, now 0.0003)" in capsys.readouterr().err


def test_renamed_metric_leaves_other_names_alone():
    assert [renamed_metric(name) for name in ("lambda_12", "distance", "lambda_x",
                                              "actor_loss_1", "q_scale_0")] == [
        "q_scale_12", "w2", "lambda_x", "actor_loss_1", "q_scale_0"]


def test_atomic_write_replaces_whole_files_readable_as_the_umask_allows(tmp_path):
    path = tmp_path / "run" / "summary.json"
    stale = tmp_path / "run" / ".summary.json.abc123.tmp"  # left by a writer killed earlier
    stale.parent.mkdir()
    stale.write_text("half")
    old_mask = os.umask(0o027)
    try:
        atomic_write_text(path, "first")
    finally:
        os.umask(old_mask)
    assert path.read_text() == "first" and not stale.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    backup = tmp_path / "run" / "summary.previous"
    atomic_write(path, lambda tmp: tmp.write_text("second"), backup=backup)
    assert (path.read_text(), backup.read_text()) == ("second", "first")

    def fails(tmp):
        tmp.write_text("partial")
        raise RuntimeError("the writer died")

    with pytest.raises(RuntimeError):
        atomic_write(path, fails)
    assert path.read_text() == "second"  # the old file whole, and no temporary file left
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json", "summary.previous"]
