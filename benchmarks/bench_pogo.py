"""Speed benchmark of the POGO agent, its sample W2² distances and its data terms.

    OMP_NUM_THREADS=1 python benchmarks/bench_pogo.py          # CPU, N = 1, 2, 3
    python benchmarks/bench_pogo.py --cuda                     # GPU

1. POGO.update on HalfCheetah-like shapes (obs 17, action 6, batch 256, hidden 256, K = 4,
   policy_freq 2: a timed block of an even number of calls holds as many actor updates as
   critic-only ones) for every N and chain distance (exact, sinkhorn, unbiased; and unbiased
   with the energy and anchored data terms), and TD3+BC as a configuration for scale;
   "× exact" is each row's time per update over the exact distance's at the same N.
   The agents are timed round-robin in short blocks, so a slow spell of a shared machine
   hits every row alike; each rate is the median of --repeats blocks after a warm-up round.
   "marginal" is the extra time of each actor beyond the first, as a fraction of the
   1-actor time with the same distance.
2. exact vs sinkhorn W2² forward + backward for 256 states, K = 4, 6 action dimensions,
   timed the same way, and how far they disagree per state (relative value error, and
   relative error of the gradient with respect to the moving samples) on the samples the
   agent really compares: actor 1 against the updated actor 0, at initialisation and after
   --train-updates updates on synthetic data. Then the cost of the other estimators on the
   same samples: the unbiased distance (2K samples per side) and actor 0's data terms
   (point-wise squared distance, energy score and anchored energy score against one data
   action per state).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from pogo import POGO, POGOConfig  # noqa: E402
from replay_memory import Batch  # noqa: E402
from transport import (anchored_energy_score, dirac_w2_squared, energy_score,  # noqa: E402
                       exact_w2_squared, sinkhorn_w2_squared, unbiased_w2_squared)

OBS_DIM, ACTION_DIM = 17, 6


def synthetic_batches(count: int, batch_size: int, device: torch.device) -> list[Batch]:
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        batches.append(Batch(torch.randn(batch_size, OBS_DIM, generator=gen),
                             torch.rand(batch_size, ACTION_DIM, generator=gen) * 2 - 1,
                             torch.randn(batch_size, generator=gen),
                             torch.randn(batch_size, OBS_DIM, generator=gen),
                             (torch.rand(batch_size, generator=gen) > 0.01).float()))
    return [Batch(*(t.to(device) for t in batch)) for batch in batches]


def round_robin(work: dict[str, Callable[[], None]], count: int, repeats: int,
                synchronize: Callable[[], None]) -> dict[str, float]:
    """Median rate (count / seconds) of each entry's block, blocks taken in turn."""
    rates: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(repeats + 1):
        for name, block in work.items():
            synchronize()
            start = time.perf_counter()
            block()
            synchronize()
            rates[name].append(count / (time.perf_counter() - start))
    return {name: sorted(r[1:])[len(r[1:]) // 2] for name, r in rates.items()}  # r[0]: warm-up


def agent_configs(chain_lengths: list[int], hidden: int, k: int) -> dict[str, POGOConfig]:
    configs = {"TD3+BC (1 deterministic actor)": POGOConfig.td3_bc(ACTION_DIM, hidden_size=hidden)}
    settings = {"exact": {}, "sinkhorn": {"distance": "sinkhorn"},
                "unbiased": {"distance": "unbiased"},
                "unbiased+energy": {"distance": "unbiased", "data_term": "energy"},
                "unbiased+anchored": {"distance": "unbiased", "data_term": "anchored"}}
    for name, setting in settings.items():
        for n in chain_lengths:
            configs[f"{name} N={n}"] = POGOConfig(
                num_actors=n, w2_weights=(1.0,) * n, num_samples=k, hidden_size=hidden,
                **setting)
    return configs


def bench_updates(args: argparse.Namespace, device: torch.device,
                  synchronize: Callable[[], None]) -> None:
    chain_lengths = [int(n) for n in args.actors.split(",")]
    batches = synthetic_batches(args.updates, args.batch_size, device)
    configs = agent_configs(chain_lengths, args.hidden_size, args.num_samples)
    agents = {name: POGO(OBS_DIM, ACTION_DIM, 1.0, cfg, seed=0, device=device)
              for name, cfg in configs.items()}

    def block(agent: POGO) -> Callable[[], None]:
        def run() -> None:
            for batch in batches:
                agent.update(batch)
        return run

    rates = round_robin({name: block(agent) for name, agent in agents.items()},
                        args.updates, args.repeats, synchronize)
    print(f"\nPOGO.update, batch {args.batch_size}, hidden {args.hidden_size}, K = "
          f"{args.num_samples}, policy_freq 2 (rates count every call; half update actors)")
    print("| configuration | updates/s | ms/update | × exact | per extra actor: ms/update "
          "| per extra actor: fraction of N=1 |")
    print("|---|---|---|---|---|---|")
    for name, rate in rates.items():
        distance, _, n = name.partition(" N=")
        base = rates.get(f"{distance} N=1")
        exact = rates.get(f"exact N={n}")
        extra_ms = marginal = "–"
        if n and base and int(n) > 1:
            extra_ms = f"{1e3 * (1 / rate - 1 / base) / (int(n) - 1):.2f}"
            marginal = f"{(base / rate - 1.0) / (int(n) - 1):.2f}"
        ratio = f"{exact / rate:.2f}" if exact else "–"
        print(f"| {name} | {rate:.1f} | {1e3 / rate:.2f} | {ratio} | {extra_ms} | {marginal} |")
    print("(the exact, sinkhorn and unbiased N=1 rows run the same code: actor 0's distance is "
          "to a Dirac, exact for every method; their gap is the timing noise)")


def chain_samples(args: argparse.Namespace, device: torch.device, train_updates: int,
                  samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Actor 1's samples [B, K, A] and the updated actor 0's (its reference), as in an actor
    update, after `train_updates` updates of a 2-actor agent on synthetic data (K =
    `samples`, default --num-samples)."""
    config = POGOConfig(num_actors=2, w2_weights=(1.0, 1.0), num_samples=args.num_samples,
                        hidden_size=args.hidden_size)
    agent = POGO(OBS_DIM, ACTION_DIM, 1.0, config, seed=1, device=device)
    batches = synthetic_batches(8, args.batch_size, device)
    for step in range(train_updates):
        agent.update(batches[step % len(batches)])
    obs = batches[0].obs
    with torch.no_grad():
        return (agent.sample_actions(agent.actors[1], obs, "chain", samples),
                agent.sample_actions(agent.actors[0], obs, "chain", samples))


def bench_distances(args: argparse.Namespace, device: torch.device,
                    synchronize: Callable[[], None]) -> None:
    methods = {
        "exact": exact_w2_squared,
        "sinkhorn blur 0.05 (seed, scaling 0.5)": sinkhorn_w2_squared,
        "sinkhorn blur 0.05, scaling 0.9 (converged)":
            lambda x, y: sinkhorn_w2_squared(x, y, 0.05, scaling=0.9),
    }
    samples = {f"after {n} updates": chain_samples(args, device, n)
               for n in (0, args.train_updates)}
    x, y = samples[f"after {args.train_updates} updates"]
    x = x.clone().requires_grad_(True)

    def block(distance: Callable) -> Callable[[], None]:
        def run() -> None:
            for _ in range(args.distance_calls):
                x.grad = None
                distance(x, y).mean().backward()
        return run

    rates = round_robin({name: block(f) for name, f in methods.items()}, args.distance_calls,
                        args.repeats, synchronize)
    print(f"\nW2² forward + backward, {args.batch_size} states, K = {args.num_samples}, "
          f"{ACTION_DIM} action dimensions; disagreement with exact per state: "
          f"|S − W| / W (median, 90th percentile, max) and ‖∇S − ∇W‖ / ‖∇W‖ over the batch")
    print("| method | ms | samples | exact W2² (mean) | value error med / p90 / max "
          "| gradient error |")
    print("|---|---|---|---|---|---|")
    for name, distance in methods.items():
        for label, (xs, ys) in samples.items():
            xs = xs.clone().requires_grad_(True)
            exact = exact_w2_squared(xs, ys)
            (exact_grad,) = torch.autograd.grad(exact.sum(), xs)
            value = distance(xs, ys)
            (grad,) = torch.autograd.grad(value.sum(), xs)
            error = ((value - exact).abs() / exact).detach()
            quantiles = torch.quantile(error, torch.tensor([0.5, 0.9], device=device))
            grad_error = ((grad - exact_grad).norm() / exact_grad.norm()).item()
            print(f"| {name} | {1e3 / rates[name]:.2f} | {label} | {exact.mean().item():.4f} "
                  f"| {quantiles[0].item():.4f} / {quantiles[1].item():.4f} / "
                  f"{error.max().item():.4f} | {grad_error:.4f} |")
    bench_other_estimators(args, x.detach(), y, synchronize)


def bench_other_estimators(args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor,
                           synchronize: Callable[[], None]) -> None:
    """Forward + backward of the unbiased distance (2K samples per side) and of actor 0's
    data terms (K samples against one point), beside the exact K-sample distance."""
    doubled = chain_samples(args, x.device, args.train_updates, 2 * args.num_samples)
    point = y[:, :1]
    estimators = {
        "exact W2², K per side": (exact_w2_squared, x, y),
        "unbiased W2², 2K per side": (unbiased_w2_squared, *doubled),
        "point-wise E‖x − a‖², K samples": (dirac_w2_squared, x, point),
        "energy score, K samples": (energy_score, x, point),
        "anchored energy score, K samples": (anchored_energy_score, x, point),
    }

    def block(function: Callable, moving: torch.Tensor, reference: torch.Tensor
              ) -> Callable[[], None]:
        moving = moving.clone().requires_grad_(True)

        def run() -> None:
            for _ in range(args.distance_calls):
                moving.grad = None
                function(moving, reference).mean().backward()
        return run

    rates = round_robin({name: block(*entry) for name, entry in estimators.items()},
                        args.distance_calls, args.repeats, synchronize)
    exact_ms = 1e3 / rates["exact W2², K per side"]
    print(f"\nThe other estimators, forward + backward, {args.batch_size} states, "
          f"K = {args.num_samples}")
    print("| estimator | ms | × exact |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {1e3 / rate:.3f} | {1e3 / rate / exact_ms:.2f} |")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", default="1,2,3", help="comma list of chain lengths")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-samples", type=int, default=4, help="K samples per state")
    parser.add_argument("--updates", type=int, default=10, help="updates per timed block (even)")
    parser.add_argument("--distance-calls", type=int, default=20,
                        help="W2² calls per timed block")
    parser.add_argument("--train-updates", type=int, default=500,
                        help="updates before the distances' 'trained' samples are taken")
    parser.add_argument("--repeats", type=int, default=11,
                        help="timed blocks per row; the median is reported (after a warm-up)")
    parser.add_argument("--cuda", action="store_true")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    device = torch.device("cuda" if args.cuda else "cpu")

    def synchronize() -> None:
        if args.cuda:
            torch.cuda.synchronize()

    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench_distances(args, device, synchronize)
    bench_updates(args, device, synchronize)


if __name__ == "__main__":
    main()
