"""training/run_setup.py's thread settings: --threads wins, then the user's OMP_NUM_THREADS,
then the default; OpenMP's wait settings are the project's unless the user set them. And its
stop-signal handling around a script's imports (imports_held)."""

import argparse
import os
import signal

import pytest
import torch

from training import run_setup
from training.run_setup import THREAD_VARIABLES, use_threads
from utils import UsageError

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


# ---------------------------------------------------------- stop signals during imports
def interrupted_imports(body, capsys) -> tuple[int, str]:
    """Run `body` inside imports_held("prog.py"): its exit status and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        with run_setup.imports_held("prog.py"):
            body()
    return exit_info.value.code, capsys.readouterr().err


def test_a_stop_signal_during_imports_is_held_until_they_are_done(capsys):
    done = []

    def imports():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append(True)  # the signal did not interrupt the imports

    code, err = interrupted_imports(imports, capsys)
    assert done and code == 143
    assert err.startswith("prog.py: interrupted outside training") and err.count("\n") == 1


def test_an_import_error_after_a_stop_signal_is_the_interruption(capsys):
    def imports():  # a C extension's import that the signal broke
        os.kill(os.getpid(), signal.SIGINT)
        raise ImportError('PyCapsule_Import could not import module "datetime"')

    code, err = interrupted_imports(imports, capsys)
    assert code == 130 and "Traceback" not in err and err.count("\n") == 1


def test_a_second_stop_signal_interrupts_the_imports_at_once(capsys):
    def imports():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not interrupted")

    code, err = interrupted_imports(imports, capsys)
    assert code == 130 and err.startswith("prog.py: interrupted")


def test_an_import_error_without_a_stop_signal_stays_an_import_error():
    with pytest.raises(ImportError, match="no module"):
        with run_setup.imports_held("prog.py"):
            raise ImportError("no module")


def test_cuda_without_a_visible_gpu_names_cuda_visible_devices(monkeypatch):
    """A run that run_sac.py --gpus started with a wrong id sees no GPU: the one line names
    the variable, whose id is what to fix, rather than only saying to drop --cuda."""
    args = argparse.Namespace(cuda=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    with pytest.raises(UsageError, match=r"^--cuda was given but CUDA_VISIBLE_DEVICES=7 shows "
                                         r"no CUDA GPU; give an id that nvidia-smi -L lists"):
        run_setup.check_cuda(args)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(UsageError, match=r"^--cuda was given but no CUDA GPU is available"):
        run_setup.check_cuda(args)
    run_setup.check_cuda(argparse.Namespace(cuda=False))
