"""Evaluation videos (--capture-video): recording the episodes and writing MP4s (recording),
and the frames' sizing and labels (frames)."""
