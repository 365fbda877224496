"""Frames for the evaluation videos (video/recording.py): fitting a rendered frame to the
video size, the labels drawn on the chain video's tiles (actor, return, DONE) in a built-in
bitmap font, and the greyed frame a finished actor holds. Pure numpy, no rendering, no
files."""

from __future__ import annotations

from typing import Any

import numpy as np


def fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 frame of exactly `size` (width, height): as it is when it has that size,
    otherwise scaled (nearest pixel, aspect kept) and centred on black."""
    width, height = size
    frame = np.asarray(frame)[..., :3].astype(np.uint8, copy=False)
    if frame.shape[:2] == (height, width):
        return frame
    scale = min(width / frame.shape[1], height / frame.shape[0])
    new_w = max(1, round(frame.shape[1] * scale))
    new_h = max(1, round(frame.shape[0] * scale))
    rows = np.minimum((np.arange(new_h) / scale).astype(int), frame.shape[0] - 1)
    cols = np.minimum((np.arange(new_w) / scale).astype(int), frame.shape[1] - 1)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top:top + new_h, left:left + new_w] = frame[rows][:, cols]
    return out


# A 5x7 bitmap font for the labels (no font file, no dependency): each glyph is 7 rows of
# 5 bits, most significant bit on the left.
GLYPHS = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    "-": (0, 0, 0, 31, 0, 0, 0), ".": (0, 0, 0, 0, 0, 12, 12), "+": (0, 4, 4, 31, 4, 4, 0),
    "A": (14, 17, 17, 31, 17, 17, 17), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (30, 17, 17, 17, 17, 17, 30), "E": (31, 16, 16, 30, 16, 16, 31),
    "F": (31, 16, 16, 30, 16, 16, 16), "I": (14, 4, 4, 4, 4, 4, 14),
    "N": (17, 25, 21, 19, 17, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "R": (30, 17, 17, 30, 20, 18, 17), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), " ": (0,) * 7,
}


def text_mask(text: str, scale: int) -> np.ndarray:
    """Boolean pixels of `text` (upper-cased; characters without a glyph are blank), each
    glyph 5x7 cells of scale x scale pixels, one blank column between glyphs."""
    columns = []
    for char in text.upper():
        rows = GLYPHS.get(char, GLYPHS[" "])
        glyph = np.array([[(row >> (4 - bit)) & 1 for bit in range(5)] for row in rows], bool)
        columns += [glyph, np.zeros((7, 1), bool)]
    mask = np.concatenate(columns[:-1] or [np.zeros((7, 1), bool)], axis=1)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def label_overlay(lines: list[str], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(box, ink) boolean masks of a frame: a dark box in the top-left corner and the white
    text lines in it, at the largest scale (≤ 2) whose lines fit the width."""
    box = np.zeros((height, width), bool)
    ink = np.zeros((height, width), bool)
    scale = 2 if max(len(line) for line in lines) * 12 + 8 <= width else 1
    top = 3
    masks = [text_mask(line, scale) for line in lines]
    right = min(width, 6 + max(mask.shape[1] for mask in masks) + 3)
    for mask in masks:
        rows, cols = min(mask.shape[0], height - top), min(mask.shape[1], width - 6)
        if rows <= 0:
            break
        ink[top:top + rows, 6:6 + cols] = mask[:rows, :cols]
        top += mask.shape[0] + 2 * scale
    box[:min(top + 1, height), :right] = True
    return box, ink


def draw_label(frame: np.ndarray, overlay: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    box, ink = overlay
    out = frame.copy()
    out[box] = (out[box] * 0.35).astype(np.uint8)
    out[ink] = 255
    return out


def format_return(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else ("NAN" if np.isnan(value) else "INF")


def tile_labels(returns: np.ndarray, width: int, height: int,
                actor_ids: list[int]) -> list[list[Any]]:
    """Per actor (named by its index in the chain), the overlays of its running tile and of
    its finished (DONE) tile."""
    overlays = []
    for actor, value in zip(actor_ids, returns, strict=True):
        lines = [f"ACTOR {actor}", f"RETURN {format_return(float(value))}"]
        overlays.append([label_overlay(lines, width, height),
                         label_overlay(lines + ["DONE"], width, height)])
    return overlays


def greyed(frame: np.ndarray) -> np.ndarray:
    """A finished actor's held last frame: grey, at half contrast."""
    grey = frame.mean(axis=2, keepdims=True)
    return np.broadcast_to(grey * 0.5 + 64, frame.shape).astype(np.uint8)
