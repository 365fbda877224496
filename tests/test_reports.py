"""reports.offline against hand computations: small run folders (config.json + metrics CSV
of known piecewise-linear curves) are written in a temporary folder, and the table and the
curves are checked against numbers worked out here by hand, the behaviour policy's score
against a real make_dataset.py dataset's episodes and the flag, the figure's lines, the
settings' groups, the spread column and the score's name against the runs written, the
aggregate against SciPy's trimmed mean, and every bad input against its one error line
(exit status 2, nothing written)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import make_dataset
from reports import figures as offline_figures
from reports import finetune
from reports import offline as offline_report
from reports.aggregate import covered_datasets, iqm_with_ci
from reports.curves import with_ci

PREFIX = "reports.offline: error:"
CHEETAH = "local/cheetah/medium-v0"
HOPPER = "local/hopper/medium-v0"
BUDGET = 100  # num_steps of every run here: the last fifth is steps 80-100
REPS = "500"  # the aggregate's bootstrap resamples: enough to check, quick to run
REFERENCED = "D4RL-referenced (v2 reference returns on v5 environments)"

# seed → (evaluation steps, actor 0's scores, actor 1's scores, wall_time_s at the last one)
POGO_EVALS = {0: ([40, 70, 100], [10.0, 40.0, 70.0], [12.0, 44.0, 80.0], 300.0),
              1: ([50, 90, 100], [20.0, 50.0, 60.0], [20.0, 50.0, 55.0], 360.0),
              2: ([40, 85, 100], [0.0, 90.0, 30.0], [5.0, 80.0, 50.0], 420.0)}
# TD3+BC, one actor; seed 2 is still running (60 of 100 steps)
TD3BC_EVALS = {0: ([50, 100], [30.0, 40.0], 100.0),
               1: ([50, 100], [20.0, 40.0], 110.0),
               2: ([50, 60], [10.0, 40.0], 50.0)}


def write_run(results: Path, dataset: str, td3_bc: bool, weights: list[float], seed: int,
              steps: list[int], scores: list[list[float]], wall_time: float,
              finished: bool, settings: dict[str, Any] | None = None,
              spreads: list[list[float]] | None = None, env_id: str | None = None) -> Path:
    """A train_pogo.py run folder: config.json, the metrics CSV, summary.json when finished.
    Without `settings` the config is an old run's (no data_term, no weight_units); `settings`
    adds config keys and names the folder after their values, as train_pogo.py's suffixes
    do; `spreads` (per actor, per evaluation) adds the spread_i columns; `env_id` goes into
    summary.json."""
    prefix = "TD3BC" if td3_bc else "POGO"
    name = f"{prefix}_{dataset.replace('/', '-')}_s{seed}_w{'-'.join(map(str, weights))}"
    name += "".join(f"_{value}" for value in (settings or {}).values())
    folder = results / name
    (folder / "training").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "dataset": dataset, "td3_bc": td3_bc, "num_actors": len(weights),
        "w2_weights": weights, "seed": seed, "num_steps": BUDGET, "eval_freq": 10,
        "distance": "exact", "env_name": None, **(settings or {})}))
    header = ["step", "wall_time_s"]
    for actor in range(len(weights)):
        header += [f"actor_{actor}_deterministic", f"actor_{actor}_deterministic_std",
                   f"actor_{actor}_deterministic_score"]
    header += [f"spread_{actor}" for actor in range(len(spreads or []))]
    with open(folder / "training" / f"{name}_metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header + ["critic_loss"])
        for k, step in enumerate(steps):
            wall = wall_time * (k + 1) / len(steps)
            row = [step, wall]
            for actor_scores in scores:
                row += [actor_scores[k] * 100, 1.0, actor_scores[k]]  # return, std, score
            row += [actor_spreads[k] for actor_spreads in spreads or []]
            writer.writerow(row + [0.5])
    if finished:
        (folder / "summary.json").write_text(json.dumps({"env_id": env_id} if env_id else {}))
    return folder


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """POGO (2 actors, 3 seeds) and TD3+BC (3 seeds, one unfinished) on CHEETAH, one TD3+BC
    seed on HOPPER, and what the report must skip: a train_sac.py run and a logs folder."""
    root = tmp_path_factory.mktemp("runs") / "results"
    for seed, (steps, actor0, actor1, wall) in POGO_EVALS.items():
        write_run(root, CHEETAH, False, [10.0, 10.0], seed, steps, [actor0, actor1], wall, True)
    for seed, (steps, scores, wall) in TD3BC_EVALS.items():
        write_run(root, CHEETAH, True, [1.0], seed, steps, [scores], wall, seed != 2)
    write_run(root, HOPPER, True, [1.0], 0, [20, 40], [[5.0, 25.0]], 10.0, False)
    posac = root / "POSAC_HalfCheetah-v5_s2_w0.0"
    (posac / "training").mkdir(parents=True)
    (posac / "config.json").write_text(json.dumps({"env_name": "HalfCheetah-v5", "seed": 2,
                                                   "num_actors": 1, "w2_weights": [0.0]}))
    (posac / "training" / f"{posac.name}_metrics.csv").write_text(
        "step,wall_time_s,actor_0_deterministic\n10,1.0,5.0\n")
    (root / "logs").mkdir()
    return root


def report(results: Path, out: Path, *extra: str) -> dict[tuple[str, str, int], dict[str, str]]:
    """Run the CLI in process; the CSV's rows by (dataset, method, actor)."""
    offline_report.main(["--results-dir", str(results), "--out-dir", str(out),
                         "--bootstrap-reps", REPS, *extra])
    with open(out / "offline_results.csv") as handle:
        return {(row["dataset"], row["method"], int(row["actor"])): row
                for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def reported(results: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[dict[tuple[str, str, int], dict[str, str]], Path, str]:
    """The report on `results` with CHEETAH's behaviour score given and no Minari dataset
    stored: its CSV rows, its folder, and what it printed."""
    out = tmp_path_factory.mktemp("report")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("MINARI_DATASETS_PATH", str(out / "no_minari"))
        rows = report(results, out, "--behaviour-score", f"{CHEETAH}=46.3")
    return rows, out, printed.getvalue()


def line_at(steps: list[int], values: list[float], step: float) -> float:
    """A piecewise-linear curve through the evaluations, written out."""
    for (s0, v0), (s1, v1) in zip(zip(steps, values), zip(steps[1:], values[1:])):
        if s0 <= step <= s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    raise AssertionError(step)


def cell(mean: float, low: float, high: float) -> str:
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def test_table_numbers_against_hand_computation(reported):
    rows, out, printed = reported
    assert set(rows) == {(CHEETAH, "TD3+BC [1.0]", 0), (CHEETAH, "POGO [10.0, 10.0]", 0),
                         (CHEETAH, "POGO [10.0, 10.0]", 1), (HOPPER, "TD3+BC [1.0]", 0)}
    # last fifth (steps 80-100) of each seed's piecewise-linear curve, by hand:
    # seed 0 is one straight segment over 70-100, so its average is its value at 90;
    # seeds 1 and 2 are two trapezoids each (80-90 and 90-100; 80-85 and 85-100)
    actor0 = [40 + 30 * 20 / 30,
              ((20 + 30 * 30 / 40 + 50) / 2 * 10 + (50 + 60) / 2 * 10) / 20,
              ((80 + 90) / 2 * 5 + (90 + 30) / 2 * 15) / 20]
    actor1 = [44 + 36 * 20 / 30,
              ((20 + 30 * 30 / 40 + 50) / 2 * 10 + (50 + 55) / 2 * 10) / 20,
              ((5 + 75 * 40 / 45 + 80) / 2 * 5 + (80 + 50) / 2 * 15) / 20]
    assert actor0 == pytest.approx([60.0, 50.625, 66.25])  # the arithmetic above, evaluated
    differences = [a1 - a0 for a0, a1 in zip(actor0, actor1)]  # paired by seed
    for actor, windows in ((0, actor0), (1, actor1)):
        row = rows[(CHEETAH, "POGO [10.0, 10.0]", actor)]
        ends = [evals[1 + actor][-1] for evals in POGO_EVALS.values()]
        counts = ("seeds", "finished_seeds", "window_seeds", "steps_min", "steps_max", "num_steps")
        assert [int(row[count]) for count in counts] == [3, 3, 3, 100, 100, 100]
        assert float(row["end_mean"]) == pytest.approx(sum(ends) / 3)
        assert float(row["window_mean"]) == pytest.approx(sum(windows) / 3)
        # with three seeds each all-one-seed resample has probability 1/27 > 2.5%, so the
        # percentile-bootstrap interval runs exactly from the lowest seed to the highest
        for kind, values in (("end", ends), ("window", windows)):
            assert float(row[f"{kind}_ci_low"]) == pytest.approx(min(values))
            assert float(row[f"{kind}_ci_high"]) == pytest.approx(max(values))
        assert float(row["behaviour_score"]) == 46.3
        assert float(row["wall_time_s_mean"]) == pytest.approx(360.0)
    versus = rows[(CHEETAH, "POGO [10.0, 10.0]", 1)]
    assert float(versus["window_vs_actor0_mean"]) == pytest.approx(sum(differences) / 3)
    assert float(versus["window_vs_actor0_ci_low"]) == pytest.approx(min(differences))
    assert float(versus["window_vs_actor0_ci_high"]) == pytest.approx(max(differences))
    assert rows[(CHEETAH, "POGO [10.0, 10.0]", 0)]["window_vs_actor0_mean"] == ""

    # TD3+BC: every seed ends at 40, so the interval collapses to that point; the last fifth
    # counts the two seeds that reached step 100, straight lines whose averages are their
    # values at 90 (38 and 36): resample means 36, 37, 38 with probabilities 1/4, 1/2, 1/4
    baseline = rows[(CHEETAH, "TD3+BC [1.0]", 0)]
    assert [float(baseline[f"end_{k}"]) for k in ("mean", "ci_low", "ci_high")] == [40.0] * 3
    assert int(baseline["window_seeds"]) == 2
    assert [float(baseline[f"window_{k}"]) for k in ("mean", "ci_low", "ci_high")] == \
        pytest.approx([37.0, 36.0, 38.0])

    markdown = (out / "offline_results.md").read_text()
    ends = [80.0, 55.0, 50.0]  # actor 1's last evaluations
    row1 = (f"| {CHEETAH} | POGO [10.0, 10.0] | 1 | 3 | 100/100 "
            f"| {cell(sum(ends) / 3, min(ends), max(ends))} "
            f"| {cell(sum(actor1) / 3, min(actor1), max(actor1))} "
            f"| {cell(sum(differences) / 3, min(differences), max(differences))} "
            f"| – | 46.3 | 0:06:00 |")
    assert row1 in markdown.splitlines()
    assert (f"| {CHEETAH} | TD3+BC [1.0] | 0 | 3 (2 finished) | 60–100/100 | 40.0 [40.0, 40.0] "
            f"| 37.0 [36.0, 38.0] (n=2) | – | – | 46.3 | 0:01:26 |") in markdown.splitlines()
    assert (f"| {HOPPER} | TD3+BC [1.0] | 0 | 1 (0 finished) | 40/100 | 25.0 | – | – | – "
            f"| – | 0:00:10 |") in markdown.splitlines()
    table = [line for line in markdown.splitlines() if line.startswith("| local/")]
    assert [line.split(" | ")[1:3] for line in table] == [  # baseline first in each dataset
        ["TD3+BC [1.0]", "0"], ["POGO [10.0, 10.0]", "0"], ["POGO [10.0, 10.0]", "1"],
        ["TD3+BC [1.0]", "0"]]
    assert f"- {CHEETAH}: 46.3 (--behaviour-score)" in markdown.splitlines()
    assert f"- {HOPPER}: unknown (not in the dataset's metadata under " in markdown
    assert "POSAC" not in markdown and "POSAC" not in printed
    # no run names its environment, so the scores keep D4RL's own name
    assert markdown.splitlines()[2].startswith("D4RL-normalised score (0 = random, 100 = expert)")
    assert "D4RL-referenced" not in markdown


def test_curves_are_the_seeds_interpolated_means_on_the_common_grid(reported):
    _, out, _ = reported
    with open(out / f"curves_{CHEETAH.replace('/', '_')}.csv") as handle:
        curves = list(csv.DictReader(handle))
    for method, actor, evals in (("POGO [10.0, 10.0]", 0, POGO_EVALS),
                                 ("POGO [10.0, 10.0]", 1, POGO_EVALS),
                                 ("TD3+BC [1.0]", 0, TD3BC_EVALS)):
        line = [r for r in curves if r["method"] == method and int(r["actor"]) == actor]
        # the union of the seeds' steps from the latest first to the earliest last evaluation
        expected_grid = {"POGO [10.0, 10.0]": [50, 70, 85, 90, 100], "TD3+BC [1.0]": [50, 60]}
        assert [int(r["step"]) for r in line] == expected_grid[method]
        for point in line:
            values = [line_at(e[0], e[1 + actor], int(point["step"])) for e in evals.values()]
            assert float(point["mean"]) == pytest.approx(sum(values) / 3)
            assert float(point["ci_low"]) == pytest.approx(min(values))
            assert float(point["ci_high"]) == pytest.approx(max(values))
            assert int(point["seeds"]) == 3
    for dataset in (CHEETAH, HOPPER):
        png = (out / f"curves_{dataset.replace('/', '_')}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_has_one_line_per_method_and_actor_and_the_dashed_behaviour_line(results):
    groups = offline_report.load_groups(offline_report.find_runs(results))
    curves = pd.DataFrame(offline_report.curve_rows(groups, CHEETAH))
    figure = offline_figures.curve_figure(CHEETAH, curves, 46.3, "D4RL-referenced score")
    assert figure.axes[0].get_ylabel() == "D4RL-referenced score"
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert set(lines) == {"TD3+BC [1.0] actor 0 (n=3)", "POGO [10.0, 10.0] actor 0 (n=3)",
                          "POGO [10.0, 10.0] actor 1 (n=3)", "behaviour policy (46.3)"}
    behaviour = lines["behaviour policy (46.3)"]
    assert behaviour.get_linestyle() == "--" and list(behaviour.get_ydata()) == [46.3, 46.3]
    assert all(line.get_linestyle() != "--" for label, line in lines.items()
               if label.startswith(("TD3", "POGO")))
    assert len(figure.axes[0].collections) == 3  # a CI band per (method, actor)


def test_weight_figure_shows_each_actors_last_fifth_at_each_chain_weight(tmp_path):
    """POGO at w = 1 and w = 10 (two seeds each) and TD3+BC on CHEETAH, evaluated at steps 80
    and 100: each last fifth is a straight line's mean, (v80 + v100)/2, and with two seeds
    the percentile-bootstrap interval runs from the lower seed to the higher (each
    one-seed resample has probability 1/4). A w = 100 run that has not reached the last
    fifth is not a setting yet; HOPPER, with one setting, gets no figure."""
    results = tmp_path / "results"
    # weight → seed → (actor 0's scores at 80 and 100, actor 1's)
    scores = {1.0: {0: ([10.0, 30.0], [0.0, 10.0]), 1: ([20.0, 60.0], [30.0, 50.0])},
              10.0: {0: ([50.0, 50.0], [60.0, 80.0]), 1: ([40.0, 40.0], [70.0, 70.0])}}
    for weight, seeds in scores.items():
        for seed, actors in seeds.items():
            write_run(results, CHEETAH, False, [weight] * 2, seed, [80, 100], list(actors),
                      10.0, True)
    write_run(results, CHEETAH, False, [100.0] * 2, 0, [60], [[5.0], [5.0]], 5.0, False)
    write_run(results, CHEETAH, True, [1.0], 0, [80, 100], [[30.0, 50.0]], 10.0, True)
    write_run(results, HOPPER, False, [1.0] * 2, 0, [80, 100], [[1.0, 2.0]] * 2, 10.0, True)
    offline_report.main(["--results-dir", str(results), "--out-dir", str(tmp_path / "out"),
                         "--behaviour-score", f"{CHEETAH}=12.0", "--bootstrap-reps", REPS])
    written = sorted(path.name for path in (tmp_path / "out").glob("weights_*"))
    assert written == [f"weights_{CHEETAH.replace('/', '_')}.png"]

    groups = offline_report.load_groups(offline_report.find_runs(results))
    rows = offline_report.report_rows(groups, {CHEETAH: (12.0, "flag"), HOPPER: (None, "")})
    ax = offline_figures.weight_figure(CHEETAH, rows, 12.0, offline_report.BASELINE,
                                      "D4RL-normalised score").axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["[1.0, 1.0]", "[10.0, 10.0]"]
    assert [bars.get_label() for bars in ax.containers] == ["actor 0", "actor 1"]
    for actor, bars in enumerate(ax.containers):
        per_seed = [[sum(seeds[seed][actor]) / 2 for seed in (0, 1)]
                    for seeds in scores.values()]  # [setting][seed]
        data_line, _, (error_bars,) = bars.lines
        assert list(data_line.get_xdata()) == pytest.approx([0 + (actor - 0.5) * 0.1,
                                                             1 + (actor - 0.5) * 0.1])
        assert list(data_line.get_ydata()) == pytest.approx([sum(v) / 2 for v in per_seed])
        ends = [value for segment in error_bars.get_segments() for value in sorted(segment[:, 1])]
        assert ends == pytest.approx([end for v in per_seed for end in (min(v), max(v))])
    lines = {line.get_label(): line for line in ax.get_lines() if line.get_label()[0] != "_"}
    assert list(lines["TD3+BC (40.0)"].get_ydata()) == [40.0, 40.0]
    assert lines["behaviour policy (12.0)"].get_linestyle() == "--"
    assert offline_figures.weight_figure(HOPPER, rows, None, offline_report.BASELINE, "") is None


def test_weight_figures_compare_weights_only_under_the_same_settings(tmp_path):
    """The exact distance at w = 1 and 10 and the unbiased, anchored chain at w = 10 on
    CHEETAH: one figure for the exact runs, without the unbiased point (its settings differ,
    so it is no other weight); an unbiased, anchored run at w = 1 too gives that pair its
    own figure, named after its settings."""
    results, out = tmp_path / "results", tmp_path / "out"
    unbiased = {"distance": "unbiased", "data_term": "anchored"}
    for weight in (1.0, 10.0):
        write_run(results, CHEETAH, False, [weight] * 2, 0, [80, 100], [[weight] * 2] * 2, 5.0,
                  True)
    write_run(results, CHEETAH, False, [10.0] * 2, 0, [80, 100], [[3.0, 4.0]] * 2, 5.0, True,
              unbiased)
    flags = ["--results-dir", str(results), "--out-dir", str(out), "--behaviour-score",
             f"{CHEETAH}=12.0", "--bootstrap-reps", REPS]
    offline_report.main(flags)
    stem = f"weights_{CHEETAH.replace('/', '_')}"
    assert sorted(path.name for path in out.glob("weights_*")) == [f"{stem}.png"]
    groups = offline_report.load_groups(offline_report.find_runs(results))
    rows = offline_report.report_rows(groups, {CHEETAH: (12.0, "flag")})
    families = offline_report.settings_families(rows, CHEETAH)
    ax = offline_figures.weight_figure(CHEETAH, families[""], 12.0,
                                       offline_report.BASELINE, "").axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["[1.0, 1.0]", "[10.0, 10.0]"]
    assert list(ax.containers[0].lines[0].get_ydata()) == [1.0, 10.0]

    write_run(results, CHEETAH, False, [1.0] * 2, 0, [80, 100], [[2.0, 2.0]] * 2, 5.0, True,
              unbiased)
    offline_report.main(flags)
    assert (sorted(path.name for path in out.glob("weights_*"))
            == [f"{stem}.png", f"{stem}_unbiased_anchored.png"])


def test_weight_figure_names_each_settings_seeds_when_they_differ(tmp_path):
    """Two seeds at w = 1, one at w = 10 (and a second w = 10 seed short of the last fifth):
    each tick says how many seeds its point averages."""
    results = tmp_path / "results"
    for seed in (0, 1):
        write_run(results, CHEETAH, False, [1.0] * 2, seed, [80, 100], [[1.0, 2.0]] * 2, 5.0,
                  True)
    write_run(results, CHEETAH, False, [10.0] * 2, 0, [80, 100], [[3.0, 4.0]] * 2, 5.0, True)
    write_run(results, CHEETAH, False, [10.0] * 2, 1, [60], [[3.0], [3.0]], 5.0, False)
    groups = offline_report.load_groups(offline_report.find_runs(results))
    rows = offline_report.report_rows(groups, {CHEETAH: (None, "")})
    ax = offline_figures.weight_figure(CHEETAH, rows, None, offline_report.BASELINE, "").axes[0]
    assert ([label.get_text() for label in ax.get_xticklabels()]
            == ["[1.0, 1.0]\nn = 2", "[10.0, 10.0]\nn = 1"])


def test_behaviour_score_is_read_from_a_real_dataset_unless_overridden(tmp_path, monkeypatch,
                                                                       capsys):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "local/pendulum/random-v0"
    make_dataset.main(["--env-name", "InvertedPendulum-v5", "--policy", "random",
                       "--num-steps", "60", "--seed", "0", "--dataset-id", dataset,
                       "--ref-min-score", "0", "--ref-max-score", "10"])
    # the behaviour policy's score by its definition: the complete episodes' mean return,
    # normalised; an episode is complete when it terminated or hit the 1000-step time limit
    # (the last one here was cut short by the step budget and does not count)
    episodes = list(minari.load_dataset(dataset, download=False).iterate_episodes())
    returns = [float(e.rewards.sum()) for e in episodes
               if e.terminations[-1] or len(e.rewards) == 1000]
    assert 0 < len(returns) < len(episodes)
    expected = 100 * (sum(returns) / len(returns) - 0) / (10 - 0)
    results = tmp_path / "results"
    write_run(results, dataset, True, [1.0], 0, [30, 60], [[1.0, 2.0]], 5.0, False)
    row = report(results, tmp_path / "out")[(dataset, "TD3+BC [1.0]", 0)]
    assert float(row["behaviour_score"]) == pytest.approx(expected)
    assert row["behaviour_source"] == "dataset metadata"
    assert f"- {dataset}: {expected:.1f} (dataset metadata)" in capsys.readouterr().out
    # a dataset made from a stochastic policy records that policy's spread: the report shows it
    metadata_path = tmp_path / "minari" / dataset / "data" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["make_dataset"]["summary"]["behaviour_spread"] = 0.0917
    metadata_path.write_text(json.dumps(metadata))
    report(results, tmp_path / "out")
    assert (f"- {dataset}: {expected:.1f} (dataset metadata); its spread 0.092 (dataset "
            f"metadata)") in capsys.readouterr().out
    row = report(results, tmp_path / "out", "--behaviour-score", f"{dataset}=12.5")[
        (dataset, "TD3+BC [1.0]", 0)]
    assert (float(row["behaviour_score"]), row["behaviour_source"]) == (12.5, "--behaviour-score")


def test_an_unscored_run_and_an_unused_behaviour_score_are_warnings(tmp_path, capsys):
    results = tmp_path / "results"
    write_run(results, HOPPER, True, [1.0], 0, [20, 40], [[5.0, 25.0]], 10.0, False)
    unscored = write_run(results, HOPPER, True, [1.0], 1, [20], [[7.0]], 1.0, False)
    metrics = unscored / "training" / f"{unscored.name}_metrics.csv"
    metrics.write_text("step,wall_time_s,actor_0_deterministic\n20,1.0,700.0\n")
    rows = report(results, tmp_path / "out", "--behaviour-score", "local/walker/medium-v0=3",
                  "--behaviour-score", f"{HOPPER}=7.5")
    assert [int(row["seeds"]) for row in rows.values()] == [1]
    row = rows[(HOPPER, "TD3+BC [1.0]", 0)]
    assert (float(row["end_mean"]), float(row["behaviour_score"])) == (25.0, 7.5)
    assert capsys.readouterr().err.splitlines() == [
        f"reports.offline: warning: {metrics} has no actor_0_deterministic_score (its "
        f"dataset has no reference scores); {unscored.name} is left out",
        f"reports.offline: warning: --behaviour-score names local/walker/medium-v0, which "
        f"no evaluated run uses (their datasets: {HOPPER}); ignored"]


SETTINGS = {"unbiased, energy": {"distance": "unbiased", "data_term": "energy",
                                 "weight_units": "sum"},
            "sinkhorn": {"distance": "sinkhorn"},
            "seed units": {"distance": "exact", "data_term": "pointwise", "weight_units": "seed"}}
DEFAULTS = {"distance": "exact", "data_term": "pointwise", "weight_units": "sum"}
# seed → actor → spread at each of the evaluations (steps 80 and 100) of the default group
SPREADS = {1: [[0.31, 0.2504], [0.5, 0.1]], 2: [[0.2, 0.3], [0.4, 0.3001]]}


@pytest.fixture(scope="module")
def settings_report(tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[dict[tuple[str, str, int], dict[str, str]], str, str]:
    """On CHEETAH (evaluated on HalfCheetah-v5): POGO at w = 10 with the default settings
    from an old config (seed 0, no data_term or weight_units, no spread column) and from two
    new ones (seeds 1 and 2, the keys written out, spreads measured), and one run for each
    of SETTINGS; on HOPPER (environment unknown) one TD3+BC run. Its CSV rows, markdown
    table and aggregate table."""
    root = tmp_path_factory.mktemp("settings")
    results = root / "results"
    write_run(results, CHEETAH, False, [10.0] * 2, 0, [80, 100], [[40.0, 40.0]] * 2, 5.0, True,
              env_id="HalfCheetah-v5")
    for seed, spreads in SPREADS.items():
        write_run(results, CHEETAH, False, [10.0] * 2, seed, [80, 100], [[50.0, 50.0]] * 2, 5.0,
                  True, settings=DEFAULTS, spreads=spreads, env_id="HalfCheetah-v5")
    for settings in SETTINGS.values():
        write_run(results, CHEETAH, False, [10.0] * 2, 0, [80, 100], [[60.0, 60.0]] * 2, 5.0,
                  True, settings=settings, env_id="HalfCheetah-v5")
    write_run(results, HOPPER, True, [1.0], 0, [80, 100], [[5.0, 5.0]], 5.0, True)
    rows = report(results, root / "out", "--behaviour-score", f"{CHEETAH}=46.3")
    return (rows, (root / "out" / "offline_results.md").read_text(),
            (root / "out" / "aggregate_results.md").read_text())


def test_settings_are_separate_groups_and_old_configs_are_the_default_group(settings_report):
    rows, markdown, aggregate = settings_report
    labels = [f"POGO [10.0, 10.0] {label}" for label in SETTINGS]
    assert {(method, actor) for dataset, method, actor in rows if dataset == CHEETAH} == {
        (method, actor) for method in ["POGO [10.0, 10.0]", *labels] for actor in (0, 1)}
    default = rows[(CHEETAH, "POGO [10.0, 10.0]", 0)]
    assert (default["seed_list"], float(default["window_mean"])) == ("0 1 2", 140 / 3)
    assert {key: default[key] for key in DEFAULTS} == DEFAULTS
    for label, settings in SETTINGS.items():
        row = rows[(CHEETAH, f"POGO [10.0, 10.0] {label}", 0)]
        assert (row["seed_list"], float(row["window_mean"])) == ("0", 60.0)
        assert {key: row[key] for key in DEFAULTS} == {**DEFAULTS, **settings}
    table = [line.split(" | ")[1] for line in markdown.splitlines()
             if line.startswith(f"| {CHEETAH} ") and line.split(" | ")[2] == "0"]
    assert table == ["POGO [10.0, 10.0]", "POGO [10.0, 10.0] seed units",
                     "POGO [10.0, 10.0] sinkhorn", "POGO [10.0, 10.0] unbiased, energy"]
    methods = [line.split(" | ")[0].removeprefix("| ") for line in aggregate.splitlines()
               if line.startswith("| POGO") and line.split(" | ")[1] == "0"]
    assert methods == table


def test_spread_is_the_mean_of_the_last_evaluations_and_a_dash_without_it(settings_report):
    rows, markdown, _ = settings_report
    for actor in (0, 1):
        row = rows[(CHEETAH, "POGO [10.0, 10.0]", actor)]
        last = [SPREADS[seed][actor][-1] for seed in SPREADS]  # seed 0 has no spread column
        assert float(row["spread_end_mean"]) == pytest.approx(sum(last) / 2)
        assert int(row["spread_seeds"]) == 2
    cells = {(line.split(" | ")[1], line.split(" | ")[2]): line.split(" | ")[8]
             for line in markdown.splitlines() if line.startswith("| local/")}
    assert cells[("POGO [10.0, 10.0]", "0")] == "0.275 (n=2)"  # (0.2504 + 0.3) / 2
    assert cells[("POGO [10.0, 10.0]", "1")] == "0.200 (n=2)"  # (0.1 + 0.3001) / 2
    assert cells[("POGO [10.0, 10.0] sinkhorn", "0")] == "–"
    assert cells[("TD3+BC [1.0]", "0")] == "–"
    assert rows[(HOPPER, "TD3+BC [1.0]", 0)]["spread_end_mean"] == ""
    assert "*spread (end)*" in markdown


def test_scores_on_v5_environments_are_called_d4rl_referenced(settings_report):
    _, markdown, aggregate = settings_report
    header = markdown.splitlines()[2]
    assert header.startswith("Normalised score (0 = random, 100 = expert)")  # HOPPER's are not
    assert (f"{REFERENCED}: the runs on {CHEETAH} were evaluated on HalfCheetah-v5, while "
            f"D4RL measured") in header
    assert header.endswith("The others are D4RL-normalised.")
    # the aggregate covers CHEETAH for POGO, HOPPER for TD3+BC: both datasets again
    assert REFERENCED in aggregate.splitlines()[2]


def test_figures_name_each_datasets_scores_as_its_table_does(tmp_path, monkeypatch):
    """CHEETAH's runs were evaluated on HalfCheetah-v5 (D4RL-referenced scores), HOPPER's on
    an unknown environment (D4RL-normalised): each dataset's curves and weight figure say so."""
    results = tmp_path / "results"
    for weights in ([1.0] * 2, [10.0] * 2):  # two settings each: a weight figure too
        write_run(results, CHEETAH, False, weights, 0, [80, 100], [[2.0, 2.0]] * 2, 5.0, True,
                  env_id="HalfCheetah-v5")
        write_run(results, HOPPER, False, weights, 0, [80, 100], [[2.0, 2.0]] * 2, 5.0, True)
    labels: dict[tuple[str, str], str] = {}
    for name in ("curve_figure", "weight_figure"):
        def record(dataset, *args, name=name, original=getattr(offline_report, name)):
            labels[name, dataset] = args[-1]
            return original(dataset, *args)
        monkeypatch.setattr(offline_report, name, record)
    offline_report.main(["--results-dir", str(results), "--out-dir", str(tmp_path / "out"),
                         "--behaviour-score", f"{CHEETAH}=12.0", "--behaviour-score",
                         f"{HOPPER}=5.0", "--bootstrap-reps", REPS])
    assert labels == {("curve_figure", CHEETAH): "D4RL-referenced score",
                      ("weight_figure", CHEETAH): "D4RL-referenced score",
                      ("curve_figure", HOPPER): "D4RL-normalised score",
                      ("weight_figure", HOPPER): "D4RL-normalised score"}


def test_scores_of_a_running_v4_run_are_d4rl_referenced_from_its_env_name(tmp_path):
    """An unfinished run has no summary.json yet: its config's env_name names the environment."""
    results = tmp_path / "results"
    write_run(results, HOPPER, True, [1.0], 0, [20], [[5.0]], 1.0, False,
              settings={"env_name": "Hopper-v4"})
    report(results, tmp_path / "out")
    header = (tmp_path / "out" / "offline_results.md").read_text().splitlines()[2]
    assert header.startswith("D4RL-referenced score (0 = random, 100 = expert)")
    assert ("D4RL-referenced (v2 reference returns on v4 environments): the runs on every "
            "dataset here were evaluated on Hopper-v4") in header


def test_scores_of_a_running_run_are_d4rl_referenced_from_its_minari_dataset(tmp_path,
                                                                           monkeypatch):
    """Without summary.json or --env-name, the local Minari dataset's metadata names the
    environment (its eval_env_spec before its env_spec), as train_pogo.py reads it."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    metadata = tmp_path / "minari" / CHEETAH / "data" / "metadata.json"
    metadata.parent.mkdir(parents=True)
    spec = '{{"id": "{}", "entry_point": "x"}}'
    metadata.write_text(json.dumps({"env_spec": spec.format("HalfCheetah-v4"),
                                    "eval_env_spec": spec.format("HalfCheetah-v5")}))
    results = tmp_path / "results"
    write_run(results, CHEETAH, True, [1.0], 0, [20], [[5.0]], 1.0, False)
    write_run(results, HOPPER, True, [1.0], 0, [20], [[5.0]], 1.0, False)  # not stored here
    report(results, tmp_path / "out")
    header = (tmp_path / "out" / "offline_results.md").read_text().splitlines()[2]
    assert (f"{REFERENCED}: the runs on {CHEETAH} were evaluated on HalfCheetah-v5, while "
            f"D4RL measured") in header
    assert header.endswith("The others are D4RL-normalised.")


# dataset → seed → last-fifth score of actor 0 (constant curves, so the last fifth is the
# value); actor 1 scores 100 minus it. 4 seeds × 3 datasets = 12 scores: the interquartile
# mean drops exactly 3 at each end
AGGREGATE_SCORES = {CHEETAH: [3.0, 71.0, 15.0, 40.0], HOPPER: [8.0, 90.0, 22.0, 55.0],
                    "local/walker/medium-v0": [1.0, 64.0, 30.0, 47.0]}


def aggregate_results(tmp_path: Path) -> Path:
    """AGGREGATE_SCORES as POGO runs (2 actors), a fourth dataset with 2 seeds only, and
    TD3+BC with one seed on CHEETAH."""
    results = tmp_path / "results"
    for dataset, values in {**AGGREGATE_SCORES, "local/ant/medium-v0": [10.0, 20.0]}.items():
        for seed, value in enumerate(values):
            write_run(results, dataset, False, [1.0] * 2, seed, [80, 100],
                      [[value] * 2, [100 - value] * 2], 5.0, True)
    write_run(results, CHEETAH, True, [1.0], 0, [80, 100], [[33.0, 33.0]], 5.0, True)
    return results


def test_aggregate_is_the_interquartile_mean_with_a_reproducible_interval(tmp_path):
    groups = offline_report.load_groups(offline_report.find_runs(aggregate_results(tmp_path)))
    rows = offline_report.aggregate_rows(groups, int(REPS))
    assert [(row["method"], row["actor"]) for row in rows] == [
        ("TD3+BC [1.0]", 0), ("POGO [1.0, 1.0]", 0), ("POGO [1.0, 1.0]", 1)]
    for actor, row in enumerate(rows[1:]):
        flat = np.array([v if actor == 0 else 100 - v
                         for values in AGGREGATE_SCORES.values() for v in values])
        assert row["iqm"] == pytest.approx(scipy.stats.trim_mean(flat, 0.25))
        assert row["iqm"] == pytest.approx(np.sort(flat)[3:9].mean())  # the middle six
        assert row["iqm_ci_low"] < row["iqm"] < row["iqm_ci_high"]
        assert row["seeds"] == 4
        assert row["datasets"] == "; ".join(sorted(AGGREGATE_SCORES))
        assert row["left_out"] == "local/ant/medium-v0 (n=2)"
    # one seed: the IQM is its score, and a bootstrap of it would be that score alone
    assert (rows[0]["iqm"], rows[0]["seeds"], rows[0]["datasets"]) == (33.0, 1, CHEETAH)
    assert np.isnan(rows[0]["iqm_ci_low"]) and np.isnan(rows[0]["iqm_ci_high"])
    # the same resamples whatever numpy's global generator holds, and that is left as it was
    # (rliable draws the resamples from it)
    np.random.seed(123)
    assert offline_report.aggregate_rows(groups, int(REPS)) == rows
    assert np.random.random() == np.random.RandomState(123).random()

    out = tmp_path / "out"
    report(tmp_path / "results", out)
    written = pd.read_csv(out / "aggregate_results.csv")
    assert list(written["iqm_ci_low"][1:]) == pytest.approx([row["iqm_ci_low"] for row in rows[1:]])
    markdown = (out / "aggregate_results.md").read_text().splitlines()
    row = rows[1]
    assert (f"| POGO [1.0, 1.0] | 0 | 100 | 4 "
            f"| {cell(row['iqm'], row['iqm_ci_low'], row['iqm_ci_high'])} "
            f"| {', '.join(sorted(AGGREGATE_SCORES))} | local/ant/medium-v0 (n=2) |") in markdown
    assert f"| TD3+BC [1.0] | 0 | 100 | 1 | 33.0 | {CHEETAH} | – |" in markdown


def test_aggregate_interval_is_the_stratified_bootstraps_percentile_interval():
    """rliable's interval against a bootstrap written here: 200,000 resamples of the seeds
    within each dataset (numpy), the IQM of each, and the 2.5% and 97.5% quantiles. The
    4,000 resamples behind the interval put its bounds within ±1 percentage point of those
    (4 binomial standard deviations)."""
    scores = np.array(list(AGGREGATE_SCORES.values())).T  # [seeds, datasets]
    iqm, low, high = iqm_with_ci(scores, 4000)
    picks = np.random.default_rng(0).integers(0, len(scores), (200_000, *scores.shape))
    resampled = np.take_along_axis(scores[None], picks, axis=1)  # seeds within each dataset
    iqms = scipy.stats.trim_mean(resampled.reshape(len(picks), -1), 0.25, axis=1)
    assert iqm == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25))
    assert np.quantile(iqms, 0.015) <= low <= np.quantile(iqms, 0.035)
    assert np.quantile(iqms, 0.965) <= high <= np.quantile(iqms, 0.985)


def test_covered_datasets_take_the_most_shared_seed_count_the_larger_on_a_tie():
    assert covered_datasets({"a": 2, "b": 2, "c": 3, "d": 3}) == ["c", "d"]
    assert covered_datasets({"a": 2, "b": 2, "c": 3}) == ["a", "b"]
    assert covered_datasets({"a": 0, "b": 0}) == []


def test_datasets_flag_limits_the_tables_and_the_aggregate_to_the_named_datasets(tmp_path):
    results = aggregate_results(tmp_path)
    named = [CHEETAH, HOPPER]
    out = tmp_path / "out"
    rows = report(results, out, "--datasets", *named)
    assert {dataset for dataset, _, _ in rows} == set(named)
    aggregate = pd.read_csv(out / "aggregate_results.csv")
    pogo = aggregate[aggregate["method"] == "POGO [1.0, 1.0]"].iloc[0]
    flat = np.array([v for dataset in named for v in AGGREGATE_SCORES[dataset]])
    assert pogo["iqm"] == pytest.approx(scipy.stats.trim_mean(flat, 0.25))
    assert pogo["datasets"] == "; ".join(named) and pd.isna(pogo["left_out"])


def unknown_distance(root: Path) -> None:
    write_run(root, HOPPER, False, [1.0], 0, [20], [[5.0]], 1.0, False,
              settings={"distance": "wasserstein"})


def only_posac(root: Path) -> None:
    (root / "POSAC_Hopper-v5_s1_w0.0").mkdir(parents=True)
    (root / "POSAC_Hopper-v5_s1_w0.0" / "config.json").write_text('{"env_name": "Hopper-v5"}')


def not_evaluated(root: Path) -> None:
    """One run whose metrics CSV has only its header, one without a metrics CSV yet."""
    write_run(root, HOPPER, True, [1.0], 0, [], [[]], 0.0, False)
    folder = write_run(root, HOPPER, True, [1.0], 1, [], [[]], 0.0, False)
    (folder / "training" / f"{folder.name}_metrics.csv").unlink()


def broken_config(root: Path) -> None:
    write_run(root, HOPPER, True, [1.0], 0, [20], [[5.0]], 1.0, False)
    (root / "POGO_x_s0_w1.0").mkdir()
    (root / "POGO_x_s0_w1.0" / "config.json").write_text('{"dataset": "x", "td3')


def string_weights(root: Path) -> None:
    """w2_weights "10": read character by character it would pass as [1.0, 0.0]."""
    folder = write_run(root, HOPPER, True, [1.0], 0, [20], [[5.0]], 1.0, False)
    config = folder / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "w2_weights": "10"}))


def one_run(root: Path) -> None:
    write_run(root, HOPPER, True, [1.0], 0, [20], [[5.0]], 1.0, False)


# name: (folder contents, extra flags, a fragment of the error line)
BAD_INPUT = {
    "no such folder": (None, [], "is not a folder"),
    "empty folder": (lambda root: None, [], "no train_pogo.py run in"),
    "only train_sac.py runs": (only_posac, [], "no train_pogo.py run in"),
    "no evaluation yet": (not_evaluated, [], "has a usable normalised-score evaluation yet"),
    "weights not a list": (string_weights, [], "w2_weights '10' is not a list of numbers"),
    "unreadable config.json": (broken_config, [], "config.json unreadable"),
    "score without dataset": (one_run, ["--behaviour-score", "=3"], "expected DATASET=SCORE"),
    "score not a number": (one_run, ["--behaviour-score", f"{HOPPER}=high"],
                           "expected DATASET=SCORE"),
    "score not finite": (one_run, ["--behaviour-score", f"{HOPPER}=nan"],
                         "expected DATASET=SCORE"),
    "no '='": (one_run, ["--behaviour-score", "46.3"], "expected DATASET=SCORE"),
    "unknown distance": (unknown_distance, [], "distance 'wasserstein', which train_pogo.py"),
    "no bootstrap": (one_run, ["--bootstrap-reps", "0"], "must be a positive integer"),
    "dataset without runs": (one_run, ["--datasets", HOPPER, "posac/hopper/medium-v9"],
                             "--datasets: no train_pogo.py run on posac/hopper/medium-v9"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    make, flags, fragment = BAD_INPUT[case]
    root = tmp_path / "results"
    if make is not None:
        root.mkdir(exist_ok=True)
        make(root)
    with pytest.raises(SystemExit) as exit_info:
        offline_report.main(["--results-dir", str(root), "--out-dir", str(tmp_path / "out"),
                             *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PREFIX) and fragment in err[0], err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ offline to online
HOPPER_RANDOM, HOPPER_EXPERT = -20.272305, 3234.3  # D4RL's hopper references


def write_sac_run(root: Path, name: str, seed: int, scores: dict[int, list[float]],
                  steps: list[int], dataset: str | None = None, offline_data: str | None = None,
                  init_from: str | None = None, weights: tuple[float, ...] = (0.0, 0.1),
                  finished: bool = True, metrics: dict[str, list[float]] | None = None,
                  loaded: dict[str, Any] | None = None, **flags: Any) -> None:
    """A train_sac.py run's config.json (`flags` override its settings), summary.json (when
    finished; with the settings of the offline run it `loaded`, as train_sac.py links a
    continued run) and metrics CSV, the actors' deterministic returns made from the given
    normalised scores, and further `metrics` columns."""
    folder = root / name
    (folder / "training").mkdir(parents=True)
    config = {"env_name": "Hopper-v5", "seed": seed, "automatic_entropy_tuning": True,
              "dataset": dataset, "offline_data": offline_data, "init_from": init_from,
              "w2_weights": list(weights), "num_steps": steps[-1], "offline_ratio": 0.5,
              "data_weight": 1.0 if dataset else 0.0, **flags}
    (folder / "config.json").write_text(json.dumps(config))
    if finished:
        link = {} if loaded is None else {"init_from": {"settings": loaded}}
        (folder / "summary.json").write_text(json.dumps({"steps": steps[-1], **link}))
    returns = {f"actor_{i}_deterministic": [HOPPER_RANDOM + s * (HOPPER_EXPERT - HOPPER_RANDOM)
                                            / 100 for s in values]
               for i, values in scores.items()}
    pd.DataFrame({"step": steps, **returns, **(metrics or {})}).to_csv(
        folder / "training" / f"{name}_metrics.csv", index=False)


def offline_settings(seed: int, dataset: str, data_weight: float = 1.0) -> dict[str, Any]:
    """The settings an offline run's final checkpoint holds, as a continued run's
    summary.json links them."""
    return {"seed": seed, "dataset": dataset, "data_weight": data_weight,
            "w2_weights": [0.0, 0.1], "num_steps": 10000, "env_name": "Hopper-v5"}


def test_the_finetune_report_measures_the_switch_the_dip_the_end_and_the_area(tmp_path, capsys):
    # seed → (online steps, actor 0's online scores, scratch steps, scratch scores): the
    # seeds evaluate at different steps, as online runs evaluating every 10 episodes do
    online = {0: ([0, 1000, 2000, 4000], [20, 5, 15, 30], [0, 1000, 4000], [0, 0, 40]),
              1: ([0, 1500, 2000, 4000], [20, 7, 17, 32], [0, 2000, 4000], [0, 20, 40])}
    for seed, (steps, values, scratch_steps, scratch_values) in online.items():
        offline = f"POSAC_posac-hopper-medium-replay-v1_s{seed}_w0.0-0.1_data1"
        write_sac_run(tmp_path, offline, seed, {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                      dataset="posac/hopper/medium-replay-v1")
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}_from", seed,
                      {0: values, 1: [22] * 4}, steps, init_from=f"results/{offline}")
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}", seed,
                      {0: scratch_values, 1: [0] * 3}, scratch_steps)
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}_mix", seed,
                      {0: [v + 5 for v in scratch_values], 1: [0] * 3}, scratch_steps,
                      offline_data="posac/hopper/medium-replay-v1")
    # another setting is its own row, never pooled; an unfinished run is left out, named
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0_w0.5", 0, {0: [0, 90], 1: [0, 90]},
                  [0, 4000], weights=(0.0, 0.5))
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s2", 2, {0: [0, 99], 1: [0, 99]}, [0, 1000],
                  finished=False)
    (tmp_path / "POSAC_Hopper-v5_s0_no_config").mkdir()  # not a run: skipped
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "report")])
    assert "left out 1 unfinished run(s): POSAC_Hopper-v5_s2" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "report" / "finetune_results.csv")
    first = table[(table.method == "offline → online") & (table.actor == 0)].iloc[0]
    # by hand: offline end 20 (both seeds); dips −15 and −13; ends 30 and 32; areas over
    # [0, 4000]: (1000·12.5 + 1000·10 + 2000·22.5)/4000 = 16.875 and
    # (1500·13.5 + 500·12 + 2000·24.5)/4000 = 18.8125. With two seeds the bootstrap's
    # resampled means are a, (a + b)/2 and b, so its 95% interval is [min, max]
    assert (first["offline_mean"], first["switch_mean"]) == pytest.approx((20.0, 20.0))
    assert (first["dip_mean"], first["dip_ci_low"], first["dip_ci_high"]) == pytest.approx(
        (-14.0, -15.0, -13.0))
    assert (first["end_mean"], first["end_ci_low"], first["end_ci_high"]) == pytest.approx(
        (31.0, 30.0, 32.0))
    assert (first["auc_mean"], first["auc_ci_low"], first["auc_ci_high"]) == pytest.approx(
        ((16.875 + 18.8125) / 2, 16.875, 18.8125))
    flat = table[(table.method == "offline → online") & (table.actor == 1)].iloc[0]
    assert flat["dip_mean"] == 0.0 and flat["offline_mean"] == pytest.approx(22.0)
    scratch = table[(table.method == "scratch") & (table.actor == 0)]
    assert scratch["setting"].tolist() == ["w [0.0, 0.1], 4000 steps",
                                           "w [0.0, 0.5], 4000 steps"]
    assert scratch["seeds"].tolist() == [2, 1]
    assert scratch["end_mean"].tolist() == pytest.approx([40.0, 90.0])
    # the same span [0, 4000] as the offline → online runs: (3000·20)/4000 and
    # (2000·10 + 2000·30)/4000
    assert (scratch.iloc[0]["auc_mean"], scratch.iloc[0]["auc_ci_low"],
            scratch.iloc[0]["auc_ci_high"]) == pytest.approx((17.5, 15.0, 20.0))
    assert np.isnan(scratch.iloc[0]["switch_mean"])
    text = (tmp_path / "report" / "finetune_results.md").read_text()
    with_data = table[(table.method == "scratch + data") & (table.actor == 0)].iloc[0]
    assert with_data["setting"] == ("w [0.0, 0.1], 4000 steps, data share 0.5 of "
                                    "posac/hopper/medium-replay-v1")
    assert (with_data["seeds"], with_data["end_mean"]) == (2, pytest.approx(45.0))
    # the offline run's setting is part of the online run's
    assert ("| Hopper-v5 | offline → online | w [0.0, 0.1], 4000 steps, after offline "
            "w [0.0, 0.1], 10000 steps, posac/hopper/medium-replay-v1, data weight 1 | 0 "
            "| 2 | 4000 | 20.0" in text)
    curves = pd.read_csv(tmp_path / "report" / "curves_Hopper-v5.csv")
    line = curves[(curves.phase == "online") & (curves.actor == 0)
                  & (curves.method == "offline → online")]
    # the seeds interpolated onto their common steps, then averaged, after the offline phase:
    # at 1000 seed 1 is 20 + (7 − 20)·1000/1500; at 1500 seed 0 is 10
    assert line["x"].tolist() == [10000, 11000, 11500, 12000, 14000]
    assert line["mean"].tolist() == pytest.approx(
        [20.0, (5 + 20 - 13 * 1000 / 1500) / 2, (10 + 7) / 2, 16.0, 31.0])
    offline_line = curves[(curves.phase == "offline") & (curves.actor == 1)]
    assert offline_line["x"].tolist() == [5000, 10000] and offline_line["mean"].tolist() == [
        pytest.approx(12.0), pytest.approx(22.0)]
    assert (tmp_path / "report" / "curves_Hopper-v5.png").stat().st_size > 0


def test_the_switch_table_holds_each_quantity_at_the_offline_end_and_online_start_and_end(
        tmp_path):
    """Two seeds: each quantity at the offline run's last row, the online run's first row
    after step 0 (the step-0 row has no update metrics) and its last; with two seeds the
    bootstrap interval is [min, max]. Actor 0's w2 (the data term offline) is not shown."""
    nan = float("nan")
    for seed, shift in ((0, 0.0), (1, 0.2)):
        offline = f"POSAC_posac-hopper-medium-replay-v1_s{seed}"
        write_sac_run(tmp_path, offline, seed, {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                      dataset="posac/hopper/medium-replay-v1",
                      metrics={"alpha": [0.2, 0.2], "w2_0": [-3.0, -4.0],
                               "w2_1": [0.5, 0.4 + shift], "entropy_0": [-2.0, -3.0 - shift],
                               "entropy_1": [-2.5, -3.5]})
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}_from", seed,
                      {0: [20, 25, 30], 1: [22, 27, 32]}, [0, 1000 + 500 * seed, 4000],
                      init_from=f"results/{offline}",
                      metrics={"alpha": [nan, 0.3 + shift, 0.25], "w2_0": [nan, 0.0, 0.0],
                               "w2_1": [nan, 0.6, 0.3 - shift],
                               "entropy_0": [nan, -6.0, -5.0], "entropy_1": [nan, -7.0, -5.5]})
    # a run from scratch has no switch: no rows of its own
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0", 0, {0: [0, 40], 1: [0, 1]}, [0, 4000],
                  metrics={"alpha": [nan, 0.1]})
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "switch.csv")
    assert table["quantity"].tolist() == ["α", "entropy", "W2² to actor i−1", "entropy"]
    assert table["actor"].isna().tolist() == [True, False, False, False]
    expected = {  # quantity row → (offline end, online start, online end) per seed
        0: ((0.2, 0.3, 0.25), (0.2, 0.5, 0.25)),
        1: ((-3.0, -6.0, -5.0), (-3.2, -6.0, -5.0)),
        2: ((0.4, 0.6, 0.3), (0.6, 0.6, 0.1)),
        3: ((-3.5, -7.0, -5.5), (-3.5, -7.0, -5.5))}
    for index, (one, other) in expected.items():
        row = table.iloc[index]
        for point, a, b in zip(("offline_end", "online_start", "online_end"), one, other):
            assert (row[f"{point}_mean"], row[f"{point}_ci_low"], row[f"{point}_ci_high"]) \
                == pytest.approx(((a + b) / 2, min(a, b), max(a, b))), (index, point)
    assert table["online_start_step"].tolist() == [1500] * 4  # the later of 1000 and 1500
    text = (tmp_path / "out" / "switch.md").read_text()
    assert ("| 1 | W2² to actor i−1 | 2 | 0.5 [0.4, 0.6] | 0.6 [0.6, 0.6] (1500) "
            "| 0.2 [0.1, 0.3] |") in text


def test_the_curve_figures_right_panel_is_the_online_curves_first_fifth():
    """Left: every line at x (offline steps, then offset environment steps); right: only
    the online lines, at their own environment steps up to a fifth of the last one."""
    def line(phase: str, method: str, steps: list[int], offset: int) -> pd.DataFrame:
        return pd.DataFrame({"x": [step + offset for step in steps], "phase": phase,
                             "method": method, "setting": "w [0.0, 0.1]", "actor": 0,
                             "step": steps, "mean": [float(k) for k in range(len(steps))],
                             "ci_low": np.nan, "ci_high": np.nan})
    curves = pd.concat([line("offline", "offline", [5000, 10000], 0),
                        line("online", "offline → online", [0, 1000, 2000, 5000, 10000], 10000),
                        line("online", "scratch", [0, 2000, 10000], 10000)])
    figure = finetune.curve_figure(curves, [10000], "Hopper-v5")
    left, right = figure.axes
    assert [list(drawn.get_xdata()) for drawn in left.get_lines()[:3]] == [
        [5000, 10000], [10000, 11000, 12000, 15000, 20000], [10000, 12000, 20000]]
    assert [list(drawn.get_xdata()) for drawn in right.get_lines()] == [[0, 1000, 2000],
                                                                       [0, 2000]]
    assert right.get_title() == "online, the first 2k steps"
    # only offline runs so far (their online runs queued): one panel
    assert len(finetune.curve_figure(curves[curves.phase == "offline"], [], "Hopper-v5").axes) == 1


def test_the_curve_figure_marks_each_local_datasets_behaviour_score(tmp_path, monkeypatch):
    """The datasets a run learns from (offline, or with --offline-data) whose make_dataset.py
    metadata is stored locally give a dashed line at their score on both panels; a dataset
    not stored here gives none."""
    minari = tmp_path / "minari"
    data = minari / "posac" / "hopper" / "medium-replay-v1" / "data"
    data.mkdir(parents=True)
    (data / "metadata.json").write_text(json.dumps(
        {"make_dataset": {"summary": {"normalized_score": 5.5}}}))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    results = tmp_path / "results"
    write_sac_run(results, "offline", 0, {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                  dataset="posac/hopper/medium-replay-v1")
    write_sac_run(results, "mix", 0, {0: [0, 30], 1: [0, 30]}, [0, 4000],
                  offline_data="posac/hopper/medium-v1")  # not stored here
    finetune.main(["--results-dir", str(results), "--out-dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "curves_Hopper-v5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = finetune.find_runs(results)
    assert finetune.behaviour_scores(runs, "Hopper-v5") == {
        "posac/hopper/medium-replay-v1": 5.5}
    curves, offsets = finetune.curve_frame(runs, finetune.read_frames(runs), "Hopper-v5")
    figure = finetune.curve_figure(curves, offsets, "Hopper-v5",
                                   finetune.behaviour_scores(runs, "Hopper-v5"))
    for panel in figure.axes:
        dashed = [line for line in panel.get_lines() if line.get_linestyle() == "--"]
        assert [list(line.get_ydata()) for line in dashed] == [[5.5, 5.5]]
    assert "behaviour policy of posac/hopper/medium-replay-v1 (5.5)" in [
        text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_a_curve_label_names_the_setting_only_where_its_method_has_several():
    """Methods differ in their settings by nature (a data share, an offline run): that alone
    must not lengthen every label; two settings of one method must be told apart."""
    def line(method: str, setting: str) -> pd.DataFrame:
        return pd.DataFrame({"x": [0, 1000], "phase": "online", "method": method,
                             "setting": setting, "actor": 0, "step": [0, 1000],
                             "mean": [0.0, 1.0], "ci_low": np.nan, "ci_high": np.nan})
    curves = pd.concat([line("offline → online", "w [0.0, 0.1], data share 0.5"),
                        line("scratch", "w [0.0, 0.1]")])

    def labels(figure: Any) -> list[str]:
        return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]

    assert labels(finetune.curve_figure(curves, [0], "Hopper-v5")) == [
        "offline → online, actor 0", "scratch, actor 0"]
    curves = pd.concat([curves, line("scratch", "w [0.0, 0.2]")])
    assert labels(finetune.curve_figure(curves, [0], "Hopper-v5")) == [
        "offline → online, actor 0", "scratch, actor 0 (w [0.0, 0.1])",
        "scratch, actor 0 (w [0.0, 0.2])"]


def test_the_finetune_report_keeps_runs_from_unlike_offline_runs_apart(tmp_path):
    """Online runs of one seed from offline runs of two data weights and budgets: two rows of
    one seed each, each group's online curve after its own offline run's last step."""
    for weight, steps in ((1.0, [5000, 10000]), (3.0, [5000, 20000])):
        offline = f"POSAC_posac-hopper-medium-replay-v1_s0_w0.0-0.1_data{weight:g}"
        write_sac_run(tmp_path, offline, 0, {0: [10, 20], 1: [12, 22]}, steps,
                      dataset="posac/hopper/medium-replay-v1", data_weight=weight)
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s0_from_data{weight:g}", 0,
                      {0: [20, 30], 1: [22, 32]}, [0, 4000], init_from=f"results/{offline}")
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "report")])
    table = pd.read_csv(tmp_path / "report" / "finetune_results.csv")
    assert table[table.actor == 0]["setting"].tolist() == [
        "w [0.0, 0.1], 4000 steps, after offline w [0.0, 0.1], 10000 steps, "
        "posac/hopper/medium-replay-v1, data weight 1",
        "w [0.0, 0.1], 4000 steps, after offline w [0.0, 0.1], 20000 steps, "
        "posac/hopper/medium-replay-v1, data weight 3"]
    assert table["seeds"].tolist() == [1, 1, 1, 1]
    curves = pd.read_csv(tmp_path / "report" / "curves_Hopper-v5.csv")
    online = curves[(curves.phase == "online") & (curves.actor == 0)]
    assert online["x"].tolist() == [10000, 14000, 20000, 24000]


@pytest.mark.parametrize("case", ["other alpha", "same seed"])
def test_the_finetune_report_refuses_to_pool_unlike_runs_as_seeds(case, tmp_path, capsys):
    """Runs whose setting labels agree but whose flags differ (or that share a seed) are
    not seeds of one setting: one error line names both and the difference. The two that
    clash are the group's 2nd and 3rd runs (seeds 1, 2 and a rerun of seed 2)."""
    for seed in (1, 2):
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}", seed, {0: [0, 40], 1: [0, 1]},
                      [0, 4000], alpha=0.2)
    seed, alpha = (3, 0.05) if case == "other alpha" else (2, 0.2)
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s2_again", seed, {0: [0, 40], 1: [0, 1]},
                  [0, 4000], alpha=alpha, run_name="again", results_dir="elsewhere")
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    one, what = (("POSAC_Hopper-v5_s1", "differ in alpha") if case == "other alpha"
                 else ("POSAC_Hopper-v5_s2", "share seed 2"))
    assert len(err) == 1 and err[0].startswith(
        f"reports.finetune: error: {one} and POSAC_Hopper-v5_s2_again would be "
        "pooled as seeds of Hopper-v5, scratch, w [0.0, 0.1], 4000 steps, but they "
        f"{what}; move one"), err
    assert not (tmp_path / "out").exists()


def test_switch_and_dip_need_only_the_online_run(tmp_path):
    """An online run whose offline run is not in the results folder still has its switch
    (its step-0 score) and its dip; only the offline column is unknown."""
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0_from", 0, {0: [20, 5, 30], 1: [22, 22, 22]},
                  [0, 1000, 2000], init_from="elsewhere/POSAC_posac-hopper-medium-replay-v1_s0")
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    row = pd.read_csv(tmp_path / "out" / "finetune_results.csv").iloc[0]
    assert row["setting"].endswith("(not in the results folder)")
    assert (row["switch_mean"], row["dip_mean"], row["end_mean"]) == pytest.approx(
        (20.0, -15.0, 30.0))
    assert np.isnan(row["offline_mean"])


@pytest.mark.parametrize("link", [True, False])
def test_continued_runs_pool_as_seeds_without_their_offline_runs(link, tmp_path):
    """Continued runs reported without their offline runs are still seeds of one setting:
    the offline setting their summary.json links (or, from code older than the link, their
    offline run's name with its seed left out), one row of 3 seeds per actor."""
    dataset = "posac/hopper/medium-replay-v1"
    for seed in (0, 1, 2):
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}_from", seed,
                      {0: [20, 30 + seed], 1: [22, 32]}, [0, 4000],
                      init_from=f"elsewhere/POSAC_posac-hopper-medium-replay-v1_s{seed}_data1",
                      loaded=offline_settings(seed, dataset) if link else None)
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "finetune_results.csv")
    assert table["seeds"].tolist() == [3, 3]
    assert table.loc[0, "end_mean"] == pytest.approx(31.0)
    assert table.loc[0, "setting"] == "w [0.0, 0.1], 4000 steps, " + (
        f"after offline w [0.0, 0.1], 10000 steps, {dataset}, data weight 1" if link else
        "after POSAC_posac-hopper-medium-replay-v1_s*_data1 (not in the results folder)")


def test_runs_on_two_datasets_of_one_environment_are_other_rows(tmp_path):
    """Offline runs on two datasets of one environment, with one seed, and their continued
    runs: four rows, none pooled and no error."""
    for dataset in ("posac/hopper/medium-v0", "posac/hopper/medium-replay-v1"):
        offline = f"POSAC_{dataset.replace('/', '-')}_s0_data1"
        write_sac_run(tmp_path, offline, 0, {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                      dataset=dataset)
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s0_from-{dataset.replace('/', '-')}", 0,
                      {0: [20, 30], 1: [22, 32]}, [0, 4000], init_from=f"results/{offline}",
                      offline_data=dataset)
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "finetune_results.csv")
    assert table[table.actor == 0]["setting"].tolist() == [
        "w [0.0, 0.1], 4000 steps, data share 0.5 of posac/hopper/medium-replay-v1, after "
        "offline w [0.0, 0.1], 10000 steps, posac/hopper/medium-replay-v1, data weight 1",
        "w [0.0, 0.1], 4000 steps, data share 0.5 of posac/hopper/medium-v0, after "
        "offline w [0.0, 0.1], 10000 steps, posac/hopper/medium-v0, data weight 1"]
    assert table["offline_mean"].tolist() == pytest.approx([20, 22, 20, 22])


def test_a_switch_that_is_not_the_offline_runs_last_evaluation_is_a_warning(tmp_path, capsys):
    """A continued run's step 0 must repeat its offline run's last evaluation; one that does
    not (the offline run made again under its name since) is named on one warning line, and
    a matching one is not."""
    for seed, switch in ((0, 20.0), (1, 20.5)):
        offline = f"POSAC_posac-hopper-medium-replay-v1_s{seed}"
        write_sac_run(tmp_path, offline, seed, {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                      dataset="posac/hopper/medium-replay-v1", metrics={"alpha": [0.2, 0.2]})
        write_sac_run(tmp_path, f"POSAC_Hopper-v5_s{seed}_from", seed,
                      {0: [switch, 30], 1: [22, 32]}, [0, 4000], init_from=f"results/{offline}",
                      metrics={"alpha": [float("nan"), 0.3 + 0.1 * seed]})
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "reports.finetune: warning: POSAC_Hopper-v5_s1_from's evaluation at step 0 differs "
        "from POSAC_posac-hopper-medium-replay-v1_s1's last one"), err
    # its offline score is not its switch's: left out of the offline columns (the row's
    # mean is then unknown), while its switch counts
    row = pd.read_csv(tmp_path / "out" / "finetune_results.csv").iloc[0]
    assert np.isnan(row["offline_mean"]) and row["switch_mean"] == pytest.approx(20.25)
    # and so in the switch table: its offline end is unknown, its online points count
    alpha = pd.read_csv(tmp_path / "out" / "switch.csv").iloc[0]
    assert alpha["quantity"] == "α" and alpha["seeds"] == 2
    assert np.isnan(alpha["offline_end_mean"])
    assert alpha["online_end_mean"] == pytest.approx(0.35)


@pytest.mark.parametrize("case", ["other seed", "other seed, offline run elsewhere",
                                  "one offline run twice"])
def test_the_finetune_report_refuses_online_runs_not_paired_with_their_offline_run(
        case, tmp_path, capsys):
    """Each continued run starts from its own offline run, with that run's seed: else its
    switch is not the offline run's last evaluation, or one offline run's continuations
    would be pooled as independent seeds. With the offline run elsewhere, its seed is the
    one the continued run's summary.json records."""
    for seed in (0, 1):
        if case != "other seed, offline run elsewhere":
            write_sac_run(tmp_path, f"POSAC_posac-hopper-medium-replay-v1_s{seed}", seed,
                          {0: [10, 20], 1: [12, 22]}, [5000, 10000],
                          dataset="posac/hopper/medium-replay-v1")
    pairs = {"one offline run twice": [(0, 0), (1, 0)]}.get(case, [(0, 0), (2, 1)])
    for seed, offline_seed in pairs:
        name = f"POSAC_Hopper-v5_s{seed}_from"
        write_sac_run(tmp_path, name, seed, {0: [20, 30], 1: [22, 32]},
                      [0, 4000], init_from=f"results/POSAC_posac-hopper-medium-replay-v1_s"
                                           f"{offline_seed}",
                      loaded=offline_settings(offline_seed, "posac/hopper/medium-replay-v1"))
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    fragment = {"one offline run twice": "both start from POSAC_posac-hopper-medium-replay-v1_s0"
                }.get(case, "POSAC_Hopper-v5_s2_from (seed 2) starts from "
                            "POSAC_posac-hopper-medium-replay-v1_s1 (seed 1); continue each")
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["unreadable", "link without settings"])
def test_a_continued_runs_unreadable_summary_is_one_line(case, tmp_path, capsys):
    """Its summary.json holds the settings of the offline run it loaded: unreadable, or
    without them, it is named, not taken as a run without that link."""
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0_from", 0, {0: [20, 30]}, [0, 4000],
                  init_from="results/POSAC_posac-hopper-medium-replay-v1_s0")
    summary = tmp_path / "POSAC_Hopper-v5_s0_from" / "summary.json"
    summary.write_text('{"steps": 40' if case == "unreadable" else
                       '{"steps": 4000, "init_from": {"settings": {"seed": 0}}}')
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (f"{summary} unreadable" if case == "unreadable" else
                              f"{summary}'s init_from needs the offline run's settings") in err[0]
    assert not (tmp_path / "out").exists()


def test_a_flag_an_older_run_lacks_counts_at_its_default(tmp_path, capsys):
    """A config.json from before a flag existed pools with runs that give the flag its
    default, and not with runs that give it another value."""
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0", 0, {0: [0, 40], 1: [0, 1]}, [0, 4000])
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s1", 1, {0: [0, 40], 1: [0, 1]}, [0, 4000],
                  target_update_interval=1)  # train_sac.py's default
    finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert pd.read_csv(tmp_path / "out" / "finetune_results.csv")["seeds"].tolist() == [2, 2]
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s2", 2, {0: [0, 40], 1: [0, 1]}, [0, 4000],
                  target_update_interval=2)
    with pytest.raises(SystemExit):
        finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out2")])
    assert "differ in target_update_interval" in capsys.readouterr().err


def test_the_finetune_report_on_an_unreadable_config_is_one_line(tmp_path, capsys):
    write_sac_run(tmp_path, "POSAC_Hopper-v5_s0", 0, {0: [0, 40]}, [0, 4000])
    (tmp_path / "POSAC_Hopper-v5_s1").mkdir()
    (tmp_path / "POSAC_Hopper-v5_s1" / "config.json").write_text('{"env_name": "Hop')
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--results-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "POSAC_Hopper-v5_s1/config.json unreadable" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_finetune_report_without_online_runs_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--results-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "holds no finished online train_sac.py run" in capsys.readouterr().err


def test_the_finetune_report_on_a_config_without_a_setting_it_reads_is_one_line(tmp_path,
                                                                                 capsys):
    for seed, change in enumerate([{"env_name": None}, {"w2_weights": "abc"}]):
        root = tmp_path / str(seed)
        write_sac_run(root, "POSAC_Hopper-v5_s0", 0, {0: [0, 40], 1: [0, 1]}, [0, 4000])
        config = root / "POSAC_Hopper-v5_s0" / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), **change}))
        with pytest.raises(SystemExit) as exit_info:
            finetune.main(["--results-dir", str(root), "--out-dir", str(root / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(
            f"reports.finetune: error: {config} needs a valid env_name, seed, w2_weights"), err
        assert err[0].endswith("restore it or move its run folder out of the results folder")
        assert not (root / "out").exists()


# ------------------------------------------------------------------ unusable metrics CSVs
def damage_metrics(path: Path, how: str, column: str) -> str:
    """Damage a metrics CSV `how`; returns what the warning must say about it."""
    if how == "empty":
        path.write_text("")
        return "cannot be read as a CSV (No columns to parse from file)"
    if how == "missing":
        path.unlink()
        return "is missing, though its run finished"
    if how == "header only":
        path.write_text(path.read_text().splitlines()[0] + "\n")
        return "holds no evaluation, though its run finished"
    frame = pd.read_csv(path)
    if how == "column absent":
        frame.drop(columns=column).to_csv(path, index=False)
        return f"has no column {column}"
    if how == "not a number":
        frame[column] = frame[column].astype(object)
        frame.loc[1, column] = "abc"
        frame.to_csv(path, index=False)
        return f"has 'abc' in column {column} at evaluation 2, where a number belongs"
    assert how == "cut row"  # the last row cut after its step
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]) + "100\n")
    return "has an empty cell in column"


# report → a function that writes two finished seeds of one group into a folder and returns
# the program, the second seed's metrics CSV, the column to damage there, and a function
# that makes the report into a folder and returns the group's number of seeds
def offline_runs(root: Path) -> tuple[str, Path, str, Any]:
    for seed in (0, 1):
        folder = write_run(root, HOPPER, False, [1.0, 1.0], seed, [20, 100],
                           [[5.0, 25.0], [6.0, 26.0]], 10.0, True)

    def seeds(out: Path) -> int:
        offline_report.main(["--results-dir", str(root), "--out-dir", str(out),
                             "--bootstrap-reps", REPS])
        return int(pd.read_csv(out / "offline_results.csv")["seeds"].iloc[0])

    metrics = folder / "training" / f"{folder.name}_metrics.csv"
    return "reports.offline", metrics, "actor_1_deterministic_score", seeds


def finetune_runs(root: Path) -> tuple[str, Path, str, Any]:
    for seed in (0, 1):
        write_sac_run(root, f"POSAC_Hopper-v5_s{seed}", seed, {0: [0, 40], 1: [0, 1]},
                      [0, 100])

    def seeds(out: Path) -> int:
        finetune.main(["--results-dir", str(root), "--out-dir", str(out)])
        return int(pd.read_csv(out / "finetune_results.csv")["seeds"].iloc[0])

    metrics = root / "POSAC_Hopper-v5_s1" / "training" / "POSAC_Hopper-v5_s1_metrics.csv"
    return "reports.finetune", metrics, "actor_0_deterministic", seeds


def summarize_runs(root: Path) -> tuple[str, Path, str, Any]:
    """run_sac.py --summarize's tables (reports.curves.write_summary) of a sweep's runs."""
    from reports.curves import RunRecord, write_summary

    records = []
    for seed in (0, 1):
        name = f"POSAC_Hopper-v5_s{seed}_w0.0-0.1"
        path = root / name / "training" / f"{name}_metrics.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame({"step": [50, 100], "actor_0_deterministic": [1.0, 2.0],
                      "actor_1_deterministic": [3.0, 4.0]}).to_csv(path, index=False)
        records.append(RunRecord("Hopper-v5", (0.0, 0.1), seed, path, finished=True))

    def seeds(out: Path) -> int:
        write_summary(records, out)
        return int(pd.read_csv(out / "summary.csv")["seeds"].iloc[0])

    return "run_sac.py", records[1].metrics_csv, "actor_0_deterministic", seeds


REPORTS = {"offline": offline_runs, "finetune": finetune_runs, "summarize": summarize_runs}
DAMAGE = ["empty", "missing", "header only", "column absent", "not a number", "cut row"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("report", list(REPORTS))
def test_an_unusable_metrics_csv_is_a_warning_naming_the_run_left_out(report, how, tmp_path,
                                                                       capsys):
    """Each report reads metrics through reports.curves.read_metrics: a finished run's
    damaged CSV leaves that run out with one warning line (what is wrong and the fix), and
    the report is made from the others; never a traceback, never a silent drop."""
    program, metrics, column, seeds = REPORTS[report](tmp_path / "results")
    problem = damage_metrics(metrics, how, column)
    assert seeds(tmp_path / "out") == 1
    err = capsys.readouterr().err.splitlines()
    run = metrics.parent.parent.name
    assert len(err) == 1 and err[0].startswith(f"{program}: warning: {metrics} {problem}"), err
    assert err[0].endswith(f"; {run} is left out (restore the file from a copy, or delete "
                           f"the run's results and checkpoints to train it again)"), err


def test_a_cell_rounding_to_zero_reads_0_not_minus_0():
    assert with_ci(-0.04, -0.04, 0.0) == "0.0 [0.0, 0.0]"
    assert with_ci(-0.06, math.nan, math.nan) == "-0.1"
