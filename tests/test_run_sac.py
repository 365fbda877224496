"""run_sac.py: grid expansion, validation, dry run, a real tiny sweep (kill, resume, skip,
Ctrl-C, failure isolation), the submitit path (LocalExecutor, and Slurm's sbatch script),
and the results summary checked against hand-made metrics CSVs."""

from __future__ import annotations

import argparse
import csv
import fcntl
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT as REPO_ROOT_TEXT
from conftest import without_flock

import run_sac
import train_pogo
import train_sac
from sweeps import config as sweep_config
from sweeps import gpus as sweep_gpus
from sweeps import launch as sweep_launch
from sweeps import script as sweep_script
from sweeps import view as sweep_view
from training import run_setup

REPO_ROOT = Path(REPO_ROOT_TEXT)
RUN_SAC = REPO_ROOT / "run_sac.py"
ENV = "InvertedPendulum-v5"
SCRIPT = sweep_script.load_script("train_sac.py")

TINY = {"num_actors": 2, "start_steps": 100, "hidden_size": 16, "batch_size": 16,
        "replay_size": 5000, "eval_episodes": 1, "eval_freq": 10, "log_freq": 100,
        "checkpoint_freq": 100}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Relative output paths (results/, checkpoints/) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)


def tiny_config(seeds=(1, 2), num_steps=400, envs=None, **common) -> dict:
    envs = envs or {ENV: {"w2_weights": [0.0, 0.1]}}
    return {"common": {"seeds": list(seeds), "enabled_environments": list(envs),
                       "num_steps": num_steps, **TINY, **common},
            "environments": envs}


def write(root: Path, config: dict | str, name: str = "sweep.yaml") -> Path:
    path = root / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def sweep(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_SAC), "--config", "sweep.yaml", *args],
                          cwd=root, capture_output=True, text=True, timeout=timeout)


def start_sweep(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUN_SAC), "--config", "sweep.yaml", *args],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def name(seed: int, weights: str = "0.0-0.1", env: str = ENV) -> str:
    return f"POSAC_{env}_s{seed}_w{weights}"


def row_of(text: str, run: str, rest: str) -> bool:
    """Whether `text` has a line: the run's name, then (after spaces) the regex `rest`."""
    return re.search(rf"^{re.escape(run)}\s+{rest}", text, re.M) is not None


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def metrics_without_wall_time(results: Path) -> list[dict[str, str]]:
    """A run's metrics CSV, every column except wall_time_s."""
    with open(results / "training" / f"{results.name}_metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"}
                for row in csv.DictReader(handle)]


def same_results(results: Path, reference: Path) -> bool:
    """Two runs' metrics CSVs (every column except wall_time_s) and .npy files are equal."""
    npys = sorted(p.name for p in results.glob("*.npy"))
    return (bool(npys) and npys == sorted(p.name for p in reference.glob("*.npy"))
            and all((results / n).read_bytes() == (reference / n).read_bytes() for n in npys)
            and metrics_without_wall_time(results) == metrics_without_wall_time(reference))


def child_pid(log: Path) -> int:
    """The pid run_sac.py wrote into the latest attempt's header of a run's log."""
    return int(re.findall(r"^=== pid (\d+)$", log.read_text(), re.M)[-1])


# --------------------------------------------------------------------------- grid expansion
def test_grid_is_env_by_w2_setting_by_seed_with_both_w2_forms():
    config = {"common": {"seeds": [7, 8], "enabled_environments": ["A-v5", "B-v5"],
                         "num_actors": 2},
              "environments": {"A-v5": {"w2_weights_list": [[0.0, 0.0], [0.0, 0.3]]},
                               "B-v5": {"w2_weights": [0.0, 0.2]}}}
    runs, problems = sweep_config.expand_grid(config, SCRIPT)
    assert problems == []
    assert [(r.task, r.w2_weights, r.seed) for r in runs] == [
        ("A-v5", (0.0, 0.0), 7), ("A-v5", (0.0, 0.0), 8),
        ("A-v5", (0.0, 0.3), 7), ("A-v5", (0.0, 0.3), 8),
        ("B-v5", (0.0, 0.2), 7), ("B-v5", (0.0, 0.2), 8)]


def test_entry_overrides_common_key_by_key_and_its_w2_replaces_commons():
    config = {"common": {"seeds": [1], "enabled_environments": ["A-v5", "B-v5", "C-v5"],
                         "num_actors": 3, "lr": 0.001, "batch-size": 64,
                         "w2_weights_list": [[0.0, 0.1, 0.1], 0.5]},
              "environments": {"A-v5": {}, "B-v5": None,
                               "C-v5": {"lr": 0.01, "seeds": [4, 5], "w2_weights": 0.2,
                                        "num_actors": 2}}}
    runs, problems = sweep_config.expand_grid(config, SCRIPT)
    assert problems == []
    by_env = {env: [r for r in runs if r.task == env] for env in ("A-v5", "B-v5", "C-v5")}
    for env in ("A-v5", "B-v5"):  # {} and an empty value: the common settings
        assert [r.w2_weights for r in by_env[env]] == [(0.0, 0.1, 0.1), (0.0, 0.5, 0.5)]
        assert by_env[env][0].settings == {"num_actors": 3, "lr": 0.001, "batch_size": 64}
    assert [(r.w2_weights, r.seed) for r in by_env["C-v5"]] == [((0.0, 0.2), 4), ((0.0, 0.2), 5)]
    assert by_env["C-v5"][0].settings == {"num_actors": 2, "lr": 0.01, "batch_size": 64}


def test_seed_in_a_text_value_becomes_each_runs_seed():
    config = {"common": {"seeds": [1, 2], "enabled_environments": ["A-v5"], "w2_weights": 0.1,
                         "num_actors": 2},
              "environments": {"A-v5": {"init_from": "results/POSAC_x_s{seed}_w0.0-0.1_data1",
                                        "lr": 0.001}}}
    runs, problems = sweep_config.expand_grid(config, SCRIPT)
    assert problems == []
    assert [(run.seed, run.settings["init_from"]) for run in runs] == [
        (1, "results/POSAC_x_s1_w0.0-0.1_data1"), (2, "results/POSAC_x_s2_w0.0-0.1_data1")]
    assert runs[0].settings["lr"] == 0.001


def test_an_init_from_run_that_has_not_finished_is_a_one_line_problem(tmp_path):
    """The second sweep of an offline-to-online pair, started too early: each seed's missing
    run is named in one line and nothing starts (the run's name depends on it)."""
    (tmp_path / "results" / "POSAC_x_s1").mkdir(parents=True)  # started, not finished
    write(tmp_path, tiny_config(init_from="results/POSAC_x_s{seed}"))
    result = sweep(tmp_path, "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("run_sac.py: error: sweep.yaml: ")
                                   for line in lines), result.stderr
    # named with the run it stops, not with the sweep key of its task
    assert lines[0].startswith("run_sac.py: error: sweep.yaml: InvertedPendulum-v5 w2 [0.0, 0.1] "
                               "(seed 1): results/POSAC_x_s1 has no summary.json"), lines[0]
    assert "(seed 2): results/POSAC_x_s2 does not exist" in lines[1]


def test_without_num_actors_each_w2_setting_sets_its_own_chain_length(tmp_path):
    text = GOOD.replace("  num_actors: 2\n", "").replace(
        "w2_weights: [0.0, 0.1]", "w2_weights_list: [[0.0], [0.0, 0.1], [0.0, 0.1, 0.1]]")
    runs, _ = sweep_config.load_sweep(write(tmp_path, text), thorough=False)
    assert [(r.w2_weights, r.seed) for r in runs] == [
        ((0.0,), 1), ((0.0,), 2), ((0.0, 0.1), 1), ((0.0, 0.1), 2),
        ((0.0, 0.1, 0.1), 1), ((0.0, 0.1, 0.1), 2)]
    parser = train_sac.build_parser()
    for run in runs:
        args = parser.parse_args(run.argv)
        train_sac.validate_args(args)
        assert (args.num_actors, tuple(args.w2_weights)) == (len(run.w2_weights), run.w2_weights)
    assert len({run.results for run in runs}) == len(runs)


def test_settings_map_to_flags_by_one_rule():
    run = sweep_script.Run(task=ENV, w2_weights=(0.0, 0.1), seed=3,
                           settings={"batch_size": 32, "lr": 0.001, "q_normalize": False,
                                     "automatic_entropy_tuning": True,
                                     "critic_target_policy": "target"})
    argv = sweep_script.script_argv(run, SCRIPT)
    assert argv == ["--env-name=InvertedPendulum-v5", "--seed=3", "--w2-weights=0.0,0.1",
                    "--lr=0.001", "--automatic-entropy-tuning", "--no-q-normalize",
                    "--critic-target-policy=target", "--batch-size=32", "--resume"]
    args = train_sac.build_parser().parse_args(argv)
    assert (args.batch_size, args.lr, args.q_normalize, args.automatic_entropy_tuning,
            args.critic_target_policy, args.resume) == (32, 0.001, False, True, "target", True)


@pytest.mark.parametrize("module", [train_sac, train_pogo], ids=lambda m: m.__name__)
def test_every_on_off_flag_a_sweep_file_can_set_has_both_forms(module):
    """A sweep file's true/false becomes --flag/--no-flag (sweeps/script.flags_of); a
    store_true flag has no --no- form, so the sweep would refuse its key. --resume is the
    sweep's own."""
    one_way = [action.option_strings[0] for action in module.build_parser()._actions
               if action.option_strings and action.nargs == 0 and action.dest != "resume"
               and not isinstance(action, (argparse.BooleanOptionalAction,
                                           argparse._HelpAction))]
    assert one_way == []


def test_capture_video_is_set_from_a_sweep_file(tmp_path):
    runs, _ = sweep_config.load_sweep(write(tmp_path, tiny_config(capture_video=True)),
                                      thorough=False)
    assert all("--capture-video" in run.argv for run in runs)
    args = train_sac.build_parser().parse_args(runs[0].argv)
    assert args.capture_video is True


def test_importing_run_sac_does_not_import_torch():
    code = "import sys, run_sac; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- validation
GOOD = """\
common:
  seeds: [1, 2]
  enabled_environments: [InvertedPendulum-v5]
  num_actors: 2
  batch_size: 16
environments:
  InvertedPendulum-v5:
    w2_weights: [0.0, 0.1]
"""

# name: (edit of GOOD as (old, new) text replacements, fragments of the one problem line)
BAD = {
    "unknown_key": ([("batch_size: 16", "batch_sise: 16")],
                    ["common", "unknown key 'batch_sise'", "did you mean batch_size?"]),
    "unknown_key_in_entry": ([("w2_weights: [0.0, 0.1]",
                               "w2_weights: [0.0, 0.1]\n    hiden-size: 8")],
                             ["environments.InvertedPendulum-v5", "'hiden-size'", "hidden_size"]),
    "unknown_top_level": ([("\nenvironments:", "\nenviroments:")],
                          ["top-level key 'enviroments'", "environments"]),
    "w2_length": ([("w2_weights: [0.0, 0.1]", "w2_weights: [0.0, 0.1, 0.2]")],
                  ["w2_weights", "3 weights", "num_actors is 2"]),
    "w2_list_length": ([("w2_weights: [0.0, 0.1]", "w2_weights_list: [[0.0, 0.1], [0.0]]")],
                       ["w2_weights_list[1]", "1 weights", "num_actors is 2"]),
    "w2_both_forms": ([("w2_weights: [0.0, 0.1]",
                        "w2_weights: [0.0, 0.1]\n    w2_weights_list: [[0.0, 0.2]]")],
                      ["not both"]),
    "w2_missing": ([("    w2_weights: [0.0, 0.1]\n", "    lr: 0.001\n")], ["no w2 setting"]),
    "w2_not_numbers": ([("[0.0, 0.1]", "[0.0, abc]")], ["not a list of numbers"]),
    "w2_repeated": ([("w2_weights: [0.0, 0.1]", "w2_weights_list: [[0.0, 0.1], [0.0, 0.1]]")],
                    ["listed twice"]),
    "w2_actor0_nonzero": ([("[0.0, 0.1]", "[0.5, 0.1]")],
                          ["InvertedPendulum-v5 w2 [0.5, 0.1] (seeds 1, 2)", "actor 0"]),
    "enabled_without_entry": ([("[InvertedPendulum-v5]", "[InvertedPendulum-v5, Hopper-v5]"),
                               ("\nenvironments:",
                                "\nenvironments:\n  Hoper-v5: {w2_weights: 0.1}")],
                              ["'Hopper-v5' has no entry", "'Hoper-v5' a misspelling",
                               "Hopper-v5: {}"]),
    "no_enabled": ([("enabled_environments: [InvertedPendulum-v5]", "enabled_environments: []")],
                   ["enabled_environments must be a non-empty list"]),
    "unknown_env": ([("[InvertedPendulum-v5]", "[InvertedPendulum-v5, HalfCheetah-v9]"),
                     ("\nenvironments:", "\nenvironments:\n  HalfCheetah-v9: {w2_weights: 0.1}")],
                    ["unknown environment id 'HalfCheetah-v9'", "HalfCheetah-v5"]),
    "discrete_env": ([("[InvertedPendulum-v5]", "[InvertedPendulum-v5, CartPole-v1]"),
                      ("\nenvironments:", "\nenvironments:\n  CartPole-v1: {w2_weights: 0.1}")],
                     ["CartPole-v1 has a Discrete action space"]),
    "both_spellings": ([("batch_size: 16", "batch_size: 16\n  batch-size: 32")],
                       ["'batch_size' and 'batch-size' are the same setting"]),
    "duplicate_key": ([("num_actors: 2", "num_actors: 2\n  num_actors: 2")],
                      ["sweep.yaml:5", "'num_actors' appears twice"]),
    "grid_owned_key": ([("batch_size: 16", "batch_size: 16\n  seed: 3")],
                       ["common.seed", "cannot be set in a sweep", "seeds"]),
    "resume_key": ([("batch_size: 16", "batch_size: 16\n  resume: true")],
                   ["common.resume", "always passes --resume"]),
    "bool_for_flag": ([("batch_size: 16", "batch_size: 16\n  cuda: 'yes'")],
                      ["common.cuda", "must be true or false"]),
    "list_for_flag": ([("batch_size: 16", "batch_size: [16, 32]")],
                      ["common.batch_size", "must be a single int"]),
    "null_value": ([("batch_size: 16", "batch_size:")], ["common.batch_size", "has no value"]),
    "seeds_not_ints": ([("seeds: [1, 2]", "seeds: [1, two]")], ["common.seeds", "integers"]),
    "seeds_repeated": ([("seeds: [1, 2]", "seeds: [1, 1]")], ["common.seeds", "twice"]),
    "seed_negative": ([("seeds: [1, 2]", "seeds: [1, -5]")], ["common.seeds", "[0, 2**63)"]),
    "seed_too_large": ([("seeds: [1, 2]", f"seeds: [1, {2**64}]")],
                       ["common.seeds", "[0, 2**63)"]),
    "self_alias": ([("batch_size: 16", "batch_size: 16\n  extra: &x [*x]")],
                   ["common: unknown key 'extra'"]),
    "num_actors_zero": ([("num_actors: 2", "num_actors: 0")], ["num_actors", ">= 1"]),
    "w2_number_without_num_actors": ([("  num_actors: 2\n", ""), ("[0.0, 0.1]", "0.1")],
                                     ["w2_weights", "needs num_actors", "[0.0, 0.1]"]),
    "train_sac_type": ([("batch_size: 16", "batch_size: sixteen")],
                       ["train_sac.py rejects", "--batch-size", "'sixteen'"]),
    "train_sac_range": ([("batch_size: 16", "batch_size: 16\n  replay_size: 8")],
                        ["train_sac.py rejects", "exceeds --replay-size 8"]),
    "malformed_yaml": ([("seeds: [1, 2]", "seeds: [1, 2")], ["sweep.yaml:3", "malformed YAML"]),
    "not_a_mapping": ([(GOOD, "- just\n- a list\n")], ["must be a mapping"]),
    "no_environments": ([("\nenvironments:\n  InvertedPendulum-v5:\n    w2_weights: [0.0, 0.1]",
                          "")],
                        ["no environments section"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_validation_error_is_one_line_naming_the_problem(case, tmp_path):
    text = GOOD
    for old, new in BAD[case][0]:
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(sweep_config.ConfigError) as excinfo:
        sweep_config.load_sweep(write(tmp_path, text))
    problems = excinfo.value.problems
    assert len(problems) == 1, problems
    for fragment in BAD[case][1]:
        assert fragment in problems[0], (fragment, problems[0])


def test_good_file_passes_and_resume_with_changed_settings_is_caught(tmp_path):
    runs, _ = sweep_config.load_sweep(write(tmp_path, GOOD))
    assert [r.file_name for r in runs] == [f"POSAC_{ENV}_s1_w0.0-0.1", f"POSAC_{ENV}_s2_w0.0-0.1"]
    args = train_sac.build_parser().parse_args(runs[0].argv)
    train_sac.validate_args(args)
    runs[0].results.mkdir(parents=True)  # results of an earlier sweep with another lr
    (runs[0].results / "config.json").write_text(
        json.dumps({**run_setup.settings_of(args), "lr": 0.1}))
    with pytest.raises(sweep_config.ConfigError) as excinfo:
        sweep_config.load_sweep(write(tmp_path, GOOD))
    assert excinfo.value.problems == [
        f"{tmp_path / 'sweep.yaml'}: InvertedPendulum-v5 w2 [0.0, 0.1] (seed 1): train_sac.py "
        f"rejects these settings: --resume with settings that differ from the saved run in "
        f"{runs[0].results / 'config.json'}: lr (saved 0.1, now 0.0003)"]


def test_cli_reports_every_problem_one_line_each_exit_2_and_writes_nothing(tmp_path):
    text = GOOD.replace("batch_size: 16", "batch_sise: 16\n  seed: 4").replace(
        "[InvertedPendulum-v5]", "[InvertedPendulum-v5, Walker2d-v5]")
    write(tmp_path, text)
    result = sweep(tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith("run_sac.py: error: sweep.yaml: ") for line in lines)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize("data", [b"\xff\xfe\x00", GOOD.encode() + "# caf\xe9\n".encode("latin-1")],
                         ids=["binary", "latin-1"])
def test_a_sweep_file_that_is_not_utf8_is_one_line(data, tmp_path):
    (tmp_path / "sweep.yaml").write_bytes(data)
    result = sweep(tmp_path, "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    bad = next(offset for offset in range(len(data)) if data[offset] >= 0x80)  # ASCII before
    assert result.stderr == (f"run_sac.py: error: sweep.yaml: not UTF-8 text (byte "
                             f"{data[bad]:#04x} at offset {bad}); save the file as UTF-8\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "lots"])
def test_a_memory_request_that_is_not_a_positive_number_is_one_line(value, tmp_path):
    write(tmp_path, GOOD)
    result = sweep(tmp_path, "--launcher", "submitit-local", f"--mem-gb={value}", "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--mem-gb" in result.stderr
    assert "must be a positive number" in result.stderr


# (flag, value, a fragment of the one error line)
BAD_FLAGS = [
    ("--progress-interval", "nan", "must be a positive number"),  # never printed progress
    ("--progress-interval", "-5", "must be a positive number"),
    ("--progress-interval", "inf", "must be a positive number"),
    ("--gpus", "abc", "expected GPU ids such as 0,1"),  # no GPU for CUDA_VISIBLE_DEVICES=abc
    ("--gpus", "0,,1", "expected GPU ids such as 0,1"),
    ("--gpus", "0,0", "lists a GPU twice"),  # GPU 0 would keep two launch slots
    ("--time", "1:60", "minutes and seconds below 60"),  # read as 2 minutes
    ("--time", "1:00:60", "minutes and seconds below 60"),
    ("--time", "1-24:00", "hours below 24 after days"),
    ("--time", "1-2:3", "expected sbatch's MM"),  # Slurm's fields after the first are 2 digits
    ("--time", "0", "must be a positive limit"),  # Slurm: no limit at all
    ("--time", "0-00:00", "must be a positive limit"),
]


@pytest.mark.parametrize("flag, value, fragment", BAD_FLAGS)
def test_a_bad_launch_flag_is_one_line_before_anything_starts(flag, value, fragment,
                                                              tmp_path):
    write(tmp_path, GOOD)
    result = sweep(tmp_path, f"{flag}={value}", "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"run_sac.py: error: argument {flag}: ")
    assert fragment in result.stderr and value in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_time_limits_and_gpu_ids_in_their_accepted_forms():
    # sbatch's forms (man sbatch, --time), written out: MM:SS is minutes and seconds
    minutes = {"90": 90, "1:30": 1 + 1, "90:00": 90, "0:00:30": 1, "1:30:00": 90,
               "23:59:59": 23 * 60 + 59 + 1, "1-12": 36 * 60, "1-00:00": 1440,
               "2-03:04:05": 2 * 1440 + 3 * 60 + 4 + 1}
    assert {text: run_sac.parse_minutes(text) for text in minutes} == minutes
    uuids = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6,MIG-GPU-8932f937/1/0"
    assert run_sac.gpu_ids(" 0, 1") == ["0", "1"]
    assert run_sac.gpu_ids(uuids) == uuids.split(",")


def test_each_launch_slot_keeps_one_gpu_round_robin():
    # the pool as the issue asks: gpus[slot % len(gpus)], so no GPU serves more than
    # ceil(jobs / len(gpus)) runs at once (the least-loaded pool it replaces is gone)
    assert [sweep_gpus.gpu_of(slot, ["0", "1", "2"]) for slot in range(5)] == [
        "0", "1", "2", "0", "1"]
    assert sweep_gpus.gpu_of(0, []) is None


LOG = """\
=== run_sac.py 2025-01-01 00:00:00 on host: python train_sac.py ...
=== pid 123
Resuming POSAC_Hopper-v5_s1_w0.0-0.1 at step 50000 on cpu
step 55000/1000000 (5.5%) | episode 90 | last return 812.3 | 71.5 steps/s | ETA 3:40:16
Evaluation over 10 episodes at step 55410:
  Actor 0 - Deterministic: 1234.50
  Actor 0 - Stochastic: 1100.00
  Actor 1 - Deterministic: 1300.25
  Actor 1 - Stochastic: 1200.00
step 60000/1000000 (6.0%) | episode 97 | last return 900.0 | 70.0 steps/s | ETA 3:43:48
"""


def test_progress_is_parsed_from_the_log_and_drawn_one_line_per_run(tmp_path):
    run = sweep_script.Run(task="Hopper-v5", w2_weights=(0.0, 0.1), seed=1, settings={},
                           file_name="POSAC_Hopper-v5_s1_w0.0-0.1", log=tmp_path / "run.log",
                           num_steps=1_000_000)
    run.log.write_text(LOG + "step 65000/1000")  # an incomplete last line is left for later
    state = sweep_view.RunStatus(run=run, status="running", started=time.time())
    state.read_log()
    assert (state.start_step, state.step, state.rate, state.eval_step) == (50000, 60000, 70.0,
                                                                          55410)
    assert state.returns == {0: 1234.5, 1: 1300.25}
    line = state.line()
    assert line.startswith("POSAC_Hopper-v5_s1_w0.0-0.1  running  ")
    assert "60000/1000000   6.0%" in line and "eval@55410: A0 1234.5 A1 1300.2" in line
    assert "ETA" in line

    class Terminal(list):  # a stream that says it is a terminal
        def isatty(self):
            return True

        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    screen = Terminal()
    view = sweep_view.ProgressView([state, sweep_view.RunStatus(run=run)], interval=60,
                                   stream=screen)
    view.refresh(force=True)
    view.refresh(force=True)
    first, second = screen
    assert first.count("\x1b[2K") == 3 and "1 running, 1 pending" in first
    assert second.startswith("\x1b[3F")  # the second frame redraws the same three lines


def test_a_run_locked_by_another_process_is_left_alone(tmp_path):
    write(tmp_path, tiny_config(seeds=[1]))
    log = tmp_path / "results" / "logs" / f"{name(1)}.log"
    log.parent.mkdir(parents=True)
    with open(log, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # as a running train_sac.py child would
        result = sweep(tmp_path, "--no-summary")
    assert result.returncode == 0, result.stderr
    assert row_of(result.stdout, name(1), "busy"), result.stdout
    assert not (tmp_path / "results" / name(1)).exists()


# --------------------------------------------------------------------------- another script
FAKE_SCRIPT = '''\
"""A stand-in training script: the sweep contract only, with another task flag, another
meaning of a single w2 number ([w, w, ...]) and a preflight that knows one missing task."""
import argparse

from training.run_setup import RunPaths, add_output_flags
from utils import OneLineErrorParser, UsageError, parse_w2_weights, run_name

SWEEP_AXIS = "dataset"
SWEEP_SECTION = "datasets"
ACTOR0_WEIGHT_ZERO = False


def build_parser():
    parser = OneLineErrorParser(prog="train_fake.py")
    parser.add_argument("--dataset", default="d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-steps", type=int, default=10)
    parser.add_argument("--num-actors", type=int, default=1)
    parser.add_argument("--w2-weights", default="0.1")
    parser.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=False)
    add_output_flags(parser, "updates")
    return parser


def validate_args(args):
    args.w2_weights = parse_w2_weights(args.w2_weights, args.num_actors, ACTOR0_WEIGHT_ZERO)


def run_paths(args):
    return RunPaths.of(args, run_name("FAKE", args.dataset, args.seed, args.w2_weights),
                       group=args.dataset)


def preflight(args):
    if args.dataset == "missing":
        raise UsageError("no dataset named missing")
    return 123 * args.num_steps
'''


def fake_sweep(root: Path, monkeypatch, datasets: list[str], **common) -> Path:
    """A sweep file naming train_fake.py, which lives in `root` (as the repository root)."""
    (root / "train_fake.py").write_text(FAKE_SCRIPT)
    monkeypatch.setattr(sweep_script, "HERE", root)
    monkeypatch.setitem(sys.modules, "train_fake", None)  # removed again after the test,
    monkeypatch.setattr(sys, "path", list(sys.path))  # like the path the import adds
    return write(root, {"script": "train_fake.py",
                        "common": {"seeds": [1], "enabled_datasets": datasets,
                                   "num_actors": 2, "w2_weights": 0.5, **common},
                        "datasets": {name: {} for name in datasets}})


def test_the_script_key_launches_another_script_through_its_contract_only(tmp_path,
                                                                          monkeypatch):
    runs, script = sweep_config.load_sweep(fake_sweep(tmp_path, monkeypatch, ["a/b"]))
    assert script.name == "train_fake.py" and script.axis == "dataset"
    assert (script.section, script.enabled_key, script.task) == (
        "datasets", "enabled_datasets", "dataset")
    [run] = runs
    assert run.w2_weights == (0.5, 0.5)  # the script's meaning of a single number
    assert run.argv == ["--dataset=a/b", "--seed=1", "--num-actors=2", "--w2-weights=0.5,0.5",
                        "--resume"]
    assert run.command[2] == str(tmp_path / "train_fake.py")
    assert run.file_name == "FAKE_a-b_s1_w0.5-0.5"
    assert run.log == Path("results/logs/FAKE_a-b_s1_w0.5-0.5.log")
    assert run.peak_bytes == 123 * 10  # from the script's preflight


def test_another_scripts_task_flag_is_grid_owned_and_its_preflight_is_reported(tmp_path,
                                                                               monkeypatch):
    path = fake_sweep(tmp_path, monkeypatch, ["a"], dataset="x")
    with pytest.raises(sweep_config.ConfigError) as excinfo:
        sweep_config.load_sweep(path)
    [owned] = excinfo.value.problems
    assert "common.dataset: cannot be set in a sweep" in owned
    path = fake_sweep(tmp_path, monkeypatch, ["a", "missing"])
    with pytest.raises(sweep_config.ConfigError) as excinfo:
        sweep_config.load_sweep(path)
    assert excinfo.value.problems == [
        f"{path}: missing w2 [0.5, 0.5] (seed 1): no dataset named missing"]
    runs, _ = sweep_config.load_sweep(path, thorough=False)  # --summarize: no preflight
    assert [run.task for run in runs] == ["a", "missing"]


def test_a_section_named_for_another_scripts_tasks_is_one_line_naming_the_right_key(
        tmp_path, monkeypatch):
    path = fake_sweep(tmp_path, monkeypatch, ["a"])
    good = yaml.safe_load(path.read_text())
    common = {k: v for k, v in good["common"].items() if k != "enabled_datasets"}
    as_environments = {**common, "enabled_environments": ["a"]}
    cases = [  # (common, the task section's name, the one problem line)
        (as_environments, "environments",
         "train_fake.py's tasks are datasets: rename `environments:` to `datasets:` (and "
         "`enabled_environments` to `enabled_datasets`)"),
        (as_environments, "datasets",
         "train_fake.py's tasks are datasets: rename `common.enabled_environments` to "
         "`common.enabled_datasets`"),
        (good["common"], "environments",
         "unknown top-level key 'environments'; train_fake.py's tasks go under `datasets:`")]
    for common_of_case, section, problem in cases:
        config = {"script": good["script"], "common": common_of_case, section: {"a": {}}}
        with pytest.raises(sweep_config.ConfigError) as excinfo:
            sweep_config.load_sweep(write(tmp_path, config))
        assert excinfo.value.problems == [f"{path}: {problem}"]
    with pytest.raises(sweep_config.ConfigError) as excinfo:  # the task noun in messages
        sweep_config.load_sweep(write(tmp_path, {**good, "datasets": {"b": {}}}))
    assert excinfo.value.problems == [
        f"{path}: enabled dataset 'a' has no entry under `datasets:`; add `a: {{}}` to run "
        f"it with the common settings"]


def test_a_script_that_is_missing_or_lacks_the_contract_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_script, "HERE", tmp_path)
    (tmp_path / "not_a_script.py").write_text("x = 1\n")
    for name, fragment in (("nope.py", "'nope.py' is not a training script"),
                           ("not_a_script.py", "not_a_script.py lacks build_parser")):
        path = write(tmp_path, tiny_config() | {"script": name})
        with pytest.raises(sweep_config.ConfigError) as excinfo:
            sweep_config.load_sweep(path)
        [problem] = excinfo.value.problems
        assert problem.startswith(f"{path}: script: ") and fragment in problem, problem


# a file outside the repository root whose top-level code leaves a mark when it runs
OUTSIDE_SCRIPT = "from pathlib import Path\nPath(__file__).with_name('ran').write_text('')\n"


@pytest.mark.parametrize("form", ["absolute", "relative", "nul"])
def test_a_script_outside_the_repository_root_is_refused_before_its_code_runs(form, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(OUTSIDE_SCRIPT)
    value = {"absolute": str(outside), "relative": os.path.relpath(outside, REPO_ROOT),
             "nul": "train\0.py"}[form]  # (no file name: it was a ValueError traceback)
    write(tmp_path, tiny_config() | {"script": value})
    result = sweep(tmp_path, "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"run_sac.py: error: sweep.yaml: script: {value!r} ")
    assert "without a directory, e.g. script: train_sac.py" in result.stderr
    # never imported: no mark, no bytecode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.py", "sweep.yaml"]


def test_a_link_out_of_the_repository_root_is_refused_before_its_code_runs(tmp_path,
                                                                           monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(sweep_script, "HERE", root)
    monkeypatch.setitem(sys.modules, "train_link", None)  # as fake_sweep: an import, were
    monkeypatch.setattr(sys, "path", list(sys.path))  # there one, is undone after the test
    (tmp_path / "outside.py").write_text(OUTSIDE_SCRIPT)
    (root / "train_link.py").symlink_to(tmp_path / "outside.py")
    path = write(tmp_path, tiny_config() | {"script": "train_link.py"})
    with pytest.raises(sweep_config.ConfigError) as excinfo:
        sweep_config.load_sweep(path)
    [problem] = excinfo.value.problems
    assert problem.startswith(f"{path}: script: 'train_link.py' is not a training script in "
                              f"the repository root {root}"), problem
    assert not (tmp_path / "ran").exists()


def test_error_lines_of_any_script_are_recognised():
    state = sweep_view.RunStatus(run=sweep_script.Run(task="a", w2_weights=(0.0,), seed=1,
                                                      settings={}))
    for line in ("train_fake.py: error: no dataset", "=== run_sac.py: exit status 2",
                 "not an error: train_sac.py: error: x"):
        state.parse(line)
    assert state.error_line == "train_fake.py: error: no dataset"


# --------------------------------------------------------------------------- dry run
def test_dry_run_prints_every_command_and_where_it_writes(tmp_path, monkeypatch):
    config = tiny_config(envs={ENV: {"w2_weights_list": [[0.0, 0.0], [0.0, 0.1]]}})
    write(tmp_path, config)
    results = tmp_path / "results"
    (results / name(1, "0.0-0.0")).mkdir(parents=True)  # a finished run ...
    (results / name(1, "0.0-0.0") / "summary.json").write_text(json.dumps(
        {"steps": 400, "wall_time_s": 1.5, "final_eval": {"actor_0_deterministic": 3.0,
                                                          "actor_1_deterministic": 4.0}}))
    checkpoint = tmp_path / "checkpoints" / ENV / f"{name(2)}_latest.pt"  # ... and a killed one
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # (its config.json, as the run wrote it at its start)
    runs, _ = sweep_config.load_sweep(Path("sweep.yaml"), thorough=False)
    killed = next(run for run in runs if run.file_name == name(2))
    args = train_sac.build_parser().parse_args(killed.argv)
    train_sac.validate_args(args)
    (results / name(2)).mkdir()
    (results / name(2) / "config.json").write_text(json.dumps(run_setup.settings_of(args)))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = sweep(tmp_path, "--dry-run", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("4 runs from sweep.yaml: 1 finished (skipped), 3 to run, ")
    assert "launcher local: 2 at once (--jobs), 1 thread(s) each" in out
    blocks = out.split("\n\n# ")[1:]
    assert [b.split(" [")[0] for b in blocks] == [name(1, "0.0-0.0"), name(2, "0.0-0.0"),
                                                  name(1), name(2)]
    states = [b.split(" [")[1].split("]")[0] for b in blocks]
    assert states == ["finished: skip", "new", "new",
                      f"resume from checkpoints/{ENV}/{name(2)}_latest.pt"]
    for block, (seed, weights) in zip(blocks, [(1, "0.0-0.0"), (2, "0.0-0.0"), (1, "0.0-0.1"),
                                               (2, "0.0-0.1")]):
        header, where, command = block.strip().splitlines()
        assert where == (f"#   results results/{name(seed, weights)}  "
                         f"log results/logs/{name(seed, weights)}.log")
        words = shlex.split(command)
        assert words[:3] == ["OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"]
        assert words[3:6] == [sys.executable, "-u", str(REPO_ROOT / "train_sac.py")]
        args = train_sac.build_parser().parse_args(words[6:])
        assert (args.env_name, args.seed, args.w2_weights, args.num_steps, args.resume) == (
            ENV, seed, weights.replace("-", ","), 400, True)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


# --------------------------------------------------------------------------- real sweeps
def test_tiny_sweep_end_to_end_kill_resume_then_skip(tmp_path):
    write(tmp_path, tiny_config(num_steps=800))
    results, logs = tmp_path / "results", tmp_path / "results" / "logs"
    # 1. --jobs 2; once run s2 has a checkpoint, kill it hard (as the OOM killer would)
    process = start_sweep(tmp_path, "--jobs", "2", "--gpus", "0,1", "--progress-interval", "1",
                          "--no-summary")
    wait_for(tmp_path / "checkpoints" / ENV / f"{name(2)}_latest.pt", process)
    os.kill(child_pid(logs / f"{name(2)}.log"), signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, out + err
    assert row_of(out, name(1), r"finished\s+800/800\s+\S+\s+\S+"), out
    assert row_of(out, name(2), r"failed\s+\d+/800"), out
    assert "killed by SIGKILL" in out
    assert row_of(out, "  " + name(1), r"running\s+\d+/800"), out  # the live progress view
    assert (results / name(1) / "summary.json").exists()
    assert not (results / name(2) / "summary.json").exists()
    assert "--gpus given but some runs have cuda: false" in err
    assert "1 run(s) failed; see their logs. Re-running the sweep retries them" in err
    for seed, gpu in ((1, "0"), (2, "1")):  # round-robin, written into each log's header
        header = (logs / f"{name(seed)}.log").read_text().splitlines()[0]
        assert f"CUDA_VISIBLE_DEVICES={gpu} " in header and "OMP_NUM_THREADS=1 " in header
        assert "CUDA_DEVICE_ORDER=PCI_BUS_ID " in header  # the ids as nvidia-smi -L numbers them

    # 2. re-run: s1 is skipped, s2 resumes from its checkpoint and finishes; meanwhile, on
    # the core the re-run leaves free, s2 uninterrupted (its own command, in another folder)
    log_1 = (logs / f"{name(1)}.log").read_text()
    [run_2] = [r for r in sweep_config.load_sweep(tmp_path / "sweep.yaml", thorough=False)[0]
               if r.seed == 2]
    (tmp_path / "reference").mkdir()
    reference = subprocess.Popen(run_2.command, cwd=tmp_path / "reference",
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    again = sweep(tmp_path, "--jobs", "2")
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 runs: 1 finished already (skipped), 1 to run" in again.stdout
    assert (logs / f"{name(1)}.log").read_text() == log_1  # not started again
    attempt = (logs / f"{name(2)}.log").read_text().split("=== run_sac.py ")[-1]
    resumed_at = int(re.search(rf"^Resuming {re.escape(name(2))} at step (\d+)", attempt,
                               re.M).group(1))
    assert 0 < resumed_at < 800
    assert (results / name(2) / "summary.json").exists()
    assert row_of(again.stdout, name(2), r"finished\s+800/800"), again.stdout
    for path in ("summary.md", "summary.csv", f"curves_{ENV}.png"):
        assert (results / "summary" / path).exists()
    # the killed and resumed run ends as the uninterrupted one (CPU, same seed)
    assert same_results(results / name(2), tmp_path / "reference" / "results" / name(2))

    # 3. re-run: nothing to do
    third = sweep(tmp_path, "--no-summary")
    assert third.returncode == 0, third.stderr
    assert "2 runs: 2 finished already (skipped), 0 to run" in third.stdout
    assert row_of(third.stdout, name(2), r"skipped\s+800/800"), third.stdout


def test_stopping_the_sweep_marks_only_the_runs_it_stopped_interrupted(tmp_path):
    """Runs that finished or failed on their own while the sweep was stopping keep that
    status; only the one the stop ended is `interrupted` (with where it resumes from)."""
    def child(seed: int, code: str, finished: bool) -> sweep_launch.Child:
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        if finished:
            (folder / "summary.json").write_text("{}")
        run = sweep_script.Run(task=ENV, w2_weights=(0.0,), seed=seed, settings={},
                               summary_json=folder / "summary.json",
                               latest_checkpoint=folder / "latest.pt",
                               final_checkpoint=folder / "final.pt", log=folder / "log")
        process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        state = sweep_view.RunStatus(run=run, status="running", started=time.time())
        return sweep_launch.Child(state, process, open(run.log, "w"))

    running = [child(1, "pass", finished=True),
               child(2, "raise SystemExit(1)", finished=False),
               child(3, "import time; time.sleep(60)", finished=False)]
    time.sleep(1.0)  # the first two have ended on their own by now

    class View:
        def refresh(self, force: bool = False) -> None:
            pass

    stop = sweep_launch.CaughtSignals(signal.SIGINT)
    stop.signum, stop.count = signal.SIGINT, 1
    sweep_launch.stop_local(running, [], stop, View(), grace=5.0)
    assert [c.state.status for c in running] == ["finished", "failed", "interrupted"]
    assert running[2].state.message == "no checkpoint yet: starts over"


def test_ctrl_c_stops_children_and_leaves_them_resumable(tmp_path):
    write(tmp_path, tiny_config(seeds=[1], num_steps=100_000))
    process = start_sweep(tmp_path, "--jobs", "1", "--threads-per-job", "1", "--no-summary")
    checkpoint = tmp_path / "checkpoints" / ENV / f"{name(1)}_latest.pt"
    wait_for(checkpoint, process)
    log = tmp_path / "results" / "logs" / f"{name(1)}.log"
    pid = child_pid(log)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Ctrl-C: stopping 1 running run(s)" in err
    assert row_of(out, name(1), "interrupted"), out
    assert f"└ resumes from checkpoints/{ENV}/{name(1)}_latest.pt" in out
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone ...
    with open(log, "a") as handle:  # ... and nothing holds its log (this would raise)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert checkpoint.exists() and not (tmp_path / "results" / name(1) / "summary.json").exists()
    dry = sweep(tmp_path, "--dry-run")
    assert f"# {name(1)} [resume from checkpoints/{ENV}/{name(1)}_latest.pt]" in dry.stdout


def test_a_failing_run_does_not_stop_the_others(tmp_path):
    # lr 1e30 passes every input check but diverges: train_sac.py stops with exit status 1
    envs = {"InvertedDoublePendulum-v5": {"w2_weights": [0.0, 0.1], "lr": 1e30},
            ENV: {"w2_weights": [0.0, 0.1]}}
    write(tmp_path, tiny_config(seeds=[1], num_steps=300, envs=envs))
    result = sweep(tmp_path, "--jobs", "1", "--threads-per-job", "1", "--no-summary")
    assert result.returncode == 1
    failing = name(1, env="InvertedDoublePendulum-v5")
    assert row_of(result.stdout, failing, "failed"), result.stdout
    assert "train_sac.py: error: non-finite " in result.stdout
    assert row_of(result.stdout, name(1), r"finished\s+300/300"), result.stdout
    assert "1 run(s) failed" in result.stderr
    started = re.findall(r"started  (\S+)", result.stdout)
    assert started == [failing, name(1)]  # the good run started after the failure


def test_submitit_local_executor_runs_the_job_array_survives_preemption_then_skips(tmp_path):
    write(tmp_path, tiny_config(num_steps=800))
    process = start_sweep(tmp_path, "--launcher", "submitit-local", "--no-summary")
    wait_for(tmp_path / "checkpoints" / ENV / f"{name(2)}_latest.pt", process)
    # preempt run s2's job the way Slurm does: SIGUSR2 to the job's (submitit) process,
    # the parent of the train_sac.py child; it is stopped, requeued and resumed
    log = tmp_path / "results" / "logs" / f"{name(2)}.log"
    job_pid = int(Path(f"/proc/{child_pid(log)}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(job_pid, signal.SIGUSR2)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert "submitted 2 run(s) through submitit: local jobs" in out
    for seed in (1, 2):
        assert row_of(out, name(seed), r"finished\s+800/800"), out
        assert (tmp_path / "results" / name(seed) / "summary.json").exists()
    attempts = log.read_text().split("=== run_sac.py ")[1:]
    assert len(attempts) == 2, log.read_text()
    assert f"Starting {name(2)} at step 0" in attempts[0]
    assert int(re.search(r"^Resuming \S+ at step (\d+)", attempts[1], re.M).group(1)) > 0
    jobs = [p for p in (tmp_path / "results" / "submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2 and all(list(job.glob("*_result.pkl")) for job in jobs)
    again = sweep(tmp_path, "--launcher", "submitit-local", "--no-summary")
    assert again.returncode == 0
    assert "0 to run" in again.stdout and "submitted" not in again.stdout


def test_slurm_launcher_submits_one_job_array_with_the_options(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\nfor a; do last=$a; done\n'
                                    'cp "$last" "$SBATCH_COPY"\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    write(tmp_path, tiny_config(cuda=True))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "SBATCH_COPY": str(tmp_path / "script.sh")}
    result = subprocess.run(
        [sys.executable, str(RUN_SAC), "--config", "sweep.yaml", "--launcher", "slurm",
         "--partition", "gpu", "--time", "1-00:00", "--gpus-per-task", "1", "--cpus-per-task",
         "3", "--jobs", "1", "--slurm-extra", "account=proj", "--detach"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Slurm job array 4242" in result.stdout
    assert f"4242_1  {name(2)}" in result.stdout
    script = (tmp_path / "script.sh").read_text()
    for line in ("--array=0-1%1", "--partition=gpu", "--time=1440", "--gpus-per-node=1",
                 "--cpus-per-task=3", "--account=proj", "--signal=USR2@90"):
        assert f"#SBATCH {line}\n" in script, script


NVIDIA_SMI_L = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2e8a6bd4-0f1e-4c52-9d3b-6a2f1c0e7b11)
  MIG 1g.5gb      Device  0: (UUID: MIG-c7384736-a75d-5afc-978f-d2f1294409fd)
"""


def fake_nvidia_smi(tmp_path: Path, monkeypatch, stdout: str, status: int = 0) -> None:
    """An `nvidia-smi` first on PATH that prints `stdout` and exits with `status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "listing.txt").write_text(stdout)
    tool = bin_dir / "nvidia-smi"
    tool.write_text(f'#!/bin/sh\ncat "{bin_dir / "listing.txt"}"\nexit {status}\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_the_machines_gpus_are_read_from_nvidia_smi(tmp_path, monkeypatch):
    """Indices and GPU-/MIG- UUIDs, as CUDA_VISIBLE_DEVICES takes them; a UUID may be given
    by a unique prefix, as CUDA allows; every id must name one device, each once."""
    fake_nvidia_smi(tmp_path, monkeypatch, NVIDIA_SMI_L)
    devices = sweep_gpus.machine_gpus()
    assert devices == [("0", "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"),
                       ("1", "GPU-2e8a6bd4-0f1e-4c52-9d3b-6a2f1c0e7b11"),
                       ("MIG-c7384736-a75d-5afc-978f-d2f1294409fd",)]
    sweep_gpus.check_gpu_ids(["1", "GPU-5d5b", "MIG-c7384736"], devices)
    for gpus, message in ((["0", "2"], "--gpus 2: not a GPU of this machine (nvidia-smi -L "
                                       "lists 0,1)"),
                          (["GPU-2e8b"], "--gpus GPU-2e8b: not a GPU"),
                          (["MIG-0"], "--gpus MIG-0: not a GPU"),
                          (["GPU-"], "--gpus GPU-: the start of 2 UUIDs of this machine"),
                          (["1", "GPU-2e8a"], "--gpus 1 and GPU-2e8a name one GPU")):
        with pytest.raises(run_setup.UsageError, match=f"^{re.escape(message)}"):
            sweep_gpus.check_gpu_ids(gpus, devices)
    fake_nvidia_smi(tmp_path, monkeypatch, "No devices were found\n", status=6)
    assert sweep_gpus.machine_gpus() == []
    fake_nvidia_smi(tmp_path, monkeypatch, "NVIDIA-SMI has failed because it couldn't "
                    "communicate with the NVIDIA driver.\n", status=9)
    assert sweep_gpus.machine_gpus() is None  # cannot say: the runs' own --cuda check


def test_gpus_this_machine_has_not_are_one_line_before_anything_starts(tmp_path, monkeypatch):
    """`--gpus 0,2` on a machine with GPUs 0 and 1: run 2's CUDA_VISIBLE_DEVICES=2 would
    hide every GPU from it. Refused with one line, exit 2, nothing written; ids it has
    pass (here in a dry run: this machine has no GPU to train on)."""
    fake_nvidia_smi(tmp_path, monkeypatch, NVIDIA_SMI_L)
    write(tmp_path, tiny_config(cuda=True))
    before = sorted(tmp_path.rglob("*"))
    result = sweep(tmp_path, "--jobs", "2", "--gpus", "0,2")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("run_sac.py: error: --gpus 2: not a GPU of this machine "
                             "(nvidia-smi -L lists 0,1); give indices or UUIDs that "
                             "nvidia-smi -L lists\n")
    assert sorted(tmp_path.rglob("*")) == before
    result = sweep(tmp_path, "--jobs", "2", "--gpus", "1,GPU-5d5ba0d6", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "GPU k mod 2 of 1,GPU-5d5ba0d6" in result.stdout
    fake_nvidia_smi(tmp_path, monkeypatch, "No devices were found\n", status=6)
    result = sweep(tmp_path, "--gpus", "0")
    assert result.returncode == 2 and "nvidia-smi -L lists none" in result.stderr


def test_logs_on_a_file_system_without_flock_are_one_line_before_any_run_starts(
        tmp_path, monkeypatch, capsys):
    """ENOLCK, as some NFS mounts give, at the first run's log: one line naming the log and
    the cause, exit 2, no run started."""
    write(tmp_path, tiny_config())
    monkeypatch.chdir(tmp_path)
    without_flock(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        run_sac.main(["--config", "sweep.yaml", "--jobs", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    log = Path("results") / "logs" / f"{name(1)}.log"  # as the sweep names it
    assert err == [f"run_sac.py: error: cannot lock {log} (No locks available): its file "
                   f"system does not support flock, which keeps two processes from writing "
                   f"one output; put it on one that does (a local disk)"]
    assert not (tmp_path / "results" / name(1)).exists()


# --------------------------------------------------------------------------- faults
# name: (summary.json's bytes, a fragment of what the sweep says is wrong with it)
CORRUPT_SUMMARIES = {
    "truncated": (b'{\n  "final_eval": {\n    "actor_0_det',
                  "not valid JSON: Unterminated string starting at: line 3 column 5"),
    "empty": (b"", "not valid JSON: Expecting value: line 1 column 1"),
    "not_utf8": (b"\x80\x81", "not valid JSON: not UTF-8 text"),
    "not_an_object": (b"[1, 2]", "not a JSON object (a list)"),
    "keys_missing": (b'{"steps": 400}', "no wall_time_s, final_eval"),
    "actor_missing": ((b'{"steps": 400, "wall_time_s": 1.5, '
                       b'"final_eval": {"actor_0_deterministic": 3.0}}'),
                      "final_eval has no actor_1_deterministic"),
    "not_numbers": (b'{"steps": "400", "wall_time_s": 1.5, "final_eval": null}',
                    "steps '400'; final_eval None: not a number"),
}


@pytest.mark.parametrize("case", list(CORRUPT_SUMMARIES))
def test_an_unreadable_summary_json_is_named_with_what_is_wrong(case, tmp_path):
    run = sweep_script.Run(task=ENV, w2_weights=(0.0, 0.1), seed=1, settings={},
                           summary_json=tmp_path / "summary.json")
    text, fragment = CORRUPT_SUMMARIES[case]
    run.summary_json.write_bytes(text)
    assert run.finished  # still finished: never started again
    assert fragment in run.summary_problem()
    run.summary_json.write_text(json.dumps({"steps": 400, "wall_time_s": 1.5, "final_eval": {
        "actor_0_deterministic": 3.0, "actor_1_deterministic": 4.0}}))
    assert run.summary_problem() is None


def test_a_lost_summary_json_is_reported_never_rerun_and_can_be_rebuilt(tmp_path):
    """A finished run whose summary.json is gone (its final checkpoint is there, its resume
    checkpoints were deleted when it finished) does not block the sweep: it is reported as
    corrupt, never trained again, and --rebuild-summaries writes it from the metrics CSV."""
    write(tmp_path, tiny_config(seeds=[1], num_steps=400))
    assert sweep(tmp_path, "--no-summary").returncode == 0
    summary_json = tmp_path / "results" / name(1) / "summary.json"
    final_eval = json.loads(summary_json.read_text())["final_eval"]
    summary_json.unlink()

    result = sweep(tmp_path, "--no-summary")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 runs: 1 finished already (skipped), 0 to run" in result.stdout
    assert ("└ summary.json unreadable (missing, beside the run's final checkpoint); not "
            "re-run, nothing overwritten; its metrics CSV and final checkpoint are intact"
            ) in result.stdout
    assert not summary_json.exists()
    rebuilt = sweep(tmp_path, "--rebuild-summaries")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert json.loads(summary_json.read_text())["final_eval"] == final_eval
    again = sweep(tmp_path, "--no-summary")
    assert again.returncode == 0 and row_of(again.stdout, name(1), "skipped"), again.stdout


def test_a_corrupt_summary_json_is_reported_never_rerun_and_can_be_rebuilt(tmp_path):
    write(tmp_path, tiny_config(num_steps=400))
    results = tmp_path / "results"
    csv_1 = results / name(1) / "training" / f"{name(1)}_metrics.csv"
    write_metrics(csv_1, [(200, 1.0, 2.0), (400, 3.0, 4.0)])  # two finished runs, whose ...
    write_metrics(results / name(2) / "training" / f"{name(2)}_metrics.csv", [(300, 5.0, 6.0)])
    damaged = {1: CORRUPT_SUMMARIES["truncated"][0],  # ... summary.json got damaged (and s2's
               2: CORRUPT_SUMMARIES["keys_missing"][0]}  # CSV lost its last evaluation)
    for seed, text in damaged.items():
        (results / name(seed) / "summary.json").write_bytes(text)

    result = sweep(tmp_path, "--no-summary")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "2 runs: 2 finished already (skipped), 0 to run" in out
    assert row_of(out, name(1), r"corrupt\s+400/400\s+3\.00\s+4\.00"), out  # from the CSV
    assert row_of(out, name(2), r"corrupt\s+300/400\s+5\.00\s+6\.00"), out
    assert (f"└ summary.json unreadable (not valid JSON: Unterminated string starting at: "
            f"line 3 column 5); not re-run, nothing overwritten; its metrics CSV is intact: "
            f"rebuild summary.json from the metrics CSV with python run_sac.py --config "
            f"sweep.yaml --rebuild-summaries, or delete results/{name(1)} to train the run "
            f"again") in out
    assert "└ summary.json unreadable (no wall_time_s, final_eval); not re-run" in out
    assert ("2 finished run(s) have an unreadable summary.json (see the notes under their "
            "rows); they are not re-run.") in result.stderr
    assert not (results / "logs").exists()  # nothing started
    assert all((results / name(seed) / "summary.json").read_bytes() == text
               for seed, text in damaged.items())  # nor anything overwritten

    dry = sweep(tmp_path, "--dry-run")
    assert (f"# {name(1)} [finished, but summary.json unreadable (not valid JSON: "
            f"Unterminated string starting at: line 3 column 5): skip; see "
            f"--rebuild-summaries]") in dry.stdout

    summary = sweep(tmp_path, "--summarize")  # reads the metrics CSVs: works as ever
    assert summary.returncode == 0, summary.stderr
    assert summary.stderr.count("summary.json unreadable") == 2, summary.stderr
    with open(results / "summary" / "summary.csv") as handle:
        assert [row["finished_seeds"] for row in csv.DictReader(handle)] == ["2", "2"]

    rebuilt = sweep(tmp_path, "--rebuild-summaries")
    assert rebuilt.returncode == 1  # s2's CSV does not reach its end: it cannot be rebuilt
    assert (f"rebuilt results/{name(1)}/summary.json (not valid JSON: Unterminated string "
            f"starting at: line 3 column 5) from the final evaluation at step 400 of "
            f"results/{name(1)}/training/{name(1)}_metrics.csv") in rebuilt.stdout
    assert rebuilt.stderr == (
        f"run_sac.py: error: cannot rebuild results/{name(2)}/summary.json (no wall_time_s, "
        f"final_eval): its metrics CSV results/{name(2)}/training/{name(2)}_metrics.csv ends "
        f"at step 300 of 400; delete results/{name(2)} to train the run again\n")
    summary_1 = json.loads((results / name(1) / "summary.json").read_text())
    assert summary_1 == {"file_name": name(1), "steps": 400, "wall_time_s": 1,
                         "rebuilt_from": str(Path("results", name(1), "training",
                                                  f"{name(1)}_metrics.csv")),
                         "final_eval": {"step": 400, "episode": 10, "wall_time_s": 1,
                                        "actor_0_deterministic": 3.0,
                                        "actor_0_deterministic_std": 0.0,
                                        "actor_1_deterministic": 4.0,
                                        "actor_1_deterministic_std": 0.0, "critic_loss": 1.0}}
    again = sweep(tmp_path, "--no-summary")
    assert row_of(again.stdout, name(1), r"skipped\s+400/400\s+3\.00\s+4\.00"), again.stdout
    assert row_of(again.stdout, name(2), "corrupt"), again.stdout

    (results / name(1) / "config.json").write_text('{"lr": 0.0')  # and a damaged config.json
    broken = sweep(tmp_path, "--no-summary")
    assert broken.returncode == 2 and broken.stdout == ""
    [line] = broken.stderr.splitlines()
    assert line.startswith(f"run_sac.py: error: sweep.yaml: {ENV} w2 [0.0, 0.1] (seed 1): "
                           f"train_sac.py rejects these settings: cannot read "
                           f"results/{name(1)}/config.json (Expecting"), line
    assert line.endswith(f"restore it, or delete results/{name(1)} to train the run again")


def test_the_yaml_edited_mid_sweep_changes_nothing_until_the_next_sweep_checks_it(tmp_path):
    config = tiny_config(num_steps=150, start_steps=100)  # random actions only: quick
    path = write(tmp_path, config)
    results, logs = tmp_path / "results", tmp_path / "results" / "logs"
    process = start_sweep(tmp_path, "--jobs", "1", "--no-summary")
    wait_for(logs / f"{name(1)}.log", process)  # s1 starts; s2 only after it ends
    edited = tiny_config(seeds=[1, 2, 3], num_steps=150, start_steps=100, lr=0.001)
    write(tmp_path, edited)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert "2 runs: 0 finished already (skipped), 2 to run" in out  # the plan of the start
    for seed in (1, 2):
        assert row_of(out, name(seed), r"finished\s+150/150"), out
        saved = json.loads((results / name(seed) / "config.json").read_text())
        assert saved["lr"] == 0.0003  # s2 started after the edit, with the file it validated
    assert not (results / name(3)).exists()
    logs_before = {p.name: p.read_text() for p in logs.iterdir()}

    # the next sweep checks the edited file: the changed lr of runs with results is refused
    # by train_sac.py's resume check, before anything starts
    refused = sweep(tmp_path, "--no-summary")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"run_sac.py: error: sweep.yaml: {ENV} w2 [0.0, 0.1] (seed {seed}): train_sac.py rejects "
        f"these settings: --resume with settings that differ from the saved run in "
        f"results/{name(seed)}/config.json: lr (saved 0.0003, now 0.001)" for seed in (1, 2)]
    text = path.read_text()  # an edit that breaks the file: the usual one-line errors
    write(tmp_path, text.replace("common:", "common: [", 1))
    invalid = sweep(tmp_path, "--no-summary")
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert re.fullmatch(r"run_sac\.py: error: sweep\.yaml:\d+:\d+: malformed YAML: .*\n",
                        invalid.stderr), invalid.stderr
    assert {p.name: p.read_text() for p in logs.iterdir()} == logs_before  # nothing started
    assert not (results / name(3)).exists()

    # the edit that adds seed 3 (lr as before): s3 is planned, s1 and s2 are skipped (the
    # launch of such a plan is the kill test's re-run; benchmarks/sweep_faults.py runs it)
    write(tmp_path, tiny_config(seeds=[1, 2, 3], num_steps=150, start_steps=100))
    plan = sweep(tmp_path, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("3 runs from sweep.yaml: 2 finished (skipped), 1 to run")
    assert [line for line in plan.stdout.splitlines() if line.startswith("# POSAC")] == [
        f"# {name(1)} [finished: skip]", f"# {name(2)} [finished: skip]", f"# {name(3)} [new]"]


# --------------------------------------------------------------------------- results summary
def exact_bootstrap_quantile(values: list[float], q: float) -> float:
    """The q-quantile of the exact bootstrap distribution of the mean: all n**n resamples."""
    means = sorted(sum(pick) / len(values)
                   for pick in itertools.product(values, repeat=len(values)))
    return means[max(0, math.ceil(q * len(means)) - 1)]


def write_metrics(path: Path, rows: list[tuple[int, float, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "episode", "wall_time_s", "actor_0_deterministic",
                         "actor_0_deterministic_std", "actor_1_deterministic",
                         "actor_1_deterministic_std", "critic_loss"])
        for k, (step, a0, a1) in enumerate(rows):
            writer.writerow([step, 10 * k, k, a0, 0.0, a1, 0.0, 1.0])


def test_summary_numbers_against_hand_made_metrics(tmp_path):
    config = tiny_config(seeds=[1, 2, 3, 4],
                         envs={ENV: {"w2_weights_list": [[0.0, 0.0], [0.0, 0.5]]}})
    write(tmp_path, config)
    runs = tmp_path / "results"
    # (step, actor 0, actor 1) per evaluation; the seeds evaluate at different steps
    evals = {1: [(100, 10.0, 1.0), (300, 30.0, 5.0), (500, 100.0, 9.0)],
             2: [(150, 20.0, 2.0), (350, 250.0, 6.0), (520, 200.0, 8.0)],
             3: [(120, 5.0, 3.0), (330, 35.0, 4.0), (400, 400.0, 7.0)],
             4: [(90, 0.0, 4.0), (310, 60.0, 3.0), (510, 800.0, 10.0)]}
    for seed, rows in evals.items():
        run = name(seed, "0.0-0.0")
        write_metrics(runs / run / "training" / f"{run}_metrics.csv", rows)
    (runs / name(1, "0.0-0.0") / "summary.json").write_text("{}")
    write_metrics(runs / name(2, "0.0-0.5") / "training" / f"{name(2, '0.0-0.5')}_metrics.csv",
                  [(200, 7.0, 70.0), (400, 9.0, 90.0)])  # one seed only

    result = sweep(tmp_path, "--summarize")
    assert result.returncode == 0, result.stderr
    with open(runs / "summary" / "summary.csv") as handle:
        table = {(row["w2_weights"], int(row["actor"])): row for row in csv.DictReader(handle)}
    assert set(table) == {("[0.0, 0.0]", 0), ("[0.0, 0.0]", 1), ("[0.0, 0.5]", 0),
                          ("[0.0, 0.5]", 1)}
    for actor in (0, 1):
        row = table[("[0.0, 0.0]", actor)]
        final = [rows[-1][1 + actor] for rows in evals.values()]
        best = [max(r[1 + actor] for r in rows) for rows in evals.values()]
        assert (int(row["seeds"]), int(row["finished_seeds"])) == (4, 1)
        assert (int(row["steps_min"]), int(row["steps_max"])) == (400, 520)
        for kind, values in (("final", final), ("best", best)):
            assert float(row[f"{kind}_mean"]) == pytest.approx(sum(values) / 4)
            # a Monte Carlo percentile of 10,000 resamples lies within ±1 percentage point
            # of the exact bootstrap quantile (over 6 binomial standard deviations)
            low, high = float(row[f"{kind}_ci_low"]), float(row[f"{kind}_ci_high"])
            assert (exact_bootstrap_quantile(values, 0.015) <= low
                    <= exact_bootstrap_quantile(values, 0.035)), (kind, actor, low)
            assert (exact_bootstrap_quantile(values, 0.965) <= high
                    <= exact_bootstrap_quantile(values, 0.985)), (kind, actor, high)
    single = table[("[0.0, 0.5]", 1)]
    assert (int(single["seeds"]), float(single["final_mean"]), float(single["best_mean"])) == (
        1, 90.0, 90.0)
    assert single["final_ci_low"] == single["final_ci_high"] == ""  # no interval from one seed

    markdown = (runs / "summary" / "summary.md").read_text()
    row = table[("[0.0, 0.0]", 0)]
    assert (f"| [0.0, 0.0] | 0 | 4 (1 finished) | 400–520 | {float(row['final_mean']):.1f} "
            f"[{float(row['final_ci_low']):.1f}, {float(row['final_ci_high']):.1f}] |") in markdown
    assert "| [0.0, 0.5] | 1 | 1 (0 finished) | 400 | 90.0 | 90.0 | – | – | – |" in markdown

    # learning curve: every seed interpolated linearly onto the union of evaluation steps
    # between the latest first evaluation (150) and the earliest last one (400)
    with open(runs / "summary" / f"curves_{ENV}.csv") as handle:
        curve = [r for r in csv.DictReader(handle)
                 if r["w2_weights"] == "[0.0, 0.0]" and r["actor"] == "0"]
    assert [int(r["step"]) for r in curve] == [150, 300, 310, 330, 350, 400]

    def at(rows, step):  # linear interpolation of actor 0 between two evaluations
        for (s0, v0, _), (s1, v1, _) in zip(rows, rows[1:]):
            if s0 <= step <= s1:
                return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
        raise AssertionError(step)

    for point in curve:
        expected = sum(at(rows, int(point["step"])) for rows in evals.values()) / 4
        assert float(point["mean"]) == pytest.approx(expected)
    png = (runs / "summary" / f"curves_{ENV}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_return_at_100k_and_its_late_average_interpolate_and_skip_seeds_short_of_it(
        tmp_path):
    write(tmp_path, tiny_config(seeds=[1, 2, 3]))
    runs = tmp_path / "results"
    evals = {1: [(60_000, 10.0, 1.0), (98_000, 20.0, 2.0), (102_000, 40.0, 4.0)],
             2: [(50_000, 5.0, 5.0), (100_000, 70.0, 7.0), (300_000, 900.0, 9.0)],
             3: [(40_000, 1.0, 1.0), (90_000, 3.0, 3.0)]}  # still short of 100k
    for seed, rows in evals.items():
        write_metrics(runs / name(seed) / "training" / f"{name(seed)}_metrics.csv", rows)
    result = sweep(tmp_path, "--summarize")
    assert result.returncode == 0, result.stderr
    with open(runs / "summary" / "summary.csv") as handle:
        row, row_1 = sorted(csv.DictReader(handle), key=lambda r: r["actor"])
    # seed 1 halfway between 98k (20) and 102k (40); seed 2 evaluated at 100k exactly
    assert int(row["at_step_seeds"]) == 2
    assert float(row["at_step_mean"]) == pytest.approx((30.0 + 70.0) / 2)
    assert float(row["final_mean"]) == pytest.approx((40.0 + 900.0 + 3.0) / 3)
    # 80k-100k average of the interpolated curve, by hand: seed 1 is 10 + 10·(20/38) at 80k,
    # 20 at 98k and 30 at 100k (two trapezoids over 18k and 2k steps); seed 2 is a straight
    # line from (50k, 5) to (100k, 70), so its average is its value at 90k
    seed_1 = ((10.0 + 10.0 * 20 / 38 + 20.0) / 2 * 18_000 + (20.0 + 30.0) / 2 * 2_000) / 20_000
    seed_2 = 5.0 + 65.0 * 40 / 50
    assert float(row["window_mean"]) == pytest.approx((seed_1 + seed_2) / 2)
    assert float(row["window_ci_low"]) == pytest.approx(min(seed_1, seed_2))
    assert float(row["window_ci_high"]) == pytest.approx(max(seed_1, seed_2))
    # actor 1 minus actor 0, paired by seed: actor 1's evaluations of seed 1 are actor 0's
    # divided by 10; seed 2's line runs from (50k, 5) to (100k, 7), 6.6 at 90k
    differences = (seed_1 / 10 - seed_1, 6.6 - seed_2)
    assert float(row_1["window_vs_actor0_mean"]) == pytest.approx(sum(differences) / 2)
    assert float(row_1["window_vs_actor0_ci_low"]) == pytest.approx(min(differences))
    assert float(row_1["window_vs_actor0_ci_high"]) == pytest.approx(max(differences))
    assert row["window_vs_actor0_mean"] == ""  # actor 0 has no difference to itself
    markdown = (runs / "summary" / "summary.md").read_text()
    assert (f"| {float(row['at_step_mean']):.1f} [{float(row['at_step_ci_low']):.1f}, "
            f"{float(row['at_step_ci_high']):.1f}] (n=2) | {float(row['window_mean']):.1f} [") \
        in markdown
    assert (f"| {float(row_1['window_vs_actor0_mean']):.1f} "
            f"[{float(row_1['window_vs_actor0_ci_low']):.1f}, ") in markdown
