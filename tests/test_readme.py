"""The README's commands as a user pastes them: every `python SCRIPT.py ...` and `python -m MODULE
SUBCOMMAND ...` in it (the project's own modules: benchmarks.speed, benchmarks.quality) names one of
the project's scripts or modules and only flags it accepts (its --help is the truth), so a flag renamed
in a script and not in the README fails here. The commands that run in minutes run for real in the
other test files (the demo training, inference, pages, the web page, benchmarks.speed pipeline)."""
import functools
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def readme_commands():
    """[(script or module, subcommand or None, [flags]), ...] from the bash blocks and the inline `python ...`."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    lines += [" ".join(code.split()) for code in re.findall(r"`(python3? [^`]+)`", text)]
    commands = []
    for line in lines:
        for part in re.split(r"&&|;", line.split(" #")[0]):
            words = part.split()
            if len(words) < 2 or words[0] not in ("python", "python3"):
                continue
            if words[1] == "tests/with_cpu_devices.py":  # tests/with_cpu_devices.py N SCRIPT FLAGS...
                words = words[2:]
            if words[1] == "-m" and len(words) > 2 and os.path.isdir(os.path.join(REPO, words[2].split(".")[0])):
                script, rest = words[2], words[3:]  # one of the project's modules (not pytest, venv or pip)
                subcommand = rest[0] if rest and not rest[0].startswith("-") else None
            elif words[1].endswith(".py"):
                script, rest, subcommand = words[1], words[2:], None
            else:
                continue
            commands.append((script, subcommand, [word.split("=")[0] for word in rest if word.startswith("--")]))
    return commands


def source_file(script):
    """train.py -> REPO/train.py; benchmarks.speed -> REPO/benchmarks/speed.py."""
    return os.path.join(REPO, script if script.endswith(".py") else script.replace(".", os.sep) + ".py")


@functools.cache
def accepted_flags(script, subcommand):
    command = [source_file(script)] if script.endswith(".py") else ["-m", script]
    args = [sys.executable, *command, *([subcommand] if subcommand else []), "--help"]
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args[1:])} fails: {result.stderr[-500:]}"
    return set(re.findall(r"--[\w-]+", result.stdout))


def test_the_readme_has_the_commands_this_test_reads():
    scripts = {script for script, _, _ in readme_commands()}
    assert {"train.py", "inferenceModel.py", "app.py", "benchmarks.speed", "benchmarks.quality"} <= scripts


@pytest.mark.parametrize("script,subcommand,flags", sorted(set((s, c, tuple(f)) for s, c, f in readme_commands())))
def test_every_readme_command_names_a_script_and_flags_it_has(script, subcommand, flags):
    assert os.path.isfile(source_file(script)), f"README runs {script}, which does not exist"
    unknown = sorted(set(flags) - accepted_flags(script, subcommand))
    assert not unknown, f"README: python {'' if script.endswith('.py') else '-m '}{script} {subcommand or ''} uses {unknown}, which --help does not list"
