"""training/run_setup.py's thread settings: --threads wins, then the user's OMP_NUM_THREADS,
then the default; OpenMP's wait settings are the project's unless the user set them."""

import os

import pytest
import torch

from training import run_setup
from training.run_setup import THREAD_VARIABLES, use_threads

OPENMP_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@pytest.fixture
def environ(monkeypatch):
    """A copy of the environment without thread settings, in place of os.environ; torch's
    thread count is restored afterwards (use_threads sets it in a process that has torch)."""
    threads = torch.get_num_threads()
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARIABLES, *OPENMP_WAIT)}
    monkeypatch.setattr(os, "environ", env)
    yield env
    torch.set_num_threads(threads)


def test_the_default_is_the_projects(environ, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    settings = use_threads(None)
    assert all(environ[name] == str(run_setup.DEFAULT_THREADS) for name in THREAD_VARIABLES)
    assert {name: environ[name] for name in OPENMP_WAIT if name in environ} == \
        run_setup.DEFAULT_OPENMP_WAIT
    assert settings == {name: environ[name] for name in settings}
    assert torch.get_num_threads() == run_setup.DEFAULT_THREADS


def test_the_default_never_exceeds_the_cores(environ, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    use_threads(None)
    assert environ["OMP_NUM_THREADS"] == "1"


def test_the_users_variables_win_over_the_default(environ):
    environ.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    use_threads(None)
    assert environ["OMP_NUM_THREADS"] == environ["MKL_NUM_THREADS"] == "1"
    assert environ["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in environ


def test_the_flag_wins_over_everything(environ):
    environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    use_threads(2)
    assert [environ[name] for name in THREAD_VARIABLES] == ["2", "2", "2"]
    assert torch.get_num_threads() == 2
