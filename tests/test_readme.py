"""The README's commands stay true as the flags and run names change: each `python SCRIPT …`
command in its code blocks parses and passes the script's own flag checks, and every run
folder, final checkpoint and dataset a command reads is one that an earlier README command
writes, under the name the scripts compute for it (run_paths, --dataset-id). The docs' and
the reference runs' pages: their commands, the benchmarks' included, parse and pass the
checks. Nothing runs: the commands' work is covered by the scripts' own tests."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO_ROOT

README = Path(REPO_ROOT) / "README.md"
SCRIPTS = {"train_sac.py": "train_sac", "train_pogo.py": "train_pogo",
           "make_dataset.py": "make_dataset", "evaluate.py": "evaluate",
           "run_sac.py": "run_sac", "reports.finetune": "reports.finetune",
           "reports.offline": "reports.offline",
           **{f"benchmarks/{path.name}": f"benchmarks.{path.stem}"
              for path in (Path(REPO_ROOT) / "benchmarks").glob("*.py")
              if "def build_parser(" in path.read_text()}}
ENV_ASSIGNMENT = re.compile(r"^[A-Z_]+=")
PYTHON_COMMAND = re.compile(r"^([A-Z_]+=\S+\s+)*(\S*/)?python3?\s")


def code_block_lines(text: str) -> list[str]:
    """Every line inside a page's code blocks (fenced or indented), a backslash-continued
    command as one line, console lines without their "$ "."""
    lines, fenced, continued = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    ") or continued:
            continued += line.strip().removeprefix("$ ") + " "
            if continued.endswith("\\ "):
                continued = continued[:-2]
            else:
                lines.append(continued.strip())
                continued = ""
    return lines


def page_commands(page: Path = README) -> list[tuple[dict[str, str], str, list[str]]]:
    """(environment assignments, script, arguments) of each command of the page that runs a
    project script, in the page's order; of a chain, the part after its last &&."""
    commands = []
    for line in code_block_lines(page.read_text()):
        last = line.split("&&")[-1].strip()
        if not PYTHON_COMMAND.match(last):
            continue
        words = shlex.split(last, comments=True)
        env = {}
        while words and ENV_ASSIGNMENT.match(words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        if len(words) < 2 or not Path(words[0]).name.startswith("python"):
            continue
        path = Path(words[1])
        script = (words[2] if words[1] == "-m" else f"benchmarks/{path.name}"
                  if path.parent.name == "benchmarks" else path.name)
        if script in SCRIPTS:
            commands.append((env, script, words[3 if words[1] == "-m" else 2:]))
    return commands


def test_the_readme_has_the_commands_this_test_reads():
    """The test cannot pass by finding nothing: the quick starts and the offline-to-online
    pair are there."""
    scripts = [script for _, script, _ in page_commands()]
    for script, count in (("train_sac.py", 5), ("train_pogo.py", 1), ("make_dataset.py", 2),
                          ("evaluate.py", 2), ("run_sac.py", 2)):
        assert scripts.count(script) >= count, (script, scripts)


def test_every_readme_command_parses_and_names_what_earlier_ones_write(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "readme-test")  # `wandb login` comes first there
    monkeypatch.chdir(tmp_path)
    runs: set[str] = set()  # results/{file_name}
    checkpoints: set[str] = set()  # checkpoints/{group}/{file_name}_final.pt
    datasets: set[str] = set()  # --dataset-id
    for env, script, argv in page_commands():
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        module = importlib.import_module(SCRIPTS[script])
        command = f"{script} {shlex.join(argv)}"
        try:
            args = module.build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"README: {command}: the flags do not parse")
        if hasattr(module, "validate_args"):
            module.validate_args(args)
        for flag in ("dataset", "offline_data"):
            if script.startswith("train_") and getattr(args, flag, None) is not None:
                assert getattr(args, flag) in datasets, f"README: {command}: no command made it"
        if script == "make_dataset.py":
            datasets.add(args.dataset_id)
        read = [word for word in argv if word.startswith(("results/", "checkpoints/"))]
        for path in read:
            if path.startswith("results/"):
                assert "/".join(path.split("/")[:2]) in runs, f"README: {command}: {path}"
            else:
                assert path in checkpoints, f"README: {command}: {path}"
        if hasattr(module, "run_paths"):
            paths = module.run_paths(args)
            runs.add(str(paths.results))
            checkpoints.add(str(paths.final_checkpoint))
    for line in code_block_lines(README.read_text()):  # other tools' paths (wandb sync)
        for word in line.split("#")[0].split():
            if word.startswith("results/"):
                assert "/".join(word.split("/")[:2]) in runs, f"README: {line}"


PAGES = sorted(str(path.relative_to(REPO_ROOT)) for pattern in ("docs/*.md",
                                                                  "results_reference/*/README.md")
               for path in Path(REPO_ROOT).glob(pattern))


@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_other_pages_parses(page, monkeypatch, tmp_path):
    """The docs' and the reference runs' commands: their flags parse and pass the scripts'
    checks (the files they name are the reference runs', not made here)."""
    monkeypatch.setenv("WANDB_API_KEY", "readme-test")
    monkeypatch.chdir(tmp_path)
    for env, script, argv in page_commands(Path(REPO_ROOT) / page):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        module = importlib.import_module(SCRIPTS[script])
        try:
            args = module.build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: {script} {shlex.join(argv)}: the flags do not parse")
        if hasattr(module, "validate_args"):
            module.validate_args(args)
