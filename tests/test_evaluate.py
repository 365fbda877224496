"""evaluate.py and the self-contained final checkpoints (training/final_checkpoint.py): a
finished run of each training script evaluated from its directory alone gives the numbers of
its own final evaluation; bad input is one line, exit 2, nothing written."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import output_flags, random_pendulum_hdf5

import evaluate
import train_pogo
import train_sac
from training.final_checkpoint import FORMAT, FORMAT_VERSION

SAC_RUN = "POSAC_Pendulum-v1_s2_w0.0-0.1"
POGO_RUN = "POGO_invertedpendulum_random_s3_w1.0-0.5"


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sac")
    train_sac.main(["--env-name", "Pendulum-v1", "--seed", "2", "--num-actors", "2",
                    "--w2-weights", "0.0,0.1", "--num-steps", "400", "--start-steps", "200",
                    "--eval-freq", "100", "--eval-episodes", "2", "--batch-size", "32",
                    "--hidden-size", "16", "--log-freq", "200", *output_flags(root)])
    return root


@pytest.fixture(scope="module")
def pogo_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pogo")
    dataset = random_pendulum_hdf5(root / "invertedpendulum_random.hdf5", 1000)
    train_pogo.main(["--dataset", str(dataset), "--env-name", "InvertedPendulum-v5",
                     "--seed", "3", "--num-actors", "2", "--w2-weights", "1.0,0.5",
                     "--num-samples", "3", "--num-steps", "60", "--eval-freq", "60",
                     "--eval-episodes", "2", "--batch-size", "32", "--hidden-size", "16",
                     "--log-freq", "60", *output_flags(root)])
    return root


def final_eval(root: Path, run: str) -> dict:
    return json.loads((root / "results" / run / "summary.json").read_text())["final_eval"]


@pytest.mark.parametrize("which, run, modes", [
    ("sac_run", SAC_RUN, ("deterministic", "stochastic")),
    ("pogo_run", POGO_RUN, ("deterministic",)),  # train_pogo.py evaluates at z = 0 only
])
def test_a_run_directory_evaluates_to_its_final_evaluation(which, run, modes, request, capsys):
    root = request.getfixturevalue(which)
    capsys.readouterr()
    evaluate.main([str(root / "results" / run), "--episodes", "2"])
    printed = capsys.readouterr().out
    out = root / "results" / run / "evaluations"
    (folder,) = out.iterdir()
    record = json.loads((folder / "evaluation.json").read_text())
    expected = final_eval(root, run)
    for i in range(2):
        for mode in modes:
            assert record["means"][f"actor_{i}_{mode}"] == expected[f"actor_{i}_{mode}"]
            assert f"Actor {i} - {mode.capitalize()}: {expected[f'actor_{i}_{mode}']:.2f}" \
                in printed
    assert len((folder / "evaluation.csv").read_text().splitlines()) == 1 + 2 * 2 * 2


def test_the_final_checkpoint_is_self_contained(sac_run, pogo_run):
    for root, run, group, algorithm in ((sac_run, SAC_RUN, "Pendulum-v1", "POSAC"),
                                        (pogo_run, POGO_RUN, "invertedpendulum_random",
                                         "POGO")):
        path = root / "checkpoints" / group / f"{run}_final.pt"
        checkpoint = torch.load(path, weights_only=True)
        assert (checkpoint["format"], checkpoint["format_version"]) == (FORMAT, FORMAT_VERSION)
        assert checkpoint["algorithm"] == algorithm and len(checkpoint["agent"]["actors"]) == 2
        assert checkpoint["settings"]["seed"] == checkpoint["seed"]
    pogo = torch.load(pogo_run / "checkpoints" / "invertedpendulum_random"
                      / f"{POGO_RUN}_final.pt", weights_only=True)
    assert pogo["obs_mean"].shape == (4,) and pogo["obs_std"].shape == (4,)
    assert pogo["reference_scores"] is None  # D4RL has no InvertedPendulum references


def test_chosen_actors_keep_their_own_noise(sac_run, tmp_path, capsys):
    """--actors 1 alone gives actor 1 the stochastic episodes it had beside actor 0."""
    evaluate.main([str(sac_run / "results" / SAC_RUN), "--episodes", "2", "--actors", "1",
                   "--out-dir", str(tmp_path / "one")])
    record = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    assert record["means"]["actor_1_stochastic"] == final_eval(sac_run, SAC_RUN)[
        "actor_1_stochastic"]
    assert list(record["returns"]) == ["actor_1"]


def test_a_chosen_actors_video_is_named_and_labelled_by_its_chain_index(pogo_run, tmp_path):
    """--actors 1 --capture-video films actor 1 as step_60_actor_1.mp4, not as position 0."""
    from video import frames

    evaluate.main([str(pogo_run / "results" / POGO_RUN), "--episodes", "1", "--actors", "1",
                   "--capture-video", "--out-dir", str(tmp_path / "one")])
    videos = sorted(path.name for path in (tmp_path / "one" / "videos").iterdir())
    assert videos == ["step_60_actor_1.mp4", "step_60_chain.mp4"]
    ((running, _),) = frames.tile_labels(np.array([5.0]), 160, 96, [1])
    expected = frames.label_overlay(["ACTOR 1", "RETURN 5.0"], 160, 96)
    assert all(np.array_equal(a, b) for a, b in zip(running, expected, strict=True))


def error_of(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error: ")
    return lines[0]


def test_bad_input_is_one_line_and_nothing_written(sac_run, tmp_path, capsys):
    run = sac_run / "results" / SAC_RUN
    final = sac_run / "checkpoints" / "Pendulum-v1" / f"{SAC_RUN}_final.pt"
    resume = tmp_path / "resume_latest.pt"
    torch.save({"run": {}, "agent": {}}, resume)
    legacy = tmp_path / "old_final.pt"
    torch.save({"agent": torch.load(final, weights_only=True)["agent"]}, legacy)
    truncated = tmp_path / "truncated_final.pt"
    truncated.write_bytes(final.read_bytes()[:1000])
    other = tmp_path / "other_final.pt"
    torch.save({**torch.load(final, weights_only=True), "algorithm": "PPO"}, other)
    out = ["--out-dir", str(tmp_path / "never")]
    assert "resume checkpoint" in error_of([str(resume), *out], capsys)
    assert "networks only" in error_of([str(legacy), *out], capsys)
    assert "not a readable checkpoint" in error_of([str(truncated), *out], capsys)
    assert "holds a 'PPO' agent" in error_of([str(other), *out], capsys)
    assert "actors 0..1" in error_of([str(run), "--actors", "0,2", *out], capsys)
    assert "differ from the Pendulum-v1 ones" in error_of(
        [str(run), "--env-name", "InvertedPendulum-v5", *out], capsys)
    assert "has not finished" in error_of([str(tmp_path), *out], capsys)
    assert not (tmp_path / "never").exists()


def test_ctrl_c_is_one_line_that_names_no_flag_it_lacks(monkeypatch, tmp_path, capsys):
    """evaluate.py has no --resume: its Ctrl-C line (start-up or evaluation) says to run the
    same command again, with exit status 130."""
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "check", interrupt)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path)])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "evaluate.py: interrupted; run the same command again\n"
