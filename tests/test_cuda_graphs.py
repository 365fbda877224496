"""The --cuda path on a GPU (skipped without one; CI has none): the device-independent checks
of the CPU suite, run on CUDA.

- An update on the GPU equals the CPU's update (which test_sac and test_pogo
  check against the equations) when both draw the same ε.
- The replay memory holds the same bytes on both devices, and its CUDA-graph writes equal
  its plain writes.
- With --cuda-graphs the training loop computes what it computes without them.
- train_sac.py and train_pogo.py end to end on the GPU, and SIGKILL + --resume there equals
  the uninterrupted run.
"""

import subprocess
import time

import numpy as np
import pytest
import test_pogo
import test_sac
import torch
from test_train_pogo import RUN as POGO_RUN
from test_train_pogo import command as pogo_command
from test_train_pogo import hdf5_dataset, rows_of  # noqa: F401 (hdf5_dataset is a fixture)
from test_train_sac import (assert_same_results, kill_after_two_checkpoints, make_trainer,
                            run_training)

from cuda_graphs import Graphed
from replay_memory import Batch, ReplayMemory

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def cpu_noise(agent, seed: int) -> None:
    """Make every ε the agent draws (its `noise`, whatever the stream) come from one CPU
    generator, in the order of the draws, moved to the agent's device."""
    generator = torch.Generator().manual_seed(seed)
    agent.noise = lambda shape, *_: torch.randn(shape, generator=generator).to(agent.device)


def batch_to(batch: Batch, device: torch.device) -> Batch:
    return Batch(*(tensor.to(device) for tensor in batch))


def assert_states_match(state, other, exact=False, path=""):
    """Two agents' state dicts are equal (`exact`: bit for bit, generator states included) or
    agree within float tolerance, leaving out what differs by device: the generators, and
    Adam's `capturable` (on for a GPU). Either may be a CPU agent's."""
    if isinstance(state, torch.Tensor):
        if exact:
            assert torch.equal(state, other), path
        else:
            torch.testing.assert_close(other.cpu(), state.cpu(), atol=1e-5, rtol=1e-4,
                                       msg=lambda m: f"{path}: {m}")
    elif isinstance(state, dict):
        for key in state:
            if exact or ("generator" not in str(key) and key != "capturable"):
                assert_states_match(state[key], other[key], exact, f"{path}/{key}")
    elif isinstance(state, (list, tuple)):
        for i, (a, b) in enumerate(zip(state, other, strict=True)):
            assert_states_match(a, b, exact, f"{path}/{i}")
    else:
        assert state == other, path


@pytest.mark.parametrize("num_actors", [1, 3])
def test_posac_update_on_the_gpu_equals_the_cpu_update(num_actors):
    cpu = test_sac.make_agent(num_actors, automatic_entropy_tuning=True)
    gpu = test_sac.POSAC(test_sac.OBS_DIM, test_sac.LOW,
                                test_sac.HIGH, cpu.config, seed=0, device=CUDA)
    agents = (cpu, gpu)
    batch = test_sac.make_batch(seed=1)
    for agent in agents:
        cpu_noise(agent, seed=5)
    for _ in range(3):
        for agent in agents:
            agent.update(batch_to(batch, agent.device))
    assert_states_match(cpu.state_dict(), gpu.state_dict())


def test_pogo_update_on_the_gpu_equals_the_cpu_update():
    cpu = test_pogo.make_agent(3)
    config = cpu.config
    gpu = test_pogo.POGO(test_pogo.OBS_DIM, test_pogo.ACTION_DIM,
                                test_pogo.MAX_ACTION, config, seed=0, device=CUDA)
    for agent in (cpu, gpu):
        cpu_noise(agent, seed=11)
    for step in range(4):
        batch = test_pogo.make_batch(seed=step)
        cpu.update(batch)
        gpu.update(batch_to(batch, CUDA))
    assert_states_match(cpu.state_dict(), gpu.state_dict())


def pushes(count: int, obs_dim: int = 5, action_dim: int = 2):
    rng = np.random.default_rng(0)
    for t in range(count):
        yield (rng.normal(size=obs_dim), rng.uniform(-1, 1, action_dim), float(rng.normal()),
               rng.normal(size=obs_dim), t % 7 == 6, t % 5 == 4 or t % 7 == 6)


@pytest.mark.parametrize("graphed", [False, True])
def test_replay_memory_on_the_gpu_holds_the_cpu_bytes(graphed):
    cpu = ReplayMemory(12, 5, 2, seed=0)
    gpu = ReplayMemory(12, 5, 2, seed=0, device=CUDA)
    if graphed:
        gpu.write_staged = Graphed(gpu.write_staged)
    for transition in pushes(40):  # the ring wraps three times
        cpu.push(*transition)
        gpu.push(*transition)
        torch.cuda.synchronize()
        for name in ("obs", "action", "reward", "mask"):
            assert torch.equal(getattr(cpu, name), getattr(gpu, name).cpu()), name
        assert torch.equal(cpu.sampled_slots[:len(cpu)], gpu.sampled_slots[:len(gpu)].cpu())
        assert int(gpu.device_size) == len(gpu) == len(cpu)


@pytest.mark.parametrize("flags", [
    ["--num-actors", "1", "--w2-weights", "0.0", "--automatic-entropy-tuning"],
    ["--num-actors", "3", "--w2-weights", "0.1", "--target-update-interval", "2",
     "--critic-target-policy", "target"]])
def test_cuda_graphs_compute_what_the_plain_loop_computes(tmp_path, flags):
    """Same seed, --cuda with and without --cuda-graphs: the same actions, metrics and final
    state, bit for bit (a replay runs the same kernels on the same memory), through the
    graphs' warm-up, capture and replays."""
    common = ["--env-name", "HalfCheetah-v5", "--num-steps", "400", "--start-steps", "100",
              "--batch-size", "64", "--eval-episodes", "1", "--cuda", *flags]
    trainers = [make_trainer(tmp_path / name, *common, *extra)
                for name, extra in (("plain", []), ("graphs", ["--cuda-graphs"]))]
    for trainer in trainers:
        with trainer.experiment.stop:
            trainer.train()
        trainer.experiment.writer.close()
    plain, graphs = (trainer.agent.state_dict() for trainer in trainers)
    assert_states_match(plain, graphs, exact=True)
    assert all(graph.graph is not None for graph in trainers[1].update_step.graphs)
    assert trainers[1].act.graph is not None
    assert trainers[0].agent.num_updates == trainers[1].agent.num_updates == 400 - 63
    rows = [metrics_rows_of(trainer) for trainer in trainers]
    assert rows[0] == rows[1]


def metrics_rows_of(trainer) -> list[float]:
    return [value for row in trainer.state.history for key, value in sorted(row.items())
            if key != "wall_time_s"]


@pytest.mark.parametrize("extra", [["--cuda"], ["--cuda", "--cuda-graphs"]])
def test_train_sac_on_the_gpu_resumes_after_sigkill_as_if_uninterrupted(tmp_path, extra):
    uninterrupted, killed = tmp_path / "a", tmp_path / "b"
    for root in (uninterrupted, killed):
        root.mkdir()
    assert "on cuda" in run_training(uninterrupted, *extra).stdout
    kill_after_two_checkpoints(killed, *extra)
    result = run_training(killed, "--resume", *extra)
    assert "Resuming" in result.stdout
    assert_same_results(killed, uninterrupted)


def test_train_pogo_on_the_gpu_resumes_after_sigkill_as_if_uninterrupted(hdf5_dataset,
                                                                          tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
    done = subprocess.run(pogo_command(hdf5_dataset, roots[0], "--cuda"), capture_output=True,
                          text=True, timeout=300, cwd=roots[0])
    assert done.returncode == 0 and "on cuda" in done.stdout, done.stderr
    checkpoint = roots[1] / "checkpoints" / "invertedpendulum_random" / f"{POGO_RUN}_latest.pt"
    process = subprocess.Popen(pogo_command(hdf5_dataset, roots[1], "--cuda"), cwd=roots[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.kill()
    process.wait()
    resumed = subprocess.run(pogo_command(hdf5_dataset, roots[1], "--cuda", "--resume"),
                             capture_output=True, text=True, timeout=300, cwd=roots[1])
    assert resumed.returncode == 0 and "Resuming" in resumed.stdout, resumed.stderr
    assert rows_of(roots[1]) == rows_of(roots[0])
