"""How often does the chain's λ_i = 1/|E[α·log πi − min Q]| spike, against the guarded form?

Trains POSAC (2 actors by default) with train_sac.py's own Trainer and records λ_1 at every
update; prints, per --q-normalize-form, the fraction of updates where λ_1 exceeds 10× its
median over the run, and the largest λ_1 / median.

    OMP_NUM_THREADS=1 python benchmarks/lambda_study.py --env-name Pendulum-v1 --num-steps 15000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_sac  # noqa: E402


def lambdas_of_a_run(env_name: str, num_steps: int, form: str, seed: int) -> np.ndarray:
    """λ_1 after every update of one short run, [updates]."""
    with tempfile.TemporaryDirectory() as root:
        flags = ["--env-name", env_name, "--num-steps", str(num_steps), "--seed", str(seed),
                 "--num-actors", "2", "--w2-weights", "0.1", "--q-normalize-form", form,
                 "--start-steps", "1000", "--eval-freq", "1000000", "--eval-episodes", "1",
                 "--log-freq", str(num_steps), "--checkpoint-freq", str(10 * num_steps),
                 "--automatic-entropy-tuning", "--results-dir", f"{root}/results",
                 "--log-dir", f"{root}/runs", "--checkpoint-dir", f"{root}/checkpoints"]
        args, paths, env = train_sac.parse_and_check(flags)
        trainer = train_sac.SACTrainer(args, paths, env)
        recorded = []
        learn = trainer.update_step

        def recording_learn():  # the study needs λ at every update, not every log
            metrics, finite = learn()
            recorded.append(metrics["q_scale"][1].item())
            return metrics, finite

        trainer.update_step = recording_learn
        with trainer.experiment.stop:
            trainer.train()
        trainer.experiment.writer.close()
    return np.array(recorded)


def spikes(lambdas: np.ndarray) -> dict[str, float]:
    """Spikes over the whole run, and over its second half (after the critic's early
    phase, when |Q| itself is small and any 1/|·| form is large)."""
    median = float(np.median(lambdas))
    late = lambdas[len(lambdas) // 2:]
    return {"updates": len(lambdas), "median": median,
            "fraction_above_10x_median": float(np.mean(lambdas > 10 * median)),
            "late_fraction_above_10x_median": float(np.mean(late > 10 * median)),
            "max_over_median": float(lambdas.max() / median),
            "argmax_update": int(lambdas.argmax())}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-name", default="Pendulum-v1")
    parser.add_argument("--num-steps", type=int, default=15_000)
    parser.add_argument("--seeds", default="1", help="comma-separated")
    parser.add_argument("--forms", default="abs-mean,mean-abs")
    parser.add_argument("--output", type=Path, default=None, help="JSON with the figures")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    results = {}
    for form in args.forms.split(","):
        runs = [spikes(lambdas_of_a_run(args.env_name, args.num_steps, form, int(seed)))
                for seed in args.seeds.split(",")]
        results[form] = runs
        for seed, run in zip(args.seeds.split(","), runs):
            print(f"{args.env_name} {form:8s} seed {seed}: {run['updates']} updates, median λ_1 "
                  f"{run['median']:.4g}, λ_1 > 10×median in "
                  f"{100 * run['fraction_above_10x_median']:.2f}% of updates "
                  f"({100 * run['late_fraction_above_10x_median']:.2f}% of the second half), "
                  f"max/median {run['max_over_median']:.3g} at update {run['argmax_update']}",
                  flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
