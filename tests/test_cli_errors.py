"""Bad input to train_sac.py: exit status 2, one `train_sac.py: error:` line naming the
problem, and nothing written. Also utils.parse_w2_weights on good input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_sac
from conftest import stop_before_the_summary, without_flock
from utils import parse_w2_weights

PREFIX = "train_sac.py: error:"


def output_args(root: Path) -> list[str]:
    return ["--results-dir", str(root / "results"), "--log-dir", str(root / "runs"),
            "--checkpoint-dir", str(root / "checkpoints")]


def output_dirs(root: Path) -> list[Path]:
    return [root / "results", root / "runs", root / "checkpoints"]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def expect_usage_error(argv: list[str], capsys) -> str:
    """Run main(argv); it must exit 2 with exactly one error line on stderr. Returns it."""
    with pytest.raises(SystemExit) as excinfo:
        train_sac.main(argv)
    assert excinfo.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {captured.err!r}"
    assert lines[0].startswith(PREFIX), lines[0]
    assert captured.out == ""
    return lines[0]


# Base settings that would be valid on their own; each case adds one bad input.
BASE = ["--env-name", "InvertedPendulum-v5", "--num-steps", "50", "--replay-size", "1000",
        "--batch-size", "16"]

CASES = {
    # name: (extra argv, words the message must contain)
    "run_name_path": (["--run-name", "a/b"], ["--run-name", "'a/b'"]),
    "run_name_dot": (["--run-name", "."], ["--run-name", "'.'"]),
    "unknown_env": (["--env-name", "HalfCheetah-v9"],
                    ["unknown environment", "HalfCheetah-v9", "HalfCheetah-v5"]),
    "w2_malformed": (["--num-actors", "2", "--w2-weights", "0.0,abc"],
                     ["--w2-weights", "0.0,abc"]),
    "w2_wrong_count": (["--num-actors", "2", "--w2-weights", "0.0,0.1,0.2"],
                       ["--w2-weights", "3 values", "--num-actors"]),
    "w2_actor0_nonzero": (["--num-actors", "2", "--w2-weights", "0.5,0.1"],
                          ["--w2-weights", "actor 0", "0.5"]),
    "w2_negative": (["--num-actors", "2", "--w2-weights", "0.0,-0.1"],
                    ["--w2-weights", "non-negative"]),
    "w2_negative_single": (["--num-actors", "3", "--w2-weights", "-0.2"],
                           ["--w2-weights", "non-negative"]),
    "num_actors_zero": (["--num-actors", "0"], ["--num-actors", "at least 1"]),
    "behavior_actor_too_big": (["--num-actors", "2", "--w2-weights", "0.0,0.1",
                                "--behavior-actor", "2"], ["--behavior-actor", "0..1"]),
    "behavior_actor_negative": (["--behavior-actor", "-1"], ["--behavior-actor"]),
    "discrete_actions": (["--env-name", "CartPole-v1"], ["CartPole-v1", "Discrete", "Box"]),
    "batch_bigger_than_replay": (["--batch-size", "512", "--replay-size", "256"],
                                 ["--batch-size", "--replay-size"]),
    "unknown_flag": (["--no-such-flag"], ["unrecognized arguments", "--no-such-flag"]),
    "num_steps_not_int": (["--num-steps", "ten"], ["--num-steps", "ten"]),
    "num_steps_float": (["--num-steps", "1.5"], ["--num-steps", "1.5"]),
    "num_steps_zero": (["--num-steps", "0"], ["--num-steps"]),
    "seed_negative": (["--seed=-4"], ["--seed", "[0, 2**63)"]),
    "seed_too_large": ([f"--seed={2**63}"], ["--seed", "[0, 2**63)"]),
    "lr_infinite": (["--lr", "inf"], ["--lr", "positive"]),
    "gamma_above_one": (["--gamma", "1.5"], ["--gamma", "[0, 1]"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, tmp_path, capsys):
    extra, words = CASES[name]
    message = expect_usage_error(BASE + output_args(tmp_path) + extra, capsys)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    for directory in output_dirs(tmp_path):
        assert not directory.exists(), f"{directory} was created"
    assert list(tmp_path.iterdir()) == []


def test_registered_env_that_cannot_be_built(tmp_path, capsys):
    """Gymnasium still registers the mujoco-py ids (v2/v3) but cannot build them."""
    with pytest.raises(SystemExit) as excinfo:
        train_sac.main(BASE + output_args(tmp_path) + ["--env-name", "HalfCheetah-v3"])
    assert excinfo.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]  # gymnasium may warn first
    assert last.startswith(PREFIX) and "HalfCheetah-v3" in last and "HalfCheetah-v5" in last
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here")
def test_cuda_without_gpu(tmp_path, capsys):
    message = expect_usage_error(BASE + output_args(tmp_path) + ["--cuda"], capsys)
    assert "--cuda" in message
    for directory in output_dirs(tmp_path):
        assert not directory.exists()


# --------------------------------------------------------------------------- resume
TINY_RUN = ["--env-name", "InvertedPendulum-v5", "--seed", "3", "--num-steps", "60",
            "--start-steps", "30", "--batch-size", "16", "--hidden-size", "16",
            "--replay-size", "1000", "--eval-freq", "1000", "--eval-episodes", "1",
            "--log-freq", "1000"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run that went to completion, and the directory holding its outputs."""
    root = tmp_path_factory.mktemp("finished")
    train_sac.main(TINY_RUN + output_args(root))
    results = [p for p in (root / "results").iterdir() if p.is_dir()]
    assert len(results) == 1, results
    assert (results[0] / "summary.json").exists()
    assert (results[0] / "config.json").exists()
    return root, results[0]


def test_resume_with_changed_setting_names_it(finished_run, capsys):
    root, _ = finished_run
    capsys.readouterr()
    before = snapshot(root)
    message = expect_usage_error(TINY_RUN + output_args(root) + ["--resume", "--lr", "0.001"],
                                 capsys)
    assert "lr" in message and "--resume" in message
    assert "0.001" in message
    assert snapshot(root) == before


def test_rerun_without_resume_names_existing_results(finished_run, capsys):
    root, results = finished_run
    capsys.readouterr()
    before = snapshot(root)
    message = expect_usage_error(TINY_RUN + output_args(root), capsys)
    assert f"already finished ({results / 'summary.json'})" in message
    assert "--run-name" in message
    assert snapshot(root) == before


@pytest.mark.parametrize("shared", ["--log-dir", "--checkpoint-dir"])
def test_a_run_of_the_same_name_never_writes_into_another_runs_folders(finished_run, tmp_path,
                                                                       shared, capsys):
    """Another --results-dir, but the finished run's TensorBoard or checkpoint folder:
    neither its events nor its final checkpoint may be mixed with or replaced by the new
    run's. (Its resume checkpoints: test_a_run_stopped_between_….)"""
    root, _ = finished_run
    argv = TINY_RUN + output_args(tmp_path)
    argv[argv.index(shared) + 1] = str(root / {"--log-dir": "runs",
                                                "--checkpoint-dir": "checkpoints"}[shared])
    capsys.readouterr()
    before = snapshot(root)
    message = expect_usage_error(argv, capsys)
    assert ("holds TensorBoard events but" if shared == "--log-dir"
            else "_final.pt exists but") in message
    assert "another run's" in message and shared in message
    assert snapshot(root) == before and list(tmp_path.iterdir()) == []


def test_a_run_another_process_holds_is_refused(tmp_path, capsys):
    """Two processes of one run name that share only a checkpoint folder, started together:
    the second finds the first's lock there before it writes anything of its own."""
    folder = tmp_path / "checkpoints" / "InvertedPendulum-v5"
    folder.mkdir(parents=True)
    lock = folder / ".POSAC_InvertedPendulum-v5_s3_w0.0.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        message = expect_usage_error(TINY_RUN + output_args(tmp_path), capsys)
    finally:
        holder.kill()
        holder.wait()
    assert f"another process is running POSAC_InvertedPendulum-v5_s3_w0.0 (it holds {lock})" \
        in message
    assert not (tmp_path / "results" / "POSAC_InvertedPendulum-v5_s3_w0.0").exists()
    assert not (tmp_path / "runs" / "POSAC_InvertedPendulum-v5_s3_w0.0").exists()


HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_an_output_folder_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    argv = TINY_RUN + output_args(tmp_path)
    argv[argv.index("--checkpoint-dir") + 1] = str(tmp_path / "afile")
    message = expect_usage_error(argv, capsys)
    assert f"--checkpoint-dir: cannot write in {tmp_path / 'afile' / 'InvertedPendulum-v5'}" \
        in message
    assert not list((tmp_path / "results").glob("*/config.json"))


def test_an_output_folder_that_cannot_be_locked_is_refused_before_training(tmp_path, capsys,
                                                                           monkeypatch):
    """A file system without flock (ENOLCK, as some NFS mounts give): one line naming the
    lock file and the cause, not "cannot write"."""
    without_flock(monkeypatch)
    message = expect_usage_error(TINY_RUN + output_args(tmp_path), capsys)
    assert message.startswith(f"train_sac.py: error: cannot lock {tmp_path / 'results'}/.")
    assert "(No locks available): its file system does not support flock" in message
    assert not list((tmp_path / "results").glob("*/config.json"))


def test_resume_finished_run_with_same_settings_is_a_no_op(finished_run, capsys):
    root, _ = finished_run
    capsys.readouterr()
    before = snapshot(root)
    assert train_sac.main(TINY_RUN + output_args(root) + ["--resume"]) is None
    captured = capsys.readouterr()
    assert "already finished" in captured.out
    assert captured.err == ""
    assert snapshot(root) == before


def test_resume_treats_a_setting_missing_from_the_saved_config_as_its_default(tmp_path,
                                                                             capsys):
    """A flag added to train_sac.py after a run started must not block its resume."""
    train_sac.main(TINY_RUN + output_args(tmp_path))
    config_json = next((tmp_path / "results").glob("*/config.json"))
    saved = json.loads(config_json.read_text())
    del saved["q_normalize"]
    config_json.write_text(json.dumps(saved))
    capsys.readouterr()
    train_sac.main(TINY_RUN + output_args(tmp_path) + ["--resume"])
    assert "already finished" in capsys.readouterr().out
    message = expect_usage_error(TINY_RUN + output_args(tmp_path) + ["--resume",
                                                                     "--no-q-normalize"], capsys)
    assert "q_normalize" in message


# --------------------------------------------------------------------------- weights
@pytest.mark.parametrize("text, num_actors, expected", [
    ("0.1", 3, [0.0, 0.1, 0.1]),
    ("0.0,0.2", 2, [0.0, 0.2]),
    ("0.3", 1, [0.0]),
    ("0", 2, [0.0, 0.0]),
    ("0.0,0.1,0.25", 3, [0.0, 0.1, 0.25]),
])
def test_parse_w2_weights(text, num_actors, expected):
    assert parse_w2_weights(text, num_actors, actor0_zero=True) == expected


@pytest.mark.parametrize("text, num_actors", [
    ("0.0,abc", 2), ("0.0,0.1,0.2", 2), ("0.5,0.1", 2), ("0.0,-0.1", 2), ("0.0,inf", 2),
    ("0.0,nan", 2), ("", 1),
])
def test_parse_w2_weights_rejects(text, num_actors):
    with pytest.raises(ValueError):
        parse_w2_weights(text, num_actors, actor0_zero=True)


def test_a_run_stopped_between_its_final_checkpoint_and_its_summary_resumes(tmp_path,
                                                                            monkeypatch, capsys):
    """Stopped after writing _final.pt but before summary.json (its resume checkpoints still
    there): not a finished run that lost its summary, but one that resumes, finishes, and
    ends as the uninterrupted run does."""
    argv = TINY_RUN + ["--checkpoint-freq", "20"]
    train_sac.main(argv + output_args(tmp_path / "whole"))
    stop_before_the_summary(train_sac.main, argv + output_args(tmp_path / "cut"), monkeypatch)
    assert len(list((tmp_path / "cut" / "checkpoints").rglob("*_final.pt"))) == 1
    assert list((tmp_path / "cut" / "checkpoints").rglob("*_latest.pt"))
    assert not list((tmp_path / "cut" / "results").rglob("summary.json"))
    # the same run in another results folder, sharing the checkpoint folder, neither resumes
    # from this one's checkpoint nor overwrites it
    other = output_args(tmp_path / "other")
    other[other.index("--checkpoint-dir") + 1] = str(tmp_path / "cut" / "checkpoints")
    before = snapshot(tmp_path / "cut")
    capsys.readouterr()
    for resume in ([], ["--resume"]):
        message = expect_usage_error(argv + other + resume, capsys)
        assert "_latest.pt exists but" in message and "is another run's" in message
    assert snapshot(tmp_path / "cut") == before and not (tmp_path / "other").exists()
    train_sac.main(argv + output_args(tmp_path / "cut") + ["--resume"])
    summaries = [json.loads(next((tmp_path / root / "results").rglob("summary.json")).read_text())
                 for root in ("whole", "cut")]
    whole, cut = ({k: v for k, v in summary["final_eval"].items() if k != "wall_time_s"}
                  for summary in summaries)
    assert cut == whole and "actor_0_deterministic" in cut
    assert not list((tmp_path / "cut" / "checkpoints").rglob("*_latest.pt"))


def test_a_lost_summary_or_config_is_one_line_and_nothing_is_overwritten(tmp_path, capsys):
    """A finished run whose summary.json is gone is not trained again over its results, and
    an unreadable config.json is named, not a traceback."""
    train_sac.main(TINY_RUN + output_args(tmp_path))
    results = next(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    (results / "summary.json").unlink()
    capsys.readouterr()
    before = snapshot(tmp_path)
    message = expect_usage_error(TINY_RUN + output_args(tmp_path) + ["--resume"], capsys)
    assert "_final.pt" in message and "summary.json is missing" in message
    assert "--rebuild-summaries" in message
    assert snapshot(tmp_path) == before
    next((tmp_path / "checkpoints").rglob("*_final.pt")).unlink()
    (results / "config.json").write_text('{"lr": ')
    message = expect_usage_error(TINY_RUN + output_args(tmp_path) + ["--resume"], capsys)
    assert f"cannot read {results / 'config.json'}" in message and "delete" in message


def test_resume_refuses_a_checkpoint_another_run_of_the_same_name_wrote(tmp_path, monkeypatch,
                                                                         capsys):
    """Two runs of one name (they differ in --lr, which the name leaves out) that wrote one
    checkpoint file: the run whose config.json sits beside it must not resume from the
    other's state. The settings stored in the checkpoint name the difference; nothing is
    written."""
    argv = TINY_RUN + ["--checkpoint-freq", "20"]
    this, other = argv + output_args(tmp_path / "this"), argv + output_args(tmp_path / "other")
    stop_before_the_summary(train_sac.main, this, monkeypatch)
    stop_before_the_summary(train_sac.main, other + ["--lr", "0.001"], monkeypatch)
    [latest] = (tmp_path / "this" / "checkpoints").rglob("*_latest.pt")
    [previous] = (tmp_path / "this" / "checkpoints").rglob("*_previous.pt")
    for mine in (latest, previous):
        [theirs] = (tmp_path / "other" / "checkpoints").rglob(mine.name)
        mine.write_bytes(theirs.read_bytes())
    before = snapshot(tmp_path)
    capsys.readouterr()
    message = expect_usage_error(this + ["--resume"], capsys)
    assert str(latest) in message and "other settings" in message
    assert "lr (saved 0.001, now 0.0003)" in message
    assert "results_dir" in message and "--resume" not in message.split("other settings")[1]
    assert snapshot(tmp_path) == before


def test_a_run_too_large_for_memory_is_one_line_before_anything_is_written(tmp_path, capsys):
    """A replay memory of 10¹¹ transitions (1.2 TB): torch cannot allocate it."""
    message = expect_usage_error(BASE + output_args(tmp_path) + ["--replay-size", str(10**11)],
                                 capsys)
    assert "does not fit in memory" in message and "--replay-size" in message
    assert not list((tmp_path / "results").glob("*/config.json"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("events*"))
