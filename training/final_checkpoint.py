"""Self-contained final checkpoints: what a finished run leaves so that its actors can act
again without the run's flags, environment registry guesses or dataset.

A final checkpoint ({checkpoint_dir}/{group}/{file_name}_final.pt) is a dict of tensors and
plain values (torch.load(..., weights_only=True) reads it):

    format, format_version   "posac-final-checkpoint", FORMAT_VERSION
    algorithm, program       "POSAC" | "POGO" | "TD3BC", the training script
    code_version             the git commit that trained it (utils.code_version)
    env_id, env_kwargs       the environment it was trained (POSAC) or evaluated (POGO) on
    observation_shape        the observation space's shape
    action_low, action_high  the action bounds, float32 tensors
    agent_config             the agent's config dataclass as a dict (SACConfig, POGOConfig)
    obs_mean, obs_std        the observation normalisation the actors saw, or None
    reference_scores         (random, expert) returns for normalised scores, or None
    seed, steps, settings    the run's seed, its steps and every flag (its config.json)
    agent                    the agent's state_dict (actors, critic, targets, optimisers)

The resume checkpoints ({file_name}_latest.pt) stay as they are (training/experiment.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.evaluation import Policy, gaussian_policies, noise_input_policies
from utils import UsageError

FORMAT = "posac-final-checkpoint"
FORMAT_VERSION = 1
ALGORITHMS = ("POSAC", "POGO", "TD3BC")
# the last commit whose final checkpoints held the networks only
LAST_NETWORKS_ONLY_COMMIT = "5cbfd0c"


def final_checkpoint(header: dict[str, Any], agent_state: dict[str, Any]) -> dict[str, Any]:
    """The final checkpoint: the format marker, `header` (every key of the module docstring
    but `agent`) and the agent's state."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **header, "agent": agent_state}


def resolve_run(run: Path) -> tuple[Path, Path | None]:
    """The final checkpoint of `run` (a finished run's results directory, found through its
    summary.json, or the _final.pt itself) and the results directory (None for a file)."""
    import json

    if run.is_dir():
        summary = run / "summary.json"
        if not summary.is_file():
            raise UsageError(f"{run} has no summary.json: the run has not finished (or this is "
                             f"not a results directory); give a finished run")
        try:
            path = json.loads(summary.read_text())["final_checkpoint"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{summary} names no final_checkpoint: the run finished before "
                             f"self-contained final checkpoints; give its _final.pt, or train "
                             f"it again with this version") from None
        return Path(path), run
    return run, None


def read_final_checkpoint(path: Path) -> dict[str, Any]:
    """A final checkpoint from `path`, or UsageError naming what the file is instead (a
    resume checkpoint, one from before this format, a newer format, not a checkpoint)."""
    import torch

    if not path.is_file():
        raise UsageError(f"{path} does not exist; give a run directory (results/{{file_name}}) "
                         f"or its final checkpoint ({{file_name}}_final.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupt, or not written by torch.save
        reason = " ".join(str(error).split())[:120]
        raise UsageError(f"{path} is not a readable checkpoint ({type(error).__name__}: "
                         f"{reason}); give a final checkpoint ({{file_name}}_final.pt)") from None
    return check_final_checkpoint(path, checkpoint)


def check_final_checkpoint(path: Path, checkpoint: Any) -> dict[str, Any]:
    """`checkpoint`, loaded from `path`, if it is a final checkpoint this code reads, else
    UsageError naming what it is instead."""
    if not isinstance(checkpoint, dict):
        raise UsageError(f"{path} holds a {type(checkpoint).__name__}, not a final checkpoint")
    if "run" in checkpoint:
        raise UsageError(f"{path} is a resume checkpoint; give the run's final checkpoint "
                         f"({{file_name}}_final.pt, written when the run finishes) or its "
                         f"results directory")
    if checkpoint.get("format") != FORMAT:
        if set(checkpoint) == {"agent"}:
            raise UsageError(
                f"{path} holds the networks only: it was written before self-contained final "
                f"checkpoints (commit {LAST_NETWORKS_ONLY_COMMIT} and earlier). Train the run "
                f"again with this version (same flags, a new --run-name); make_dataset.py "
                f"--policy still reads a train_sac.py one with --env-name")
        raise UsageError(f"{path} is not a POSAC/POGO final checkpoint (no format marker)")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise UsageError(f"{path} has format version {checkpoint['format_version']}, newer "
                         f"than this code reads ({FORMAT_VERSION}); update the code")
    if checkpoint.get("algorithm") not in ALGORITHMS:
        raise UsageError(f"{path} holds a {checkpoint.get('algorithm')!r} agent, which this "
                         f"code does not build (it builds {', '.join(ALGORITHMS)}); give a "
                         f"train_sac.py or train_pogo.py run's final checkpoint")
    return checkpoint


def check_spaces(checkpoint: dict[str, Any], env: Any, env_id: str,
                 fix: str = "choose an environment with the same spaces") -> None:
    """UsageError, ending with `fix`, unless `env` (id `env_id`) has the observation shape
    and action bounds the checkpoint's actors were trained on."""
    import numpy as np

    obs_shape = tuple(env.observation_space.shape)
    low, high = env.action_space.low, env.action_space.high
    trained = (tuple(checkpoint["observation_shape"]), checkpoint["action_low"].numpy(),
               checkpoint["action_high"].numpy())
    if (obs_shape != trained[0] or low.shape != trained[1].shape
            or not (np.allclose(low, trained[1]) and np.allclose(high, trained[2]))):
        raise UsageError(f"{env_id}'s spaces (observations {obs_shape}, actions in [{low}, "
                         f"{high}]) differ from the {checkpoint['env_id']} ones the actors were "
                         f"trained on (observations {trained[0]}, actions in [{trained[1]}, "
                         f"{trained[2]}]); {fix}")


def num_actors(checkpoint: dict[str, Any]) -> int:
    return len(checkpoint["agent"]["actors"])


def stochastic_actors(checkpoint: dict[str, Any]) -> bool:
    """Whether the actors draw noise (POSAC's always; POGO's unless deterministic)."""
    return not checkpoint["agent_config"].get("deterministic_actors", False)


def build_actors(checkpoint: dict[str, Any], indices: list[int]) -> list[Any]:
    """The actors `indices` as float32 modules with the checkpoint's weights, on the CPU."""
    import torch

    from model import GaussianPolicy, NoiseInputActor

    config = checkpoint["agent_config"]
    obs_dim = int(torch.Size(checkpoint["observation_shape"]).numel())
    low, high = checkpoint["action_low"].float(), checkpoint["action_high"].float()
    actors = []
    for i in indices:
        if checkpoint["algorithm"] == "POSAC":
            actor = GaussianPolicy(obs_dim, low.numel(), config["hidden_size"], low, high)
        else:
            actor = NoiseInputActor(obs_dim, low.numel(), config["hidden_size"],
                                    float(high[0]), stochastic_actors(checkpoint))
        actor.load_state_dict(checkpoint["agent"]["actors"][i])
        actors.append(actor.eval())
    return actors


def evaluation_policies(checkpoint: dict[str, Any], indices: list[int],
                        device: Any = "cpu") -> list[Policy]:
    """The actors' evaluation policies on `device`, as the training script evaluated them:
    POSAC's tanh(μ + σ·ε)·scale + bias, POGO's tanh(MLP([(s − μ)/σ, z]))·max_action, z = ε."""
    actors = [actor.to(device) for actor in build_actors(checkpoint, indices)]
    if checkpoint["algorithm"] == "POSAC":
        return gaussian_policies(actors)
    return noise_input_policies(actors, checkpoint["obs_mean"].to(device),
                                checkpoint["obs_std"].to(device))


def normalized_score(checkpoint: dict[str, Any]) -> Any:
    """Mean return → 100·(R − random)/(expert − random) with the checkpoint's reference
    returns, or None when it has none."""
    references = checkpoint.get("reference_scores")
    if references is None:
        return None
    low, high = references
    return lambda mean_return: 100.0 * (mean_return - low) / (high - low)
