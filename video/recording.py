"""Videos of the evaluation episodes, for train_sac.py and train_pogo.py (--capture-video).

At every --video-every-th evaluation, the first deterministic episode of every actor is
rendered while the evaluation plays it (the very episode it scores: same environment, same
reset seed, same actions) and written to

    {results_dir}/{file_name}/videos/step_{step}_actor_{i}.mp4    one per actor
    {results_dir}/{file_name}/videos/step_{step}_chain.mp4        all actors side by side

each tile of the chain video labelled with its actor index and that episode's return; an
actor whose episode ended first holds its last frame, greyed and marked DONE. A preview of
the chain video (an animated GIF at half size) goes to TensorBoard, tag `video/chain`, when it
is small enough. MuJoCo models with a "track" camera are filmed through it.

Frame t of an actor's video is the state in which the actor chose its t-th action (the reset
state, then the state after each step but the last), so a video has exactly as many frames as
the episode has steps. Rendering reads the simulator and draws no random number, so recording
changes no evaluation number.

MP4s are encoded by imageio's ffmpeg plugin with the ffmpeg binary that the imageio-ffmpeg
wheel ships (no system ffmpeg). Headless MuJoCo rendering uses MUJOCO_GL=egl unless the
variable is set. This module imports only the standard library and numpy at import time: the
scripts import it for its flags, and imageio, Gymnasium and MuJoCo load only when the flag
is on.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from utils import UsageError, positive_int
from video.frames import draw_label, fit, greyed, tile_labels

DEFAULT_SIZE = "240x160"
# On a machine without a GPU, MuJoCo renders in software (EGL on Mesa's llvmpipe), where its
# default 4096² shadow map and 4x multisampling dominate a frame: 245 ms for a 240x160
# HalfCheetah frame on the 2-core development VM, 46 ms with a 1024² shadow map and no
# multisampling, which look the same at this size. Visual only: the physics never reads
# model.vis.
SHADOW_SIZE = 1024
OFFSCREEN_SAMPLES = 0
# TensorBoard gets a preview of the chain video: an animated GIF at half the width and
# height, at most TENSORBOARD_FPS frames a second, and only up to TENSORBOARD_MAX_PIXELS
# (frames × width × height of that GIF). Such GIFs of a tracking camera over MuJoCo's
# chequered floor take about 0.3 bytes a pixel: a 1000-step HalfCheetah episode of 2 actors
# at the default size is 9.6M pixels, 2.7 MB added to the event file; the cap keeps one
# recorded evaluation under about 5 MB. Longer or wider chains: MP4 only.
TENSORBOARD_SCALE = 2
TENSORBOARD_FPS = 10
TENSORBOARD_MAX_PIXELS = 16_000_000
GIF_COLOURS = 128
TENSORBOARD_TAG = "video/chain"


# --------------------------------------------------------------------------- flags and checks
def frame_size(text: str) -> str:
    """argparse type for --video-size: 'WxH', both multiples of 16 (H.264 macroblocks) in
    [16, 2048]. Kept as text, so config.json compares equal on --resume."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as {DEFAULT_SIZE}, "
                                         f"got {text!r}") from None
    if not all(16 <= side <= 2048 and side % 16 == 0 for side in (width, height)):
        raise argparse.ArgumentTypeError(f"width and height must be multiples of 16 in "
                                         f"[16, 2048] (H.264 macroblocks), got {text!r}")
    return f"{width}x{height}"


def parse_size(text: str) -> tuple[int, int]:
    """(width, height) of a --video-size value."""
    width, height = (int(part) for part in frame_size(text).split("x"))
    return width, height


def add_video_flags(parser: argparse.ArgumentParser, training: bool = True) -> None:
    """The video flags of the training scripts, or with training=False of evaluate.py (one
    evaluation, written to its --out-dir, no TensorBoard, no --video-every)."""
    group = parser.add_argument_group("videos")
    if not training:
        group.add_argument("--capture-video", action="store_true",
                           help="film every chosen actor's first deterministic episode to "
                                "{out_dir}/videos/step_{steps}_actor_{i}.mp4, and all of them "
                                "side by side to step_{steps}_chain.mp4; changes no number")
    else:
        # a --no- form too, as every training boolean has: a sweep file sets it true or false
        group.add_argument("--capture-video", action=argparse.BooleanOptionalAction,
                           default=False,
                           help="record every actor's first deterministic evaluation episode "
                                "to {results_dir}/{file_name}/videos/step_{step}_actor_{i}.mp4, "
                                "and all actors side by side to step_{step}_chain.mp4 (also "
                                "shown in TensorBoard when small); changes no number")
        group.add_argument("--video-every", type=positive_int, default=1, metavar="K",
                           help="with --capture-video: record at every K-th evaluation (the "
                                "first evaluation is always recorded)")
    group.add_argument("--video-size", type=frame_size, default=DEFAULT_SIZE, metavar="WxH",
                       help="with --capture-video: WIDTHxHEIGHT of each actor's video "
                            "(multiples of 16)")


GL_BACKENDS = ("egl", "osmesa", "glfw")  # what Gymnasium's MuJoCo renderer accepts


def prefer_headless(args: argparse.Namespace) -> None:
    """With --capture-video, MuJoCo renders through EGL unless MUJOCO_GL says otherwise, and
    MuJoCo must load with that backend (UsageError if not). Call it before any environment
    is built: MuJoCo picks its backend when it is first imported."""
    if not args.capture_video:
        return
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    if backend not in GL_BACKENDS:
        raise UsageError(f"--capture-video: MUJOCO_GL={backend} is not one of "
                         f"{', '.join(GL_BACKENDS)}; unset it (EGL is tried) or pick one")
    try:
        import mujoco  # noqa: F401
    except ModuleNotFoundError:
        pass  # environments without MuJoCo render without OpenGL
    except Exception as error:  # e.g. MUJOCO_GL=osmesa without libOSMesa: PyOpenGL fails
        raise UsageError(no_backend(error)) from None


def no_backend(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")
    return (f"--capture-video: no OpenGL backend works (MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL', '')}: {reason}); install EGL/OSMesa or drop "
            f"--capture-video")


def check_capture(args: argparse.Namespace, env_name: str,
                  env_kwargs: dict[str, Any] | None = None) -> None:
    """With --capture-video: build one rendering environment, reset it and render a frame, or
    raise UsageError naming the backend and the fix. Call it once the environment itself is
    known to build (so a failure here is about rendering)."""
    if not args.capture_video:
        return
    prefer_headless(args)
    env, message = None, ""
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. GLFW's "library is not initialized"
            env = make_recorded_env(env_name, env_kwargs or {}, parse_size(args.video_size))
            env.reset(seed=0)
            frame = env.render()
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3):
            raise RuntimeError(f"render() returned {type(frame).__name__}, not an RGB image")
    except Exception as error:  # any backend failure: the message is what matters
        if env is None or hasattr(env.unwrapped, "mujoco_renderer"):
            message = no_backend(error)
        else:
            lines = str(error).strip().splitlines()
            message = (f"--capture-video: {env_name} cannot render rgb_array frames here "
                       f"({type(error).__name__}: {lines[0][:200] if lines else ''}); "
                       f"install its rendering extra or drop --capture-video")
    finally:
        # a viewer whose GL context failed complains from __del__: collect it silently now
        # (the error is raised below, outside this block, so that nothing keeps it alive)
        env = None
        gc.collect()
        sys.unraisablehook = hook
    if message:
        raise UsageError(message)


def make_recorded_env(env_name: str, env_kwargs: dict[str, Any],
                      size: tuple[int, int]) -> Any:
    """The environment `gym.make(env_name, **env_kwargs)` with render_mode rgb_array. A MuJoCo
    environment renders at `size`, through its model's "track" camera where it has one (a
    side view that follows the body: Gymnasium 1.4's default view of HalfCheetah-v5 stays
    put, and a running cheetah leaves it within seconds), with a smaller shadow map and no
    multisampling (SHADOW_SIZE, OFFSCREEN_SAMPLES). Others render at their own size (frames
    are fitted later). Its dynamics are those of the environment without rendering."""
    import gymnasium as gym

    width, height = size
    options = [{"width": width, "height": height, "camera_name": "track"},
               {"width": width, "height": height}, {}]
    for extra in options:
        try:
            env = gym.make(env_name, render_mode="rgb_array", **{**extra, **env_kwargs})
            break
        except TypeError:  # not a MuJoCo environment: no width, height or camera_name
            if not extra:
                raise
    model = getattr(env.unwrapped, "model", None)
    quality = getattr(getattr(model, "vis", None), "quality", None)
    if quality is not None:
        quality.shadowsize = min(int(quality.shadowsize), SHADOW_SIZE)
        quality.offsamples = min(int(quality.offsamples), OFFSCREEN_SAMPLES)
    return env


# --------------------------------------------------------------------------- files
def mp4_writer(path: Path, fps: float) -> Any:
    import imageio.v2 as imageio

    return imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                              macro_block_size=16, ffmpeg_log_level="error")


def read_frames(path: Path) -> Any:
    """The frames of a video file, one at a time (imageio's ffmpeg plugin; a generator:
    close it to stop early)."""
    import imageio.v3 as iio

    return iio.imiter(path, plugin="FFMPEG")


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """An animated GIF of the frames (Pillow), in one 128-colour palette taken from 16 of
    them, undithered: a tenth of the encoding time of a palette per frame and half the
    bytes (dithering noise does not compress), at no visible cost for a preview."""
    import io

    from PIL import Image

    sample = np.concatenate(frames[::max(1, len(frames) // 16)], axis=0)
    palette = Image.fromarray(sample).quantize(colors=GIF_COLOURS, dither=Image.Dither.NONE)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
              for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def add_gif_to_tensorboard(writer: Any, tag: str, gif: bytes, height: int, width: int,
                           step: int) -> None:
    """The image summary SummaryWriter.add_video writes (an animated GIF), encoded here:
    add_video itself needs moviepy.editor, which moviepy 2 no longer has."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    writer._get_file_writer().add_summary(summary, step)  # what add_video does with its GIF


# --------------------------------------------------------------------------- recording
class EvaluationVideos:
    """The videos of one evaluation. The evaluator hands it each recorded actor's frames as
    they are rendered (`add`), streamed to that actor's MP4; `finish` then closes them and
    tiles them into the chain video (and TensorBoard); `discard` removes them instead."""

    def __init__(self, directory: Path, step: int, num_actors: int, size: tuple[int, int],
                 fps: float, actor_ids: list[int] | None = None):
        """`actor_ids`: the recorded actors' indices in the chain (default 0 … N−1), which
        name their files and label their tiles; recording position i is actor_ids[i]."""
        self.directory, self.step, self.size, self.fps = directory, step, size, fps
        self.actor_ids = list(range(num_actors)) if actor_ids is None else list(actor_ids)
        self.paths = [directory / f"step_{step}_actor_{i}.mp4" for i in self.actor_ids]
        self.chain_path = directory / f"step_{step}_chain.mp4"
        self.writers: list[Any] = [None] * num_actors
        self.counts = [0] * num_actors

    def add(self, actor: int, frame: np.ndarray) -> None:
        if self.writers[actor] is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.writers[actor] = mp4_writer(self.paths[actor], self.fps)
        self.writers[actor].append_data(fit(frame, self.size))
        self.counts[actor] += 1

    def close(self) -> None:
        for i, writer in enumerate(self.writers):
            if writer is not None:
                writer.close()
                self.writers[i] = None

    def discard(self) -> None:
        """An evaluation that did not finish: no video of it stays."""
        try:
            self.close()
        finally:
            for path in [*self.paths, self.chain_path]:
                path.unlink(missing_ok=True)

    def finish(self, returns: np.ndarray, tensorboard: Any = None) -> None:
        """Close the actors' videos and write the chain video, tile i labelled with
        returns[i] (the recorded episode's return); add its preview to TensorBoard
        (`tensorboard`, a SummaryWriter) when small enough (TENSORBOARD_MAX_PIXELS)."""
        self.close()
        width, height = self.size
        num_actors, length = len(self.paths), max(self.counts)
        stride, scale = max(1, -(-round(self.fps) // TENSORBOARD_FPS)), TENSORBOARD_SCALE
        pixels = -(-length // stride) * num_actors * (width // scale) * (height // scale)
        keep = tensorboard is not None and pixels <= TENSORBOARD_MAX_PIXELS
        overlays = tile_labels(np.asarray(returns, dtype=np.float64), width, height,
                               self.actor_ids)
        sources = [read_frames(path) for path in self.paths]
        held: list[np.ndarray] = [np.zeros((height, width, 3), np.uint8)] * num_actors
        kept = []
        writer = mp4_writer(self.chain_path, self.fps)
        try:
            for t in range(length):
                tiles = []
                for i in range(num_actors):
                    if t < self.counts[i]:
                        held[i] = next(sources[i])[:, :, :3]
                        tiles.append(draw_label(held[i], overlays[i][0]))
                    else:
                        tiles.append(draw_label(greyed(held[i]), overlays[i][1]))
                for tile in tiles[:-1]:
                    tile[:, -2:] = 160  # a grey line between neighbouring tiles
                frame = np.concatenate(tiles, axis=1)
                writer.append_data(frame)
                if keep and t % stride == 0:  # (scale-2 labels subsample to scale-1 text)
                    kept.append(np.ascontiguousarray(frame[::scale, ::scale]))
        finally:
            writer.close()
            for source in sources:
                source.close()
        if keep:
            gif = gif_bytes(kept, self.fps / stride)
            add_gif_to_tensorboard(tensorboard, TENSORBOARD_TAG, gif, *kept[0].shape[:2],
                                   self.step)


class RunVideos:
    """A run's video settings: which evaluations are recorded, where the files go, and the
    rendering environments the evaluator plays the recorded episodes in."""

    def __init__(self, size: str, results: Path, num_actors: int, env_name: str,
                 env_kwargs: dict[str, Any] | None = None, actor_ids: list[int] | None = None,
                 every: int = 1):
        """`size`: --video-size; `every`: --video-every (evaluate.py's one evaluation: 1)."""
        self.every, self.size = every, parse_size(size)
        self.directory = Path(results) / "videos"
        self.num_actors, self.env_name, self.actor_ids = num_actors, env_name, actor_ids
        self.env_kwargs = dict(env_kwargs or {})
        self.fps = 30.0

    def make_env(self) -> Any:
        """A rendering environment for Evaluator(make_recorded_env=...)."""
        env = make_recorded_env(self.env_name, self.env_kwargs, self.size)
        self.fps = float(env.metadata.get("render_fps") or self.fps)
        return env

    def start(self, evaluation_index: int, step: int) -> EvaluationVideos | None:
        """The videos of evaluation number `evaluation_index` (0 = the run's first), or None
        when --video-every skips it."""
        if evaluation_index % self.every:
            return None
        return EvaluationVideos(self.directory, step, self.num_actors, self.size, self.fps,
                                self.actor_ids)
