"""CUDA graphs for the training loop's device work (`train_sac.py --cuda --cuda-graphs`).

On a GPU one POSAC update is a few hundred small kernels, and launching them one at a time
from Python costs far more than running them (about 10 ms per update on an H100 host, for
well under 1 ms of GPU work). A CUDA graph records a call's kernels once and replays them
all with a single launch.

`Graphed(fn)` runs `fn()` normally for its first calls, on a side stream as capture
requires: these are real calls, in which the optimizers create their state and the
libraries their workspaces. The next call is recorded, and every later call replays the
recording. A replay runs the same kernels on the same memory, with random numbers drawn
from the registered generators at the offsets the plain calls would use, so it gives the
plain calls' results.

What `fn` must honour: it reads its inputs from tensors that keep their memory (the replay
memory's storage, a staging tensor), it never copies to the host, its Python-side behaviour
is the same on every call (no counters, no branches on tensor values), and its randomness
comes only from the generators given here. Its outputs live in the graph's memory and are
overwritten by the next replay.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch


class Graphed:
    """Call `fn()` for `warmup_calls` calls, then record it once as a CUDA graph and replay."""

    def __init__(self, fn: Callable[[], Any], generators: Sequence[torch.Generator] = (),
                 warmup_calls: int = 3):
        self.fn = fn
        self.generators = list(generators)
        self.warmup_calls = warmup_calls
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: Any = None

    def __call__(self) -> Any:
        if self.graph is None:
            if self.calls < self.warmup_calls:
                self.calls += 1
                return self.on_side_stream()
            self.capture()
        self.graph.replay()
        return self.output

    def on_side_stream(self) -> Any:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            output = self.fn()
        torch.cuda.current_stream().wait_stream(side)
        return output

    def capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self.output = self.fn()
        self.graph = graph
