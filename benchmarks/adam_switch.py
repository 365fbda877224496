"""Adam's step sizes when a loss's gradients grow at once, with its moments carried over or
fresh: why `--init-from` starts actor 0's optimiser anew (docs/offline_to_online.md).

Offline, actor 0's SAC term is scaled by λ_0 ≈ 1/|Q| (about 0.01) beside its data term;
online its loss is plain SAC, so its gradients are about 1/λ_0 times larger. Adam's
gradient average follows a change within about 1/(1 − β1) = 10 steps, its squared-gradient
average within about 1/(1 − β2) = 1000, and after many steps the bias correction no longer
helps. Here gradients of mean `--mean` and unit noise, times `--before` for `--pre-steps`
steps and times 1 after; the mean step per parameter, in units of lr, at some updates after
the change, for the carried moments and for a fresh Adam:

    OMP_NUM_THREADS=1 python benchmarks/adam_switch.py
"""

from __future__ import annotations

import argparse

import torch

REPORTED = (1, 10, 100, 300, 1000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pre-steps", type=int, default=3000,
                        help="steps at the small gradient scale before the change")
    parser.add_argument("--before", type=float, default=0.01,
                        help="the gradients' scale before the change (λ_0)")
    parser.add_argument("--mean", type=float, default=0.3,
                        help="the gradients' mean, in units of their noise")
    parser.add_argument("--params", type=int, default=10000, help="parameters")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def mean_steps(args: argparse.Namespace, pre_steps: int) -> dict[int, float]:
    """The mean |Δθ|/lr at each reported update after the change."""
    generator = torch.Generator().manual_seed(args.seed)
    param = torch.zeros(args.params, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=args.lr)

    def step(scale: float) -> torch.Tensor:
        before = param.detach().clone()
        param.grad = scale * (args.mean + torch.randn(args.params, generator=generator))
        optimizer.step()
        return (param.detach() - before).abs().mean() / args.lr

    for _ in range(pre_steps):
        step(args.before)
    after = [step(1.0).item() for _ in range(max(REPORTED))]
    return {t: after[t - 1] for t in REPORTED}


def main() -> None:
    args = build_parser().parse_args()
    carried, fresh = mean_steps(args, args.pre_steps), mean_steps(args, 0)
    print(f"gradients ×{1 / args.before:g} after {args.pre_steps} steps; mean step per "
          f"parameter in units of lr")
    print("| update | carried moments | fresh Adam | carried / fresh |")
    print("|---|---|---|---|")
    for t in REPORTED:
        print(f"| {t} | {carried[t]:.2f} | {fresh[t]:.2f} | {carried[t] / fresh[t]:.2f} |")


if __name__ == "__main__":
    main()
