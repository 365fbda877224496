"""--capture-video: the videos are of the very episodes the evaluation scores, recording changes
no number, and the files read back (imageio's ffmpeg plugin) with one frame per episode step.

The end-to-end runs are real train_sac.py / train_pogo.py subprocesses on InvertedPendulum-v5,
whose reward is 1 for every step the pole stays up and 0 on the step it falls, so a
terminated episode of return R has R + 1 steps: an independent count of each video's frames.
"""

import argparse
import csv
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REPO_ROOT as REPO_ROOT_TEXT
from conftest import output_flags, random_pendulum_hdf5

from video import frames as video_frames
from video import recording as video

REPO_ROOT = Path(REPO_ROOT_TEXT)
SAC_RUN = "POSAC_InvertedPendulum-v5_s5_w0.0-0.2"
SAC_TINY = ["--env-name", "InvertedPendulum-v5", "--seed", "5", "--num-steps", "300",
            "--start-steps", "200", "--update-after", "200", "--batch-size", "32",
            "--hidden-size", "16", "--num-actors", "2", "--w2-weights", "0.2",
            "--eval-freq", "10", "--eval-episodes", "1", "--log-freq", "100"]
POGO_RUN = "POGO_pendulum_s1_w1.0-0.5"
POGO_TINY = ["--env-name", "InvertedPendulum-v5", "--seed", "1", "--num-actors", "2",
             "--w2-weights", "1.0,0.5", "--num-samples", "2", "--num-steps", "60",
             "--eval-freq", "30", "--eval-episodes", "1", "--batch-size", "32",
             "--hidden-size", "16", "--log-freq", "30"]


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def rows_of(root: Path, run: str) -> list[dict[str, str]]:
    with open(root / "results" / run / "training" / f"{run}_metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs at once (the machine has 2 cores): train_sac.py with and without
    --capture-video (same seed), and train_pogo.py with it."""
    root = tmp_path_factory.mktemp("video")
    dataset = random_pendulum_hdf5(root / "pendulum.hdf5", 500)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):  # the scripts choose EGL themselves
        env.pop(name, None)
    commands = {
        "plain": [sys.executable, str(REPO_ROOT / "train_sac.py"), *SAC_TINY,
                  *output_flags(root / "plain")],
        "capture": [sys.executable, str(REPO_ROOT / "train_sac.py"), *SAC_TINY,
                    *output_flags(root / "capture"), "--capture-video", "--video-every", "2"],
        "pogo": [sys.executable, str(REPO_ROOT / "train_pogo.py"), "--dataset", str(dataset),
                 *POGO_TINY, *output_flags(root / "pogo"), "--capture-video"],
    }
    processes = {name: subprocess.Popen(command, cwd=root, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, command in commands.items()}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}: {stderr}"
    return root


def check_videos(videos: Path, rows: list[dict[str, str]], num_actors: int) -> None:
    """Per recorded evaluation: each actor's MP4 has one frame per step of its deterministic
    episode 0 (return + 1 on InvertedPendulum-v5), a first frame that is not blank, and the
    chain MP4 tiles them side by side for as long as the longest."""
    for row in rows:
        lengths = []
        for i in range(num_actors):
            path = videos / f"step_{row['step']}_actor_{i}.mp4"
            assert path.stat().st_size > 0
            frames = frames_of(path)
            episode_return = float(row[f"actor_{i}_deterministic"])
            assert episode_return < 1000  # terminated, so it has return + 1 steps
            assert len(frames) == int(episode_return) + 1, (path, len(frames), episode_return)
            assert frames.shape[1:] == (160, 240, 3)
            assert frames[0].std() > 5 and int(frames[0].max()) - int(frames[0].min()) > 100
            lengths.append(len(frames))
        chain = frames_of(videos / f"step_{row['step']}_chain.mp4")
        assert chain.shape == (max(lengths), 160, 240 * num_actors, 3)
        assert chain[0].std() > 5


def test_capture_video_changes_no_number(runs):
    """Same seed with and without --capture-video: the same metrics (every column but
    wall_time_s) and the same .npy files, byte for byte."""
    def without_clock(rows):
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in rows]

    assert without_clock(rows_of(runs / "capture", SAC_RUN)) == \
        without_clock(rows_of(runs / "plain", SAC_RUN))
    for i in range(2):
        name = f"{SAC_RUN}_actor_{i}.npy"
        assert (runs / "capture" / "results" / SAC_RUN / name).read_bytes() == \
               (runs / "plain" / "results" / SAC_RUN / name).read_bytes()
    assert not (runs / "plain" / "results" / SAC_RUN / "videos").exists()


def test_sac_videos_every_second_evaluation(runs):
    rows = rows_of(runs / "capture", SAC_RUN)
    assert len(rows) >= 3
    videos = runs / "capture" / "results" / SAC_RUN / "videos"
    recorded = rows[::2]  # --video-every 2: evaluations 0, 2, 4, ...
    assert sorted(path.name for path in videos.iterdir()) == sorted(
        f"step_{row['step']}_{part}.mp4" for row in recorded
        for part in ("actor_0", "actor_1", "chain"))
    check_videos(videos, recorded, num_actors=2)


def test_chain_video_in_tensorboard(runs):
    """Each recorded chain video is in TensorBoard as an animated GIF: half size, at most
    TENSORBOARD_FPS frames a second (InvertedPendulum renders at 25: every 3rd frame)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = rows_of(runs / "capture", SAC_RUN)[::2]
    events = EventAccumulator(str(runs / "capture" / "runs" / SAC_RUN), size_guidance={
        "images": 0})
    events.Reload()
    images = events.Images(video.TENSORBOARD_TAG)
    assert [image.step for image in images] == [int(row["step"]) for row in rows]
    for image, row in zip(images, rows):
        gif = iio.imread(image.encoded_image_string, extension=".gif", index=None)
        longest = max(int(float(row[f"actor_{i}_deterministic"])) + 1 for i in range(2))
        assert (image.width, image.height) == (240, 80) and gif.shape[1:3] == (80, 240)
        # every 3rd frame; Pillow merges a frame identical to the one before into it
        assert 1 <= len(gif) <= -(-longest // 3)


def test_pogo_videos(runs):
    rows = rows_of(runs / "pogo", POGO_RUN)
    assert [row["step"] for row in rows] == ["30", "60"]
    check_videos(runs / "pogo" / "results" / POGO_RUN / "videos", rows, num_actors=2)


# --------------------------------------------------------------------------- in process
@pytest.fixture
def headless(monkeypatch):
    """In-process rendering through EGL, as the scripts choose (MuJoCo's EGL module also sets
    PYOPENGL_PLATFORM when first imported): both variables are restored after the test."""
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)


def pushing_policies(num_actors: int):
    """Actor i pushes the cart one way, harder for higher i: the pole falls within a few
    dozen steps, at a different step for each actor."""
    import torch

    weights = torch.tensor([[0.1, 0.5, 0.0, 0.1]], dtype=torch.float64)
    return [lambda obs, noise, i=i: torch.tanh(obs @ weights.T + 1.0) * (1.0 + i)
            for i in range(num_actors)]


class Frames:
    """A recorder that keeps the frames."""

    def __init__(self, num_actors: int):
        self.frames = [[] for _ in range(num_actors)]
        self.discarded = False

    def add(self, actor, frame):
        self.frames[actor].append(frame.copy())

    def discard(self):
        self.discarded = True


def test_recording_plays_the_scored_episodes(headless):
    """Evaluator with a recorder: the same returns as without, one frame per step of each
    actor's deterministic episode 0 (counted here with its own environment), frame 0 being
    the reset state."""
    from training.evaluation import Evaluator

    size = (96, 64)
    plain = Evaluator("InvertedPendulum-v5", 2, 2, seed=7)
    recording = Evaluator("InvertedPendulum-v5", 2, 2, seed=7, make_recorded_env=lambda:
                          video.make_recorded_env("InvertedPendulum-v5", {}, size))
    recorder = Frames(2)
    policies = pushing_policies(2)
    returns = recording.run(policies, recorder=recorder)
    np.testing.assert_array_equal(returns, plain.run(policies))
    for i, policy in enumerate(policies):
        env = video.make_recorded_env("InvertedPendulum-v5", {}, size)
        obs, _ = env.reset(seed=recording.reset_seeds[0])
        first, steps, done = env.render(), 0, False
        while not done:
            action = Evaluator.act(policy, obs[None], plain.noise[i, 0, 0, steps][None])[0]
            obs, _, terminated, truncated, _ = env.step(action)
            steps, done = steps + 1, terminated or truncated
        assert len(recorder.frames[i]) == steps < 200
        np.testing.assert_array_equal(recorder.frames[i][0], first)


def test_interrupted_evaluation_keeps_no_video(tmp_path, headless):
    from training.evaluation import Evaluator

    evaluator = Evaluator("InvertedPendulum-v5", 1, 1, seed=3, make_recorded_env=lambda:
                          video.make_recorded_env("InvertedPendulum-v5", {}, (64, 48)))
    videos = video.EvaluationVideos(tmp_path, 5, 1, (64, 48), 25.0)
    calls = []

    def stop_after_two_steps():
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluator.run(pushing_policies(1), check_stop=stop_after_two_steps, recorder=videos)
    assert videos.counts == [3] and list(tmp_path.iterdir()) == []


def test_chain_holds_a_finished_actor_greyed_and_labelled(tmp_path):
    """Episodes of 6 and 3 frames: the chain has 6; actor 1's tile holds its last frame,
    grey, from frame 3 on; each tile carries its label in white."""
    videos = video.EvaluationVideos(tmp_path, 0, 2, (160, 96), 20.0)
    for t in range(6):
        videos.add(0, np.full((96, 160, 3), (200, 30, 30), np.uint8))
        if t < 3:  # 128x96: fitted into 160x96 with black bars 16 wide
            videos.add(1, np.full((96, 128, 3), (30, 200, 30), np.uint8))
    videos.finish(np.array([12.5, -3.0]))
    assert [len(frames_of(path)) for path in videos.paths] == [6, 3]
    chain = frames_of(videos.chain_path).astype(int)
    assert chain.shape == (6, 96, 320, 3)
    bottom = chain[:, 70:]  # below the labels
    assert (np.abs(bottom[:, :, 20:140].mean((1, 2)) - (200, 30, 30)) < 12).all()
    assert (np.abs(bottom[:3, :, 185:295].mean((1, 2)) - (30, 200, 30)) < 12).all()
    held = bottom[3:, :, 185:295].mean((1, 2))  # grey: R = G = B
    assert (np.ptp(held, axis=1) < 8).all()
    label = chain[0, 2:20, 4:100]
    assert (label.min(axis=2) > 200).sum() > 40  # white text on the darkened box
    assert (label.max(axis=2) < 120).sum() > 40


def test_labels_and_fitting():
    mask = video_frames.text_mask("ACTOR 1", 2)
    assert mask.shape == (14, (7 * 6 - 1) * 2) and mask.any()
    assert not video_frames.text_mask(" ", 1).any()
    assert (video_frames.text_mask("8", 1) != video_frames.text_mask("0", 1)).any()
    frame = np.full((100, 100, 3), 255, np.uint8)
    fitted = video_frames.fit(frame, (64, 48))  # square into 64x48: 48x48, centred on black
    assert fitted.shape == (48, 64, 3)
    assert (fitted[:, 8:56] == 255).all() and (fitted[:, :8] == 0).all()
    assert video.frame_size("320X240") == "320x240"
    for bad in ("100x100", "320", "0x16"):
        with pytest.raises(argparse.ArgumentTypeError):
            video.frame_size(bad)


def test_flag_off_runs_no_video_code():
    """--help imports neither torch nor imageio (with or without the flag), and a run without
    the flag builds no rendering environment and no recorder."""
    code = ("import sys, train_sac, train_pogo\n"
            "for argv in (['--help'], ['--capture-video', '--help']):\n"
            "    try:\n"
            "        train_sac.build_parser().parse_args(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(sorted(m for m in ('torch', 'imageio', 'gymnasium', 'mujoco') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith("[]"), result


def test_flag_off_trainer_renders_nothing(tmp_path, monkeypatch):
    import train_sac

    def forbidden(*args, **kwargs):
        raise AssertionError("video code ran with --capture-video off")

    monkeypatch.setattr(video, "make_recorded_env", forbidden)
    monkeypatch.setattr(video, "EvaluationVideos", forbidden)
    args, paths, env = train_sac.parse_and_check([*SAC_TINY, *output_flags(tmp_path)])
    trainer = train_sac.SACTrainer(args, paths, env)
    assert trainer.videos is None and trainer.evaluator.recorded == []
    trainer.evaluate()
    trainer.experiment.writer.close()
    assert not (paths.results / "videos").exists()


def test_no_backend_is_one_line(tmp_path):
    """A rendering backend that cannot work here: one line, exit status 2, nothing written."""
    if ctypes.util.find_library("OSMesa"):
        pytest.skip("OSMesa is installed here")
    env = {**os.environ, "MUJOCO_GL": "osmesa", "OMP_NUM_THREADS": "1"}
    env.pop("PYOPENGL_PLATFORM", None)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "train_sac.py"), *SAC_TINY,
                             *output_flags(tmp_path), "--capture-video"], cwd=tmp_path, env=env,
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("train_sac.py: error: --capture-video: no OpenGL backend "
                                    "works (MUJOCO_GL=osmesa: ")
    assert "drop --capture-video" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == "" and not (tmp_path / "results").exists()
    env["MUJOCO_GL"] = "nonsense"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "train_sac.py"), *SAC_TINY,
                             *output_flags(tmp_path), "--capture-video"], cwd=tmp_path, env=env,
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "MUJOCO_GL=nonsense is not one of egl, osmesa, glfw" in result.stderr
