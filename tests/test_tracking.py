"""--track (training/tracking.py) with no network: W&B in offline mode writes the run's
folder, read back here by an independent reader of W&B's transaction log (the LevelDB log
format of its .wandb files, records decoded with W&B's protobuf definitions): config,
history and summary against the run's own config.json, metrics CSV and summary.json; one run
id across a SIGKILL and --resume; the same numbers with and without --track; bad input."""

import csv
import hashlib
import json
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (REPO_ROOT, kill_at_first_checkpoint, output_flags,
                      random_pendulum_hdf5)

import train_pogo
from sweeps.config import load_sweep
from training import tracking

TINY = ["--env-name", "InvertedPendulum-v5", "--seed", "2", "--num-actors", "2",
        "--w2-weights", "1.0,0.5", "--num-samples", "2", "--num-steps", "300",
        "--eval-freq", "100", "--eval-episodes", "1", "--batch-size", "16",
        "--hidden-size", "16", "--log-freq", "100", "--checkpoint-freq", "100"]
RUN = "POGO_invertedpendulum_random_s2_w1.0-0.5"
LOG_BLOCK = 32768  # LevelDB log: 32 KiB blocks of records, each with a 7-byte header


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return random_pendulum_hdf5(tmp_path_factory.mktemp("data") / "invertedpendulum_random.hdf5",
                                1000)


@pytest.fixture()
def offline_wandb(monkeypatch, tmp_path):
    """W&B offline, its configuration and caches in the test's folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))


def command(dataset: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(Path(REPO_ROOT) / "train_pogo.py"), "--dataset", str(dataset),
            *TINY, *output_flags(root), *extra]


def log_records(path: Path):
    """The records of a LevelDB-format log after W&B's 7-byte file header (':W&B', magic,
    version): each record header is crc32 (4 bytes), length (2), type (1: full, 2: first,
    3: middle, 4: last); a block's tail shorter than a header is padding."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = LOG_BLOCK - position % LOG_BLOCK
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 2):
            pending = chunk
        elif kind in (3, 4):
            pending += chunk
        if kind in (1, 4):
            yield pending


def read_offline_run(folder: Path) -> dict:
    """run id, group, config, history rows and summary of one offline-run-* folder."""
    from wandb.proto import wandb_internal_pb2

    (log,) = folder.glob("run-*.wandb")
    run = {"config": {}, "history": [], "summary": {}}
    for raw in log_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(id=record.run.run_id, group=record.run.run_group,
                       name=record.run.display_name)
            run["config"].update({item.key: json.loads(item.value_json)
                                  for item in record.run.config.update})
        elif kind == "history":
            run["history"].append({"/".join(item.nested_key) or item.key:
                                   json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            run["summary"].update({"/".join(item.nested_key) or item.key:
                                   json.loads(item.value_json) for item in record.summary.update})
    return run


def offline_runs(root: Path) -> list[Path]:
    return sorted((root / "results" / RUN / "wandb").glob("offline-run-*"))


def csv_rows(root: Path) -> list[dict[str, str]]:
    with open(root / "results" / RUN / "training" / f"{RUN}_metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "wall_time_s"}
                for row in csv.DictReader(handle)]


def test_offline_run_holds_every_flag_each_evaluation_and_the_final_summary(
        dataset, tmp_path, offline_wandb):
    plain, tracked = tmp_path / "plain", tmp_path / "tracked"
    for root, extra in ((plain, []), (tracked, ["--track", "--wandb-group", "g1"])):
        result = subprocess.run(command(dataset, root, *extra), capture_output=True, text=True,
                                timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert csv_rows(tracked) == csv_rows(plain)  # tracking changes no number
    assert not (plain / "results" / RUN / "wandb").exists()

    (folder,) = offline_runs(tracked)
    run = read_offline_run(folder)
    stored_id = (tracked / "results" / RUN / tracking.RUN_ID_FILE).read_text().strip()
    assert run["id"] == stored_id and folder.name.endswith(stored_id)
    assert (run["group"], run["name"]) == ("g1", RUN)
    settings = json.loads((tracked / "results" / RUN / "config.json").read_text())
    assert {k: run["config"][k] for k in settings} == settings
    assert run["config"]["program"] == "train_pogo.py"
    final = json.loads((tracked / "results" / RUN / "summary.json").read_text())["final_eval"]
    for key, value in final.items():
        assert run["summary"][key] == pytest.approx(value), key
    evaluations = [row for row in run["history"] if "eval/actor_1_deterministic" in row]
    assert [row["global_step"] for row in evaluations] == [100, 200, 300]
    assert [row["eval/spread_1"] for row in evaluations] == pytest.approx(
        [float(row["spread_1"]) for row in csv_rows(tracked)])
    training = [row for row in run["history"] if "train/critic_loss" in row]
    assert [row["global_step"] for row in training] == [100, 200, 300]


def test_a_killed_and_resumed_run_continues_one_wandb_run(dataset, tmp_path, offline_wandb):
    checkpoint = tmp_path / "checkpoints" / "invertedpendulum_random" / f"{RUN}_latest.pt"
    kill_at_first_checkpoint(command(dataset, tmp_path, "--track"), tmp_path, checkpoint)
    stored_id = (tmp_path / "results" / RUN / tracking.RUN_ID_FILE).read_text().strip()
    result = subprocess.run(command(dataset, tmp_path, "--track", "--resume"),
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0 and "Resuming" in result.stdout, result.stderr
    folders = offline_runs(tmp_path)
    # one folder per session, both of the same W&B run (`wandb sync` joins them); the killed
    # session's log may end before W&B wrote its records, so its id is read from its name
    assert len(folders) == 2 and all(f.name.endswith(f"-{stored_id}") for f in folders)
    assert (tmp_path / "results" / RUN / tracking.RUN_ID_FILE).read_text().strip() == stored_id
    resumed = read_offline_run(folders[1])
    assert resumed["id"] == stored_id
    assert resumed["summary"]["actor_0_deterministic"] == pytest.approx(
        json.loads((tmp_path / "results" / RUN / "summary.json").read_text())
        ["final_eval"]["actor_0_deterministic"])
    # finished: a further start is skipped before W&B is opened, so nothing is logged again
    again = subprocess.run(command(dataset, tmp_path, "--track", "--resume"),
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and len(offline_runs(tmp_path)) == 2, again.stderr


@pytest.mark.parametrize("during_evaluation", [False, True])
def test_a_stopped_session_and_its_resume_send_each_value_once(
        dataset, tmp_path, offline_wandb, monkeypatch, during_evaluation):
    """SIGTERM at step 300 (the last checkpoint at 200), after its evaluation or inside it
    (step 300's training scalars sent, its evaluation not): the resumed session replays step
    300 with the same numbers and sends only what the first did not, so the W&B run's
    history holds every value once and every evaluation the CSV holds."""
    from training.experiment import Experiment
    from utils import Stopped

    record = Experiment.record_evaluation

    def stop_at_300(self, *args, **kwargs):
        stop = self.state.total_steps == 300 and not self.resumed
        if stop and during_evaluation:
            raise Stopped(signal.SIGTERM)  # what the evaluator's stop check raises
        record(self, *args, **kwargs)
        if stop:
            raise Stopped(signal.SIGTERM)  # what a SIGTERM raises at the next safe point

    monkeypatch.setattr(Experiment, "record_evaluation", stop_at_300)
    argv = ["--dataset", str(dataset), *TINY, *output_flags(tmp_path), "--track",
            "--num-steps", "500", "--checkpoint-freq", "200"]
    with pytest.raises(SystemExit) as stopped:
        train_pogo.main(argv)
    assert stopped.value.code == 143
    sent = json.loads((tmp_path / "results" / RUN / tracking.SENT_FILE).read_text())
    assert sent["step"] == 300 and ("eval/spread_1" in sent["tags"]) != during_evaluation
    train_pogo.main([*argv, "--resume"])
    sessions = [read_offline_run(folder)["history"] for folder in offline_runs(tmp_path)]
    # (a step's training scalars and its evaluation are two rows of one step)
    assert [sorted({row["global_step"] for row in rows}) for rows in sessions] == [
        [100, 200, 300], [300, 400, 500] if during_evaluation else [400, 500]]
    sent_values = [(row["global_step"], tag) for rows in sessions for row in rows
                   for tag in row if tag.startswith(("eval/", "train/"))]
    assert len(sent_values) == len(set(sent_values)) > 5 * 2  # no value twice
    evaluations = [row for rows in sessions for row in rows if "eval/spread_1" in row]
    assert [row["global_step"] for row in evaluations] == [100, 200, 300, 400, 500]
    assert [row["eval/spread_1"] for row in evaluations] == pytest.approx(
        [float(row["spread_1"]) for row in csv_rows(tmp_path)])


class LoggedRows:
    """A stand-in for a W&B run that keeps what is logged."""

    def __init__(self):
        self.rows, self.summary = [], {}

    def log(self, row):
        self.rows.append(row)

    def finish(self, exit_code=0):
        pass


def test_the_sent_record_lets_a_later_session_send_only_what_is_missing(tmp_path):
    """Session 1 sends steps 1 and 2 (at 2 only `train/a`) and step 2's videos, and stops.
    Session 2 replays step 2 with an evaluation tag and a video it turned on at resume:
    only the new tag, the videos of steps session 1 did not film, and later steps go out."""
    sent_file = tmp_path / tracking.SENT_FILE
    first = tracking.Tracker(LoggedRows(), sent_file)
    first.scalar("train/a", 1.0, 1)
    first.scalar("train/a", 2.0, 2)
    first.flush()
    first.videos([], 2)
    first.finish(exit_code=143)
    assert json.loads(sent_file.read_text()) == {"step": 2, "tags": ["train/a"],
                                                 "video_steps": [2]}
    second = tracking.Tracker(LoggedRows(), sent_file)
    for step, tag, value in ((1, "train/a", 1.0), (2, "train/a", 2.0), (2, "eval/r", 5.0),
                             (3, "train/a", 3.0)):
        second.scalar(tag, value, step)
    second.flush()
    second.videos([], 1)  # not filmed by session 1 (--capture-video turned on at resume)
    second.videos([], 2)
    assert second.run.rows == [{"global_step": 2, "eval/r": 5.0},
                               {"global_step": 3, "train/a": 3.0}, {"global_step": 1}]
    second.finish()
    assert json.loads(sent_file.read_text()) == {"step": 3, "tags": ["train/a"],
                                                 "video_steps": [1, 2]}


def test_without_track_wandb_is_never_imported(dataset, tmp_path):
    argv = ["--dataset", str(dataset), *TINY, "--num-steps", "20", "--eval-freq", "20",
            *output_flags(tmp_path)]
    code = (f"import sys; sys.path.insert(0, {REPO_ROOT!r}); import train_pogo\n"
            f"train_pogo.main({argv!r})\n"
            "assert 'wandb' not in sys.modules, 'wandb was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True,
                   timeout=300)


@pytest.mark.parametrize("case, message", [
    ("not installed", "--track needs the wandb package"),
    ("bad mode", "WANDB_MODE='sometimes' is not a W&B mode"),
    ("online without login", "run `wandb login`"),
])
def test_bad_tracking_setup_is_one_line_exit_2_and_nothing_written(
        dataset, tmp_path, capsys, monkeypatch, case, message):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    if case == "not installed":
        find_spec = tracking.importlib.util.find_spec
        monkeypatch.setattr(tracking.importlib.util, "find_spec",
                            lambda name, *rest: None if name == "wandb" else find_spec(name, *rest))
    elif case == "bad mode":
        monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(SystemExit) as exit_info:
        train_pogo.main(["--dataset", str(dataset), *TINY, "--track", *output_flags(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train_pogo.py: error:") and message in err[0]
    assert not any((tmp_path / name).exists() for name in ("results", "runs", "checkpoints"))


def test_a_sweeps_tracked_runs_are_grouped_by_the_sweeps_name(tmp_path):
    sweep = tmp_path / "pendulum_chain.yaml"
    sweep.write_text("common:\n  seeds: [0]\n  enabled_environments: [Pendulum-v1]\n"
                     "  num_steps: 100\n  track: true\n  wandb_mode: offline\n"
                     "environments:\n  Pendulum-v1:\n    w2_weights: [0.0, 0.1]\n")
    (run,) = load_sweep(sweep)[0]
    assert run.settings["wandb_group"] == "pendulum_chain"
    sweep.write_text(sweep.read_text().replace("  track: true\n",
                                               "  track: true\n  wandb_group: mine\n"))
    assert load_sweep(sweep)[0][0].settings["wandb_group"] == "mine"
    sweep.write_text(sweep.read_text().replace("  track: true\n  wandb_group: mine\n", ""))
    assert "wandb_group" not in load_sweep(sweep)[0][0].settings  # untracked: no group


def test_chain_videos_reach_the_wandb_run(dataset, tmp_path, offline_wandb):
    """--capture-video with --track: each evaluation's MP4s (one per actor and the chain's)
    are logged at its step, byte for byte (W&B records each file's sha256)."""
    result = subprocess.run(command(dataset, tmp_path, "--track", "--capture-video",
                                    "--num-steps", "200"),
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = offline_runs(tmp_path)
    logged = [row for row in read_offline_run(folder)["history"] if "video/chain/sha256" in row]
    assert [row["global_step"] for row in logged] == [100, 200]
    videos = tmp_path / "results" / RUN / "videos"
    for row in logged:
        for name in ("actor_0", "actor_1", "chain"):
            mp4 = videos / f"step_{row['global_step']}_{name}.mp4"
            assert row[f"video/{name}/sha256"] == hashlib.sha256(mp4.read_bytes()).hexdigest()
