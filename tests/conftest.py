"""Make the repository root importable (replay_memory, utils, train_sac) from the tests, run
the tests' PyTorch (in process and in the training subprocesses) on one thread, and skip
the tests marked `cuda` where no CUDA GPU is present (CI has none)."""

import os
import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# The tests' tiny networks gain nothing from a second thread, and PyTorch's spinning threads
# make a 2-thread training subprocess crawl (1 step/s, past its timeout) while a sweep keeps
# the cores busy. An explicit OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one")


def pytest_collection_modifyitems(config, items):
    import pytest
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
