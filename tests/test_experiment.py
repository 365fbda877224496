"""training/experiment.py: a checkpoint written before the metric renames (POSAC's `lambda`,
POGO's `distance`) resumes with today's names, so the resumed run's CSV has one column per
metric. (The whole-run resume checks live in test_train_sac.py and test_train_pogo.py.)"""

import argparse

import torch

from training.experiment import Experiment
from training.run_setup import RunPaths
from utils import renamed_metric


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


def test_renamed_metric_leaves_other_names_alone():
    assert [renamed_metric(name) for name in ("lambda_12", "distance", "lambda_x",
                                              "actor_loss_1", "q_scale_0")] == [
        "q_scale_12", "w2", "lambda_x", "actor_loss_1", "q_scale_0"]
