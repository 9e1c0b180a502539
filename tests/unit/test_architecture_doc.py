"""docs/architecture.md's "Follow one approval" names code that exists: every ``file:name`` it
cites is defined in that file, and every method it names on it (``(its `m`)``, ``'s `m```) too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "jitpam"
CITED = re.compile(r"`([\w/]+\.py):(\w+)`(?: \(its `(\w+)`\)|'s `(\w+)`)?")


def _section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return text.split("\n## Follow one approval\n", 1)[1].split("\n## ", 1)[0]


def _defines(source: str, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async def|def|class) {name}\b|^{name}\s*[:=]", source, re.M))


def test_every_hop_of_the_approval_names_code_that_exists() -> None:
    cited = CITED.findall(_section())
    assert len(cited) >= 30, "the section cites the code it follows"
    missing = []
    for path, name, method, owned in cited:
        file = SRC / path
        source = file.read_text(encoding="utf-8") if file.is_file() else ""
        if not _defines(source, name):
            missing.append(f"{path}:{name}")
        for m in (method, owned):
            if m and not re.search(rf"^\s+(?:async def|def) {m}\b", source, re.M):
                missing.append(f"{path}:{name}.{m}")
    assert not missing, f"named in docs/architecture.md but not in the code: {missing}"


def test_the_operation_named_is_a_member() -> None:
    from jitpam.domain.operations import AuditOperation

    assert AuditOperation.APPROVE_REQUEST.value == "Approve-ElevatedAccessRequest"
    assert "`APPROVE_REQUEST`" in _section()
