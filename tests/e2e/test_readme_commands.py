"""The README's command-line walk-through, run line by line as a user would type it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.e2e.conftest import (
    FAST,
    JITPAM,
    Server,
    shell,
)

README = Path(__file__).resolve().parents[2] / "README.md"
# The exit code each command of the walk-through is documented to end with, in order.
EXPECTED = [0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]


def walkthrough() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The seeds' workflow from the command line") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README has the walk-through"
    joined = block.group(1).replace("\\\n", " ")
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_the_readme_commands_run_as_written(demo_server: Server, tmp_path: Path) -> None:
    lines = walkthrough()
    assert lines[0].startswith("export ")
    env = {
        **os.environ,
        **FAST,
        "JITPAM_URL": demo_server.url,
        "JITPAM_CONFIG_DIR": str(tmp_path),
        "PATH": f"{Path(JITPAM).parent}:{os.environ['PATH']}",
    }
    env.pop("JITPAM_TOKEN", None)
    ids: dict[str, str] = {}
    commands = lines[1:]
    assert len(commands) == len(EXPECTED)
    for command, expected in zip(commands, EXPECTED, strict=True):
        for name, value in ids.items():
            command = command.replace(name, value)
        done = shell(command, env)
        assert done.returncode == expected, f"{command}\n{done.stdout}\n{done.stderr}"
        for kind, name in (("--task", "REQUEST_ID"), ("--role", "AUTHORIZATION_ID")):
            if f"request new {kind}" in command:
                field = "id" if name == "REQUEST_ID" else "authorization_id"
                found = re.search(rf"^{field}\s+(\S+)", done.stdout, flags=re.M)
                assert found, done.stdout
                ids[name] = found.group(1)
