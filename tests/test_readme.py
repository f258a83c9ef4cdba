"""The README's commands as a user pastes them: every `python SCRIPT.py ...` in it names one of the
project's scripts and only flags that script accepts (its --help is the truth), so a flag renamed in
a script and not in the README fails here. The commands that run in minutes run for real in the
other test files (the demo training, inference, pages, the web page, bench.py pipeline)."""
import functools
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def readme_commands():
    """[(script, subcommand or None, [flags]), ...] from the bash blocks and the inline `python ...`."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    lines += [" ".join(code.split()) for code in re.findall(r"`(python3? [^`]+)`", text)]
    commands = []
    for line in lines:
        for part in re.split(r"&&|;", line.split(" #")[0]):
            words = part.split()
            if len(words) < 2 or words[0] not in ("python", "python3") or not words[1].endswith(".py"):
                continue
            if words[1] == "tests/with_cpu_devices.py":  # tests/with_cpu_devices.py N SCRIPT FLAGS...
                words = words[2:]
            script, rest = words[1], words[2:]
            subcommand = rest[0] if script == "bench.py" and rest and not rest[0].startswith("-") else None
            commands.append((script, subcommand, [word.split("=")[0] for word in rest if word.startswith("--")]))
    return commands


@functools.cache
def accepted_flags(script, subcommand):
    args = [sys.executable, os.path.join(REPO, script), *([subcommand] if subcommand else []), "--help"]
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args[1:])} fails: {result.stderr[-500:]}"
    return set(re.findall(r"--[\w-]+", result.stdout))


def test_the_readme_has_the_commands_this_test_reads():
    scripts = {script for script, _, _ in readme_commands()}
    assert {"train.py", "inferenceModel.py", "app.py", "bench.py"} <= scripts


@pytest.mark.parametrize("script,subcommand,flags", sorted(set((s, c, tuple(f)) for s, c, f in readme_commands())))
def test_every_readme_command_names_a_script_and_flags_it_has(script, subcommand, flags):
    assert os.path.isfile(os.path.join(REPO, script)), f"README runs {script}, which does not exist"
    unknown = sorted(set(flags) - accepted_flags(script, subcommand))
    assert not unknown, f"README: python {script} {subcommand or ''} uses {unknown}, which --help does not list"
