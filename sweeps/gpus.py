"""This machine's GPUs for run_sac.py --gpus: what `nvidia-smi -L` lists, the check that each
--gpus id names one of them once, and the GPU each local launch slot keeps."""

from __future__ import annotations

import re
import subprocess

from utils import UsageError


def machine_gpus() -> list[tuple[str, ...]] | None:
    """This machine's devices as CUDA_VISIBLE_DEVICES can name them, from `nvidia-smi -L`:
    (index, GPU-UUID) per GPU, (MIG-UUID,) per MIG device. None where nvidia-smi cannot say
    (not installed, or it fails); an empty list where it finds no GPU."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listing.returncode != 0:
        return [] if "No devices were found" in listing.stdout + listing.stderr else None
    devices = []
    for line in listing.stdout.splitlines():
        gpu = re.match(r"GPU (\d+): .*\(UUID: (GPU-[^)\s]+)\)", line.strip())
        mig = re.match(r"MIG .*\(UUID: (MIG-[^)\s]+)\)", line.strip())
        devices += [gpu.groups()] if gpu else [mig.groups()] if mig else []
    return devices


def check_gpu_ids(gpus: list[str], devices: list[tuple[str, ...]]) -> None:
    """UsageError unless each id names exactly one of the machine's devices (an index, or a
    UUID or a unique prefix of one, as CUDA takes it) and no two ids name the same one."""
    named: dict[tuple[str, ...], str] = {}
    for gpu in gpus:
        matches = [device for device in devices
                   if gpu == device[0] or not gpu.isdigit() and device[-1].startswith(gpu)]
        if not matches:
            indices = ",".join(device[0] for device in devices if len(device) == 2) or "none"
            raise UsageError(f"--gpus {gpu}: not a GPU of this machine (nvidia-smi -L lists "
                             f"{indices}); give indices or UUIDs that nvidia-smi -L lists")
        if len(matches) > 1:
            raise UsageError(f"--gpus {gpu}: the start of {len(matches)} UUIDs of this "
                             f"machine; give enough of the UUID to name one")
        if matches[0] in named:
            raise UsageError(f"--gpus {named[matches[0]]} and {gpu} name one GPU; give each "
                             f"GPU once")
        named[matches[0]] = gpu


def gpu_of(slot: int, gpus: list[str]) -> str | None:
    """The GPU of a launch slot: each of the `jobs` slots keeps one GPU, round-robin, so no
    GPU ever serves more than ceil(jobs / len(gpus)) runs at once. No GPUs: None."""
    return gpus[slot % len(gpus)] if gpus else None
