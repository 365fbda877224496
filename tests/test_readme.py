"""The README's commands stay true as the flags and run names change: each `python SCRIPT …`
command in its code blocks parses (no abbreviated flag) and passes the script's own flag
checks, and every run folder, checkpoint and dataset a command reads is one that an earlier
README command writes, under the name the scripts compute for it (run_paths, --dataset-id).
The docs' and the reference runs' pages: their commands, the benchmarks' included, parse and
pass the checks. Nothing runs: the commands' work is covered by the scripts' own tests."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
from pathlib import Path
from typing import Any

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
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"(^|[\s;&|])(\S*/)?python3?\s")
SEPARATORS = {"&&", "||", ";", "|", "&"}
WRAPPERS = {"nohup", "setsid", "time", "exec"}  # and nice [-n N]
OUTPUT_FLAGS = {"results_dir", "log_dir", "checkpoint_dir", "out_dir", "summary_dir"}
Command = tuple[dict[str, str], str, list[str]]  # environment, script, arguments


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


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ;, | and &), each without its
    redirections (`> log`, `2>&1`, `< /dev/null`) and comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words, skip = [], [], False
    tokens = list(lexer)
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if skip:
            skip = False
        elif token in SEPARATORS:
            commands.append(words)
            words = []
        elif set(token) <= set("<>&") and token:
            skip = True  # a redirection and its target
        elif not (token.isdigit() and set(following) <= set("<>&") and following):
            words.append(token)
    return [words for words in commands + [words] if words]


def project_command(words: list[str]) -> Command | None:
    """(environment, script, arguments) when the words run a project script with python,
    after any VAR=value assignments and nohup / setsid / nice wrappers."""
    env = {}
    while words and (ENV_ASSIGNMENT.match(words[0]) or words[0] in WRAPPERS
                     or words[0] == "nice"):
        if words[0] == "nice" and words[1:2] == ["-n"]:
            words = words[2:]
        elif ENV_ASSIGNMENT.match(words[0]):
            name, value = words[0].split("=", 1)
            env[name] = value
        words = words[1:]
    if len(words) < 2 or not re.fullmatch(r"python3?", Path(words[0]).name):
        return None
    path = Path(words[1])
    script = (words[2] if words[1] == "-m" and len(words) > 2
              else f"benchmarks/{path.name}" if path.parent.name == "benchmarks" else path.name)
    arguments = words[3:] if words[1] == "-m" else words[2:]
    return (env, script, arguments) if script in SCRIPTS else None


def page_commands(page: Path) -> list[Command]:
    """Every command of the page that runs a project script, in the page's order (of the
    code lines that run python: the others, such as a tree drawn in a block, need not be
    shell)."""
    return [command for line in code_block_lines(page.read_text()) if PYTHON.search(line)
            for words in shell_commands(line)
            if (command := project_command(words)) is not None]


def checked_args(source: str, command: Command, monkeypatch: Any) -> argparse.Namespace:
    """The command's flags parsed by its script's parser (no abbreviations, as a renamed flag
    must not pass as a prefix of its new name) and checked as the script checks them before
    any work; the command's own environment assignments apply only to it."""
    env, script, argv = command
    module = importlib.import_module(SCRIPTS[script])
    parser = module.build_parser()
    parser.allow_abbrev = False
    with monkeypatch.context() as patch:
        for name, value in env.items():
            if name != "MINARI_DATASETS_PATH":  # the test's (in_tmp), where none exists yet
                patch.setenv(name, value)
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{source}: {script} {shlex.join(argv)}: the flags do not parse")
        if hasattr(module, "validate_args"):
            module.validate_args(args)
        if script == "make_dataset.py":  # its checks that need no environment or file
            module.check_source_flags(args)
            module.check_dataset_id(args.dataset_id)
    return args


def read_paths(args: argparse.Namespace) -> list[str]:
    """The run folders and checkpoints a command reads: its values under results/ or
    checkpoints/ (not where it writes: the output flags)."""
    values = [value for key, value in vars(args).items()
              if key not in OUTPUT_FLAGS and isinstance(value, str)]
    return [os.path.normpath(value) for value in values
            if os.path.normpath(value).startswith(("results/", "checkpoints/"))]


def written(path: str, runs: set[str], checkpoints: set[str]) -> bool:
    """Whether an earlier command writes `path`: a file in one of the `runs` folders
    (results/{file_name}/…) or one of the `checkpoints`."""
    if path.startswith("results/"):
        return "/".join(path.split("/")[:2]) in runs
    return path in checkpoints


@pytest.fixture()
def in_tmp(monkeypatch, tmp_path):
    """Relative paths resolve in an empty folder, Minari datasets go to one, and `wandb
    login` (which the README's --track commands follow) is taken as done."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("WANDB_API_KEY", "readme-test")


def test_the_readme_has_the_commands_this_test_reads():
    """The test cannot pass by finding nothing: the quick starts and the offline-to-online
    pair are there."""
    scripts = [script for _, script, _ in page_commands(README)]
    for script, count in (("train_sac.py", 4), ("train_pogo.py", 1), ("make_dataset.py", 2),
                          ("evaluate.py", 1), ("run_sac.py", 2)):
        assert scripts.count(script) >= count, (script, scripts)


def test_shell_lines_are_read_as_the_shell_splits_them():
    line = ("cd x && OMP_NUM_THREADS=1 nohup nice -n 10 python ../train_sac.py --seed 1 "
            "--run-name 'a b' > log 2>&1 < /dev/null & # comment")
    assert shell_commands(line) == [["cd", "x"], [
        "OMP_NUM_THREADS=1", "nohup", "nice", "-n", "10", "python", "../train_sac.py",
        "--seed", "1", "--run-name", "a b"]]
    assert project_command(shell_commands(line)[1]) == (
        {"OMP_NUM_THREADS": "1"}, "train_sac.py", ["--seed", "1", "--run-name", "a b"])
    assert project_command(["python", "-m", "reports.offline", "--out-dir", "o"]) == (
        {}, "reports.offline", ["--out-dir", "o"])
    assert project_command(["python", "benchmarks/bench.py"]) == ({}, "benchmarks/bench.py", [])
    assert project_command(["python", "-m", "pytest", "-q"]) is None


def test_every_readme_command_parses_and_names_what_earlier_ones_write(monkeypatch, in_tmp):
    runs: set[str] = set()  # results/{file_name}
    checkpoints: set[str] = set()  # checkpoints/{group}/{file_name}_final.pt (_replay.pt)
    datasets: set[str] = set()  # --dataset-id
    for command in page_commands(README):
        script, module = command[1], importlib.import_module(SCRIPTS[command[1]])
        args = checked_args("README", command, monkeypatch)
        about = f"README: {script} {shlex.join(command[2])}"
        for flag in ("dataset", "offline_data"):
            if script.startswith("train_") and getattr(args, flag, None) is not None:
                assert getattr(args, flag) in datasets, f"{about}: no command made it"
        for path in read_paths(args):
            assert written(path, runs, checkpoints), f"{about}: nothing writes {path}"
        if script == "make_dataset.py":
            datasets.add(args.dataset_id)
        if hasattr(module, "run_paths"):
            paths = module.run_paths(args)
            runs.add(str(paths.results))
            checkpoints.add(str(paths.final_checkpoint))
            if getattr(args, "save_replay", False):
                checkpoints.add(str(paths.final_checkpoint).replace("_final.pt", "_replay.pt"))
    for line in code_block_lines(README.read_text()):  # other tools' paths (wandb sync)
        for word in line.split("#")[0].split():
            if word.startswith(("results/", "checkpoints/")):
                assert written(word, runs, checkpoints), f"README: nothing writes {word}: {line}"


PAGES = sorted(str(path.relative_to(REPO_ROOT)) for pattern in ("docs/*.md",
                                                                  "results_reference/*/README.md")
               for path in Path(REPO_ROOT).glob(pattern))


def test_the_other_pages_have_the_commands_this_test_reads():
    found = {page: len(page_commands(Path(REPO_ROOT) / page)) for page in PAGES}
    for page in ("docs/sweeps.md", "docs/offline.md", "docs/speed.md", "docs/reliability.md",
                 "docs/evaluate.md", "docs/tracking.md",
                 "results_reference/pogo/README.md", "results_reference/o2o/README.md"):
        assert found[page] > 0, found


@pytest.mark.parametrize("page", PAGES)
def test_every_command_of_the_other_pages_parses(page, monkeypatch, in_tmp):
    """The docs' and the reference runs' commands: their flags parse and pass the scripts'
    checks (the files they read are the reference runs', not made here)."""
    for command in page_commands(Path(REPO_ROOT) / page):
        checked_args(page, command, monkeypatch)
