"""Task definitions: what an admin writes in a TOML file, and what a user's values become.

An admin notices whether a good file loads as written and whether every mistake of a broken file
is reported at once, each with its file, line and field. A user notices whether their values are
refused with every problem named, and whether a value is ever taken for more than one argument,
header or JSON string (it must not be: no shell, no re-parsing, ever). Output never shows a secret.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitpam.domain.errors import InvalidInput, TaskDefinitionInvalid
from jitpam.domain.names import QualifiedName
from jitpam.domain.task_definitions import (
    CommandExecutor,
    HttpExecutor,
    Parameter,
    ParameterType,
    PythonExecutor,
    RunOutcome,
    TaskDefinition,
    fill_json,
    mask,
    parse_definition,
    render_value,
    substitute,
)

SOURCE = "contoso/move-request.toml"
DEFINITION_DIR = "/srv/jitpam/tasks/contoso"
PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>[^:]+): (?P<message>.*)$", re.S)


def parse(text: str) -> TaskDefinition:
    return parse_definition(text, source=SOURCE, definition_dir=DEFINITION_DIR)


def problems_of(text: str) -> list[str]:
    with pytest.raises(TaskDefinitionInvalid) as caught:
        parse(text)
    assert caught.value.problems, "a refused definition names its problems"
    assert caught.value.message == "; ".join(caught.value.problems)
    return caught.value.problems


def line_of(text: str, snippet: str) -> int:
    """The 1-based line of the one line of ``text`` that contains ``snippet``."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if snippet in line]
    assert len(found) == 1, f"{snippet!r} must be on exactly one line of the test definition"
    return found[0]


def located(problems: list[str]) -> set[tuple[int, str]]:
    """(line, field path) of each problem, after checking each names this file."""
    out = set()
    for problem in problems:
        m = PROBLEM.match(problem)
        assert m, f"not file:line: field: message: {problem!r}"
        assert m["file"] == SOURCE
        out.add((int(m["line"]), m["path"]))
    return out


def assert_reported(problems: list[str], line: int, path: str, phrase: str) -> None:
    prefix = f"{SOURCE}:{line}: {path}: "
    matching = [p for p in problems if p.startswith(prefix)]
    assert matching, f"no problem at {prefix!r} among {problems}"
    assert any(phrase.lower() in p.lower() for p in matching), (
        f"{phrase!r} not in the problems at {prefix!r}: {matching}"
    )


# -- good definitions -------------------------------------------------------------------------

COMMAND_TASK = r"""
task = "Exchange\\New-MoveRequest"
description = "Move a mailbox to another database"
timeout_seconds = 120
concurrency = 2
keep_output = true
output_limit_bytes = 2048

[parameters.Identity]
type = "string"
required = true
description = "The mailbox to move"
pattern = '^[^@\s]+@[^@\s]+$'

[parameters.TargetDatabase]
type = "choice"
choices = ["DB01", "DB02"]

[parameters.BatchSize]
type = "integer"

[parameters.Suspend]
type = "boolean"

[parameters.Comment]

[secrets]
EXO_TOKEN = "file:exchange-token"
PROXY_PASSWORD = "env:PROXY_PASSWORD"

[command]
argv = ["{python}", "{definition_dir}/move.py", "--identity", "{Identity}", "--db={TargetDatabase}"]
workdir = "{definition_dir}/work"
env = ["HTTPS_PROXY", "NO_PROXY"]
"""

HTTP_TASK = r"""
task = "Tickets\\Close-Ticket"

[parameters.Ticket]
type = "integer"
required = true

[parameters.Reason]

[secrets]
API_TOKEN = "env:TICKETS_TOKEN"

[http]
method = "patch"
url = "https://tickets.example.com/api/tickets/{Ticket}?reason={Reason}"

[http.headers]
Authorization = "Bearer {secret:API_TOKEN}"
X-Reason = "{Reason}"

[http.body]
state = "closed"
ticket = "{Ticket}"
notes = ["closed by jitpam", "{Reason}"]
"""

PYTHON_TASK = r"""
task = "Ops\\Rotate-Key"

[python]
entry_point = "rotate.keys:run"
path = ["{definition_dir}/lib"]
"""


def test_a_command_definition_loads_as_written() -> None:
    d = parse(COMMAND_TASK)
    assert d.task == QualifiedName("Exchange", "New-MoveRequest")
    assert d.kind == "command"
    assert d.description == "Move a mailbox to another database"
    assert (d.timeout_seconds, d.concurrency, d.keep_output, d.output_limit_bytes) == (
        120,
        2,
        True,
        2048,
    )
    assert (d.source, d.definition_dir) == (SOURCE, DEFINITION_DIR)
    assert d.parameters == (
        Parameter(
            "Identity",
            ParameterType.STRING,
            required=True,
            description="The mailbox to move",
            pattern=r"^[^@\s]+@[^@\s]+$",
        ),
        Parameter("TargetDatabase", ParameterType.CHOICE, choices=("DB01", "DB02")),
        Parameter("BatchSize", ParameterType.INTEGER),
        Parameter("Suspend", ParameterType.BOOLEAN),
        Parameter("Comment", ParameterType.STRING),
    )
    assert d.secrets == {
        "EXO_TOKEN": "file:exchange-token",
        "PROXY_PASSWORD": "env:PROXY_PASSWORD",
    }
    assert d.executor == CommandExecutor(
        argv=(
            "{python}",
            "{definition_dir}/move.py",
            "--identity",
            "{Identity}",
            "--db={TargetDatabase}",
        ),
        workdir="{definition_dir}/work",
        env=("HTTPS_PROXY", "NO_PROXY"),
    )


def test_an_http_definition_loads_as_written_with_its_method_in_capitals() -> None:
    d = parse(HTTP_TASK)
    assert d.task == QualifiedName("Tickets", "Close-Ticket")
    assert d.kind == "http"
    assert d.secrets == {"API_TOKEN": "env:TICKETS_TOKEN"}
    assert d.executor == HttpExecutor(
        method="PATCH",
        url="https://tickets.example.com/api/tickets/{Ticket}?reason={Reason}",
        headers=(("Authorization", "Bearer {secret:API_TOKEN}"), ("X-Reason", "{Reason}")),
        body={"state": "closed", "ticket": "{Ticket}", "notes": ["closed by jitpam", "{Reason}"]},
    )


def test_an_http_definition_posts_without_a_body_unless_told_otherwise() -> None:
    d = parse('task = "Hooks\\\\Ping"\n[http]\nurl = "http://hooks.internal/ping"\n')
    assert d.executor == HttpExecutor(method="POST", url="http://hooks.internal/ping")


def test_a_python_definition_loads_as_written_with_the_defaults() -> None:
    d = parse(PYTHON_TASK)
    assert d.task == QualifiedName("Ops", "Rotate-Key")
    assert d.kind == "python"
    assert d.executor == PythonExecutor("rotate.keys:run", ("{definition_dir}/lib",))
    assert d.parameters == ()
    assert d.secrets == {}
    assert d.description == ""
    assert (d.timeout_seconds, d.concurrency, d.keep_output, d.output_limit_bytes) == (
        60,
        1,
        False,
        64 * 1024,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout_seconds", 1),
        ("timeout_seconds", 24 * 3600),
        ("concurrency", 1),
        ("concurrency", 1000),
        ("output_limit_bytes", 1024),
        ("output_limit_bytes", 16 * 1024 * 1024),
    ],
)
def test_limits_at_the_edges_of_their_range_are_accepted(key: str, value: int) -> None:
    d = parse(f'task = "Ops\\\\Edge"\n{key} = {value}\n[command]\nargv = ["true"]\n')
    assert getattr(d, key) == value


# -- mistakes: each reported with file, line and field ------------------------------------------

HEAD = 'task = "Ops\\\\Restart"\n'
COMMAND = '[command]\nargv = ["systemctl", "restart", "app"]\n'

# (id, definition, a snippet on the line the problem belongs to or None for line 1, field, phrase)
MISTAKES = [
    ("missing task", COMMAND, None, "task", "is required"),
    ("empty task", 'task = "  "\n' + COMMAND, "task =", "task", "non-empty text"),
    ("task not text", "task = 5\n" + COMMAND, "task =", "task", "non-empty text"),
    ("task without scope", 'task = "Restart"\n' + COMMAND, "task =", "task", "Scope\\Name"),
    ("task without name", 'task = "Ops\\\\"\n' + COMMAND, "task =", "task", "Scope\\Name"),
    ("task of 3 parts", 'task = "A\\\\B\\\\C"\n' + COMMAND, "task =", "task", "Scope\\Name"),
    (
        "unknown top-level key",
        HEAD + 'colour = "blue"\n' + COMMAND,
        "colour",
        "colour",
        "is not a field of a task definition",
    ),
    (
        "description not text",
        HEAD + "description = 3\n" + COMMAND,
        "description",
        "description",
        "must be text",
    ),
    (
        "keep_output not boolean",
        HEAD + 'keep_output = "yes"\n' + COMMAND,
        "keep_output",
        "keep_output",
        "true or false",
    ),
    (
        "unknown parameter field",
        HEAD + '[parameters.Name]\ntype = "string"\ncolour = "red"\n' + COMMAND,
        "colour",
        "parameters.Name.colour",
        "is not a parameter field",
    ),
    (
        "bad parameter type",
        HEAD + '[parameters.Name]\ntype = "float"\n' + COMMAND,
        "float",
        "parameters.Name.type",
        "string, integer, boolean or choice",
    ),
    (
        "required not boolean",
        HEAD + '[parameters.Name]\nrequired = "yes"\n' + COMMAND,
        "required",
        "parameters.Name.required",
        "true or false",
    ),
    (
        "pattern on an integer",
        HEAD + '[parameters.Count]\ntype = "integer"\npattern = "[0-9]+"\n' + COMMAND,
        "pattern",
        "parameters.Count.pattern",
        "for string parameters only",
    ),
    (
        "pattern on a choice",
        HEAD + '[parameters.Db]\ntype = "choice"\nchoices = ["a"]\npattern = "a"\n' + COMMAND,
        "pattern",
        "parameters.Db.pattern",
        "for string parameters only",
    ),
    (
        "invalid regex pattern",
        HEAD + '[parameters.Name]\npattern = "([a-z]+"\n' + COMMAND,
        "pattern",
        "parameters.Name.pattern",
        "is not a valid regular expression",
    ),
    (
        "choice without choices",
        HEAD + '[parameters.Db]\ntype = "choice"\n' + COMMAND,
        "[parameters.Db]",
        "parameters.Db.choices",
        "lists its choices",
    ),
    (
        "choice with empty choices",
        HEAD + '[parameters.Db]\ntype = "choice"\nchoices = []\n' + COMMAND,
        "choices",
        "parameters.Db.choices",
        "lists its choices",
    ),
    (
        "choices on a string",
        HEAD + '[parameters.Name]\ntype = "string"\nchoices = ["a", "b"]\n' + COMMAND,
        "choices",
        "parameters.Name.choices",
        "for choice parameters only",
    ),
    (
        "secret from an unknown store",
        HEAD + '[secrets]\nTOKEN = "vault:exchange"\n' + COMMAND,
        "TOKEN",
        "secrets.TOKEN",
        '"env:NAME" or "file:NAME"',
    ),
    (
        "secret file name with a slash",
        HEAD + '[secrets]\nTOKEN = "file:../etc/shadow"\n' + COMMAND,
        "TOKEN",
        "secrets.TOKEN",
        '"env:NAME" or "file:NAME"',
    ),
    (
        "secret with no name",
        HEAD + '[secrets]\nTOKEN = "env:"\n' + COMMAND,
        "TOKEN",
        "secrets.TOKEN",
        '"env:NAME" or "file:NAME"',
    ),
    (
        "secret not text",
        HEAD + "[secrets]\nTOKEN = 7\n" + COMMAND,
        "TOKEN",
        "secrets.TOKEN",
        '"env:NAME" or "file:NAME"',
    ),
    (
        "secret name not a name",
        HEAD + '[secrets]\nmy-token = "env:TOKEN"\n' + COMMAND,
        "my-token",
        "secrets.my-token",
        "a secret's name",
    ),
    ("no executor", HEAD, None, "command", "exactly one executor"),
    (
        "command without argv",
        HEAD + '[command]\nworkdir = "/tmp"\n',
        "[command]",
        "command.argv",
        "is required",
    ),
    (
        "empty argv",
        HEAD + "[command]\nargv = []\n",
        "argv",
        "command.argv",
        "names the program to run",
    ),
    (
        "argv not a list of text",
        HEAD + '[command]\nargv = ["ls", 3]\n',
        "argv",
        "command.argv",
        "list of text",
    ),
    (
        "unknown command field",
        HEAD + COMMAND + "shell = true\n",
        "shell",
        "command.shell",
        "is not a field of [command]",
    ),
    (
        "argv placeholder naming no parameter",
        HEAD + '[parameters.Identity]\n[command]\nargv = ["move", "{Identty}"]\n',
        "argv",
        "command.argv",
        "{Identty} names no parameter",
    ),
    (
        "secret in a command argv",
        HEAD + '[secrets]\nTOKEN = "env:T"\n[command]\nargv = ["curl", "-H", "{secret:TOKEN}"]\n',
        "argv",
        "command.argv",
        "{secret:TOKEN}: secrets may not stand here (a command or Python task gets them as "
        "environment variables)",
    ),
    (
        "secret in a URL",
        HEAD + '[secrets]\nTOKEN = "env:T"\n[http]\nurl = "https://x.example/?t={secret:TOKEN}"\n',
        "url",
        "http.url",
        "{secret:TOKEN}",
    ),
    (
        "URL placeholder naming no parameter",
        HEAD + '[http]\nurl = "https://x.example/users/{User}"\n',
        "url",
        "http.url",
        "{User} names no parameter",
    ),
    (
        "unknown secret in a header",
        HEAD
        + '[secrets]\nTOKEN = "env:T"\n[http]\nurl = "https://x.example/"\n'
        + 'headers = { Authorization = "Bearer {secret:TOKN}" }\n',
        "headers",
        "http.headers",
        "{secret:TOKN}",
    ),
    (
        "unknown secret in a body",
        HEAD + '[http]\nurl = "https://x.example/"\nbody = { auth = ["{secret:TOKEN}"] }\n',
        "body",
        "http.body",
        "{secret:TOKEN}",
    ),
    (
        "body placeholder naming no parameter",
        HEAD + '[http]\nurl = "https://x.example/"\nbody = { user = { id = "{User}" } }\n',
        "body",
        "http.body",
        "{User} names no parameter",
    ),
    (
        "headers not text",
        HEAD + '[http]\nurl = "https://x.example/"\nheaders = { X-Count = 3 }\n',
        "headers",
        "http.headers",
        "table of text values",
    ),
    (
        "bad HTTP method",
        HEAD + '[http]\nmethod = "FETCH"\nurl = "https://x.example/"\n',
        "method",
        "http.method",
        "DELETE, GET, PATCH, POST, PUT",
    ),
    (
        "HTTP without URL",
        HEAD + '[http]\nmethod = "GET"\n',
        "[http]",
        "http.url",
        "is required",
    ),
    (
        "ftp URL",
        HEAD + '[http]\nurl = "ftp://files.example/x"\n',
        "url",
        "http.url",
        "http:// or https://",
    ),
    (
        "file URL",
        HEAD + '[http]\nurl = "file:///etc/passwd"\n',
        "url",
        "http.url",
        "http:// or https://",
    ),
    (
        "relative URL",
        HEAD + '[http]\nurl = "/api/x"\n',
        "url",
        "http.url",
        "http:// or https://",
    ),
    (
        "placeholder choosing the host",
        HEAD + '[parameters.Host]\n[http]\nurl = "https://{Host}/api"\n',
        "url",
        "http.url",
        "host",
    ),
    (
        "unknown http field",
        HEAD + '[http]\nurl = "https://x.example/"\nquery = "a=b"\n',
        "query",
        "http.query",
        "is not a field of [http]",
    ),
    (
        "Python entry point without function",
        HEAD + '[python]\nentry_point = "rotate.keys"\n',
        "entry_point",
        "python.entry_point",
        "package.module:function",
    ),
    (
        "Python entry point with empty function",
        HEAD + '[python]\nentry_point = "rotate.keys:"\n',
        "entry_point",
        "python.entry_point",
        "package.module:function",
    ),
    (
        "Python entry point starting with a digit",
        HEAD + '[python]\nentry_point = "1rotate:run"\n',
        "entry_point",
        "python.entry_point",
        "package.module:function",
    ),
    (
        "Python entry point as a path",
        HEAD + '[python]\nentry_point = "/srv/rotate.py:run"\n',
        "entry_point",
        "python.entry_point",
        "package.module:function",
    ),
    (
        "Python without entry point",
        HEAD + '[python]\npath = ["lib"]\n',
        "[python]",
        "python.entry_point",
        "is required",
    ),
    (
        "Python path not a list",
        HEAD + '[python]\nentry_point = "rotate:run"\npath = "lib"\n',
        "path",
        "python.path",
        "list of text",
    ),
    (
        "timeout 0",
        HEAD + "timeout_seconds = 0\n" + COMMAND,
        "timeout",
        "timeout_seconds",
        "from 1 to 86400",
    ),
    (
        "timeout over a day",
        HEAD + "timeout_seconds = 86401\n" + COMMAND,
        "timeout",
        "timeout_seconds",
        "from 1 to 86400",
    ),
    (
        "timeout as text",
        HEAD + 'timeout_seconds = "60"\n' + COMMAND,
        "timeout",
        "timeout_seconds",
        "from 1 to 86400",
    ),
    (
        "timeout as a boolean",
        HEAD + "timeout_seconds = true\n" + COMMAND,
        "timeout",
        "timeout_seconds",
        "from 1 to 86400",
    ),
    (
        "timeout as a fraction",
        HEAD + "timeout_seconds = 1.5\n" + COMMAND,
        "timeout",
        "timeout_seconds",
        "from 1 to 86400",
    ),
    (
        "concurrency 0",
        HEAD + "concurrency = 0\n" + COMMAND,
        "concurrency",
        "concurrency",
        "from 1 to 1000",
    ),
    (
        "concurrency over 1000",
        HEAD + "concurrency = 1001\n" + COMMAND,
        "concurrency",
        "concurrency",
        "from 1 to 1000",
    ),
    (
        "output limit under 1 KiB",
        HEAD + "output_limit_bytes = 1023\n" + COMMAND,
        "output_limit",
        "output_limit_bytes",
        "from 1024 to 16777216",
    ),
    (
        "output limit over 16 MiB",
        HEAD + "output_limit_bytes = 16777217\n" + COMMAND,
        "output_limit",
        "output_limit_bytes",
        "from 1024 to 16777216",
    ),
]


@pytest.mark.parametrize(
    ("text", "snippet", "path", "phrase"),
    [pytest.param(*case[1:], id=case[0]) for case in MISTAKES],
)
def test_each_mistake_is_reported_with_file_line_and_field(
    text: str, snippet: str | None, path: str, phrase: str
) -> None:
    problems = problems_of(text)
    line = 1 if snippet is None else line_of(text, snippet)
    assert_reported(problems, line, path, phrase)


def test_two_executors_are_refused() -> None:
    text = HEAD + COMMAND + '[python]\nentry_point = "rotate:run"\n'
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{SOURCE}:")
    assert "exactly one executor" in problems[0]


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = r"""
task = "Restart"
colour = "blue"
timeout_seconds = 0
concurrency = 5000

[parameters.Name]
type = "string"
pattern = "(unclosed"
colour = "red"

[parameters.Count]
type = "integer"
pattern = "[0-9]+"

[parameters.Mode]
type = "float"

[parameters.Db]
type = "string"
choices = ["a"]

[secrets]
TOKEN = "vault:x"
KEY = "file:keys/one"

[command]
argv = ["restart", "{Name}", "{Nmae}", "{secret:TOKEN}"]
shell = true
"""
    problems = problems_of(text)
    argv = line_of(text, "argv")
    expected = {
        (line_of(text, "task ="), "task"),
        (line_of(text, 'colour = "blue"'), "colour"),
        (line_of(text, "timeout_seconds"), "timeout_seconds"),
        (line_of(text, "concurrency"), "concurrency"),
        (line_of(text, "(unclosed"), "parameters.Name.pattern"),
        (line_of(text, 'colour = "red"'), "parameters.Name.colour"),
        (line_of(text, '"[0-9]+"'), "parameters.Count.pattern"),
        (line_of(text, "float"), "parameters.Mode.type"),
        (line_of(text, "choices"), "parameters.Db.choices"),
        (line_of(text, "vault"), "secrets.TOKEN"),
        (line_of(text, "keys/one"), "secrets.KEY"),
        (argv, "command.argv"),
        (line_of(text, "shell"), "command.shell"),
    }
    assert located(problems) == expected
    # Two bad placeholders on one line are two problems, each naming its placeholder.
    assert sum(p.startswith(f"{SOURCE}:{argv}: command.argv: ") for p in problems) == 2
    assert any("{Nmae}" in p for p in problems)
    assert any("{secret:TOKEN}" in p for p in problems)
    assert len(problems) == len(expected) + 1


def test_invalid_toml_is_reported_with_the_file_and_the_line() -> None:
    text = 'task = "Ops\\\\Restart"\n[command\nargv = ["true"]\n'
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{SOURCE}: not valid TOML")
    assert "line 2" in problems[0]


def test_a_duplicate_key_is_invalid_toml() -> None:
    text = 'task = "Ops\\\\A"\ntask = "Ops\\\\B"\n' + COMMAND
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: not valid TOML")


# -- mistakes whose line is reported wrongly (bugs: see the reasons) -------------------------


@pytest.mark.parametrize(
    ("text", "snippet", "path"),
    [
        pytest.param(HEAD + COMMAND + "[extra]\nx = 1\n", "[extra]", "extra", id="unknown table"),
        pytest.param(
            HEAD + "[parameters.my-name]\n" + COMMAND,
            "[parameters.my-name]",
            "parameters.my-name",
            id="bad parameter name",
        ),
        pytest.param(
            HEAD + "[parameters.python]\n" + COMMAND,
            "[parameters.python]",
            "parameters.python",
            id="parameter named like a built-in",
        ),
        pytest.param(
            HEAD + '[http]\nurl = "https://x.example/"\n[http.headers]\nA = "{secret:NOPE}"\n',
            "[http.headers]",
            "http.headers",
            id="header sub-table",
        ),
        pytest.param(
            HEAD + '[http]\nurl = "https://x.example/"\n[http.body]\nuser = "{User}"\n',
            "[http.body]",
            "http.body",
            id="body sub-table",
        ),
    ],
)
def test_a_mistake_in_a_table_header_is_reported_at_that_header(
    text: str, snippet: str, path: str
) -> None:
    assert (line_of(text, snippet), path) in located(problems_of(text))


@pytest.mark.parametrize(
    ("text", "snippet", "path"),
    [
        pytest.param(
            HEAD + '[command]\nargv = ["true"]\nworkdir = "{definition_dr}/work"\n',
            "workdir",
            "command.workdir",
            id="workdir typo",
        ),
        pytest.param(
            HEAD
            + '[secrets]\nT = "env:T"\n[command]\nargv = ["true"]\nworkdir = "/x/{secret:T}"\n',
            "workdir",
            "command.workdir",
            id="secret in workdir",
        ),
        pytest.param(
            HEAD + '[python]\nentry_point = "a:b"\npath = ["{definiton_dir}/lib"]\n',
            "path",
            "python.path",
            id="python path typo",
        ),
    ],
)
def test_a_placeholder_naming_nothing_outside_argv_is_reported(
    text: str, snippet: str, path: str
) -> None:
    assert (line_of(text, snippet), path) in located(problems_of(text))


def test_a_mistake_under_a_quoted_table_header_is_reported_at_its_line() -> None:
    text = HEAD + '[parameters."Id"]\ntype = "float"\n' + COMMAND
    assert (line_of(text, "float"), "parameters.Id.type") in located(problems_of(text))


def test_a_parameter_description_that_is_not_text_is_reported() -> None:
    text = HEAD + "[parameters.Id]\ndescription = 5\n" + COMMAND
    assert (line_of(text, "description"), "parameters.Id.description") in located(problems_of(text))


def test_a_placeholder_in_the_query_of_a_url_without_a_path_is_accepted() -> None:
    d = parse(HEAD + '[parameters.Id]\n[http]\nurl = "https://x.example?id={Id}"\n')
    assert isinstance(d.executor, HttpExecutor)


# -- validate: a user's values ----------------------------------------------------------------

VALIDATED = parse(
    r"""
task = "Exchange\\New-MoveRequest"

[parameters.Identity]
required = true
pattern = '[a-z]+@contoso\.com'

[parameters.Count]
type = "integer"

[parameters.Force]
type = "boolean"

[parameters.Db]
type = "choice"
choices = ["DB01", "DB02"]

[parameters.Note]

[command]
argv = ["move", "{Identity}"]
"""
)


def refusal(given: dict[str, object]) -> str:
    with pytest.raises(InvalidInput) as caught:
        VALIDATED.validate(given)
    assert caught.value.message.startswith("Exchange\\New-MoveRequest: ")
    return caught.value.message


def test_valid_values_come_back_typed() -> None:
    assert VALIDATED.validate(
        {
            "Identity": "ann@contoso.com",
            "Count": "42",
            "Force": "true",
            "Db": "DB02",
            "Note": "before the weekend; thanks",
        }
    ) == {
        "Identity": "ann@contoso.com",
        "Count": 42,
        "Force": True,
        "Db": "DB02",
        "Note": "before the weekend; thanks",
    }


def test_json_typed_values_are_kept_and_optional_ones_may_be_left_out() -> None:
    assert VALIDATED.validate({"Identity": "ann@contoso.com", "Count": -7, "Force": False}) == {
        "Identity": "ann@contoso.com",
        "Count": -7,
        "Force": False,
    }


@pytest.mark.parametrize(
    ("raw", "value"), [("42", 42), (" 42 ", 42), ("-3", -3), ("0", 0), (17, 17)]
)
def test_integers_are_read_from_text_or_json(raw: object, value: int) -> None:
    assert VALIDATED.validate({"Identity": "a@contoso.com", "Count": raw})["Count"] == value


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("FALSE", False), ("True", True), (True, True)]
)
def test_booleans_are_read_from_text_or_json(raw: object, value: bool) -> None:
    assert VALIDATED.validate({"Identity": "a@contoso.com", "Force": raw})["Force"] is value


def test_a_required_parameter_must_be_given() -> None:
    assert "parameter 'Identity' is required" in refusal({"Note": "x"})


def test_an_unknown_parameter_is_refused() -> None:
    assert "unknown parameter 'identity'" in refusal(
        {"Identity": "a@contoso.com", "identity": "b@contoso.com"}
    )


@pytest.mark.parametrize(
    ("name", "raw", "phrase"),
    [
        ("Count", "abc", "parameter 'Count' must be a whole number"),
        ("Count", "4.5", "parameter 'Count' must be a whole number"),
        ("Count", 4.0, "parameter 'Count' must be a whole number"),
        ("Count", "1e3", "parameter 'Count' must be a whole number"),
        ("Count", "", "parameter 'Count' must be a whole number"),
        ("Count", True, "parameter 'Count' must be a whole number"),
        ("Count", None, "parameter 'Count' must be a whole number"),
        ("Force", "maybe", "parameter 'Force' must be true or false"),
        ("Force", "yes", "parameter 'Force' must be true or false"),
        ("Force", 1, "parameter 'Force' must be true or false"),
        ("Note", 5, "parameter 'Note' must be text"),
        ("Note", True, "parameter 'Note' must be text"),
        ("Note", ["a"], "parameter 'Note' must be text"),
        ("Db", "DB03", "parameter 'Db' must be one of: DB01, DB02"),
        ("Db", "db01", "parameter 'Db' must be one of: DB01, DB02"),
        ("Db", 1, "parameter 'Db' must be text"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(name: str, raw: object, phrase: str) -> None:
    assert phrase in refusal({"Identity": "a@contoso.com", name: raw})


@pytest.mark.parametrize(
    "value",
    [
        "ann@contoso.com.evil.example",  # a search would find the pattern at the start
        "mallory ann@contoso.com",  # ... or at the end
        "ann@contoso.com\n",
        "ANN@contoso.com",
        "",
    ],
)
def test_a_pattern_must_match_the_whole_value(value: str) -> None:
    assert "parameter 'Identity' does not match the pattern" in refusal({"Identity": value})


def test_a_value_of_4096_characters_is_accepted_and_one_more_is_refused() -> None:
    assert VALIDATED.validate({"Identity": "a@contoso.com", "Note": "x" * 4096})["Note"] == (
        "x" * 4096
    )
    assert "parameter 'Note' is longer than 4096 characters" in refusal(
        {"Identity": "a@contoso.com", "Note": "x" * 4097}
    )


def test_a_nul_character_is_refused() -> None:
    assert "parameter 'Note' contains a NUL character" in refusal(
        {"Identity": "a@contoso.com", "Note": "a\x00b"}
    )


def test_every_problem_of_a_run_is_named_in_one_message() -> None:
    message = refusal(
        {"Count": "abc", "Force": "maybe", "Db": "DB9", "Note": 3, "Zeta": 1, "Alpha": 2}
    )
    for phrase in (
        "unknown parameter 'Alpha'",
        "unknown parameter 'Zeta'",
        "parameter 'Identity' is required",
        "parameter 'Count' must be a whole number",
        "parameter 'Force' must be true or false",
        "parameter 'Db' must be one of",
        "parameter 'Note' must be text",
    ):
        assert phrase in message
    assert message.count("; ") == 6


def test_parameter_parse_names_the_parameter() -> None:
    p = Parameter("Size", ParameterType.INTEGER)
    assert p.parse("12") == 12
    with pytest.raises(InvalidInput, match="parameter 'Size' must be a whole number"):
        p.parse("twelve")


# -- substitute: values are inserted literally ------------------------------------------------

BUILTINS = {"python": "/usr/bin/python3", "definition_dir": DEFINITION_DIR}
SECRETS = {"TOKEN": "s3cr3t-t0ken"}

# Pieces that a shell, a template engine or a second substitution pass would treat specially.
NASTY = [
    " ",
    "'",
    '"',
    ";",
    "$(id)",
    "`id`",
    "&&",
    "|",
    ">",
    "\n",
    "\r\n",
    "\t",
    "\\",
    "\\1",
    "\\g<0>",
    "%s",
    "{",
    "}",
    "{}",
    "{Other}",
    "{Identity}",
    "{secret:TOKEN}",
    "{python}",
    "{definition_dir}",
    "{{Identity}}",
    "--flag",
    "-",
    "=",
    "*",
    "~",
    "\u00e9",
    "\u202e",
    "\U0001f512",
]
values_text = st.lists(st.sampled_from(NASTY) | st.text(max_size=6), max_size=8).map("".join)
# Template text around a placeholder: braces and colons, but no placeholder of its own.
plain_text = (
    st.lists(st.sampled_from([" ", "-", "=", "/", ":", "{", "}", "{ }", "{1x}", "a"]), max_size=6)
    .map("".join)
    .filter(lambda s: re.search(r"\{[A-Za-z_]", s) is None)
)


@settings(max_examples=600, deadline=None)
@given(prefix=plain_text, value=values_text, suffix=plain_text)
def test_a_value_is_inserted_exactly_once_and_never_parsed_again(
    prefix: str, value: str, suffix: str
) -> None:
    template = prefix + "{Identity}" + suffix
    values = {"Identity": value, "Other": "OTHER"}
    assert substitute(template, values, BUILTINS, SECRETS) == prefix + value + suffix
    assert substitute(template, values, BUILTINS) == prefix + value + suffix


@settings(max_examples=400, deadline=None)
@given(
    a=values_text, b=values_text, parts=st.tuples(plain_text, plain_text, plain_text, plain_text)
)
def test_several_placeholders_are_each_filled_with_their_own_value(
    a: str, b: str, parts: tuple[str, str, str, str]
) -> None:
    p0, p1, p2, p3 = parts
    template = p0 + "{A}" + p1 + "{B}" + p2 + "{python}" + p3
    assert (
        substitute(template, {"A": a, "B": b}, BUILTINS, SECRETS)
        == p0 + a + p1 + b + p2 + "/usr/bin/python3" + p3
    )


# An argv template: literal text, or text around one placeholder naming a given parameter, a
# missing optional parameter, a built-in or (in HTTP) a secret.
ANY_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)?\}")
argv_template = st.tuples(
    plain_text, st.sampled_from(["", "{Given}", "{Also}", "{Missing}", "{python}"]), plain_text
).filter(  # literal text around no placeholder must not form one ("{" + "a}")
    lambda t: len(ANY_PLACEHOLDER.findall("".join(t))) == (t[1] != "")
)


@settings(max_examples=500, deadline=None)
@given(templates=st.lists(argv_template, max_size=8), given_=values_text, also=values_text)
def test_argv_keeps_one_element_per_template_except_those_naming_missing_parameters(
    templates: list[tuple[str, str, str]], given_: str, also: str
) -> None:
    values = {"Given": given_, "Also": also}
    filled = [substitute(p + ph + s, values, BUILTINS) for p, ph, s in templates]
    kept = [f for f in filled if f is not None]
    fills = {"": "", "{Given}": given_, "{Also}": also, "{python}": "/usr/bin/python3"}
    assert kept == [p + fills[ph] + s for p, ph, s in templates if ph != "{Missing}"]
    assert len(kept) == len(templates) - sum(ph == "{Missing}" for _, ph, _ in templates)


@settings(max_examples=300, deadline=None)
@given(number=st.integers(min_value=-(10**18), max_value=10**18), flag=st.booleans())
def test_typed_values_are_rendered_as_text(number: int, flag: bool) -> None:
    out = substitute("--n={N} --f={F}", {"N": number, "F": flag}, BUILTINS)
    assert out == f"--n={number} --f={'true' if flag else 'false'}"


def test_builtins_and_secrets_are_filled_and_a_missing_optional_parameter_drops_the_element() -> (
    None
):
    assert substitute("{definition_dir}/move.py", {}, BUILTINS) == f"{DEFINITION_DIR}/move.py"
    assert substitute("Bearer {secret:TOKEN}", {}, BUILTINS, SECRETS) == "Bearer s3cr3t-t0ken"
    assert substitute("--note={Note}", {}, BUILTINS) is None
    assert substitute("--note={Note} {python}", {}, BUILTINS, SECRETS) is None
    assert substitute("no placeholders {1} { x }", {}, BUILTINS) == "no placeholders {1} { x }"


def test_a_secret_cannot_be_filled_where_no_secrets_are_given() -> None:
    with pytest.raises(InvalidInput, match=re.escape("a secret cannot be used here")):
        substitute("--token={secret:TOKEN}", {}, BUILTINS)


def test_render_value() -> None:
    assert [render_value(v) for v in (True, False, 0, -12, "", "x y")] == [
        "true",
        "false",
        "0",
        "-12",
        "",
        "x y",
    ]


# -- fill_json: typed values in JSON bodies ---------------------------------------------------

BODY = {
    "identity": "{Identity}",
    "count": "{Count}",
    "force": "{Force}",
    "note": "moved {Identity} ({Count})",
    "optional": "{Note}",
    "optional_text": "note: {Note}",
    "auth": "Bearer {secret:TOKEN}",
    "tool": "{python}",
    "{Identity}": "keys are not templates",
    "nested": {"list": ["{Count}", "{Note}", "literal", 3, 2.5, None, True], "empty": {}},
    "static": [1, {"a": False}],
}


def test_fill_json_keeps_types_and_structure_and_drops_missing_optional_keys() -> None:
    values: dict[str, str | int | bool] = {
        "Identity": '{"admin": true}',
        "Count": 42,
        "Force": False,
    }
    assert fill_json(BODY, values, BUILTINS, SECRETS) == {
        "identity": '{"admin": true}',
        "count": 42,
        "force": False,
        "note": 'moved {"admin": true} (42)',
        "auth": "Bearer s3cr3t-t0ken",
        "tool": "/usr/bin/python3",
        "{Identity}": "keys are not templates",
        "nested": {"list": [42, "literal", 3, 2.5, None, True], "empty": {}},
        "static": [1, {"a": False}],
    }


def test_fill_json_does_not_change_its_template() -> None:
    before = json.dumps(BODY, sort_keys=True)
    fill_json(BODY, {"Identity": "x", "Count": 1, "Force": True}, BUILTINS, SECRETS)
    assert json.dumps(BODY, sort_keys=True) == before


def test_a_body_that_is_not_a_table_or_list_is_refused() -> None:
    with pytest.raises(TaskDefinitionInvalid) as refused:
        parse(HEAD + '[parameters.Note]\n[http]\nurl = "https://x.example/"\nbody = "{Note}"\n')
    assert any("http.body: must be a table or a list" in p for p in refused.value.problems)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), plain_text
)
json_templates = st.recursive(
    json_scalars | st.sampled_from(["{V}", "x={V}", "{python}"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(plain_text, children, max_size=4)
    ),
    max_leaves=20,
)


def expected_json(template: object, value: object) -> object:
    if isinstance(template, dict):
        return {k: expected_json(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [expected_json(v, value) for v in template]
    if template == "{V}":
        return value
    if template == "x={V}":
        return "x=" + render_value(value)  # type: ignore[arg-type]
    if template == "{python}":
        return "/usr/bin/python3"
    return template


@settings(max_examples=400, deadline=None)
@given(
    template=json_templates,
    value=values_text
    | st.sampled_from(['{"a": 1}', "[1, 2]", "null", "true", "42", '"quoted"'])
    | st.integers()
    | st.booleans(),
)
def test_fill_json_puts_a_value_only_where_its_placeholder_stands(
    template: object, value: str | int | bool
) -> None:
    filled = fill_json(template, {"V": value}, BUILTINS, SECRETS)
    assert filled == expected_json(template, value)
    assert json.loads(json.dumps(filled)) == filled


# -- mask: secrets never shown ----------------------------------------------------------------


def test_mask_replaces_every_occurrence_of_every_secret() -> None:
    assert mask("token=abc; again abc; other=xyz", ["abc", "xyz"]) == (
        "token=********; again ********; other=********"
    )


def test_mask_replaces_the_longest_secret_first() -> None:
    # "hunter2" is part of "hunter2-extended": masking it first would leave "-extended" behind.
    text = "a=hunter2-extended b=hunter2"
    assert mask(text, ["hunter2", "hunter2-extended"]) == "a=******** b=********"
    assert mask(text, ["hunter2-extended", "hunter2"]) == "a=******** b=********"


def test_mask_ignores_empty_secrets() -> None:
    assert mask("nothing to hide", ["", ""]) == "nothing to hide"
    assert mask("pw=abc", ["", "abc"]) == "pw=********"
    assert mask("", ["abc"]) == ""


secret_text = st.text(
    alphabet=st.characters(blacklist_characters="*", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(
    secrets=st.lists(secret_text | st.just(""), max_size=4),
    pieces=st.lists(st.text(max_size=5) | st.integers(0, 3), max_size=10),
)
def test_no_secret_is_left_in_masked_text(secrets: list[str], pieces: list[str | int]) -> None:
    real = [s for s in secrets if s]
    # Text made of ordinary pieces and the secrets themselves (an int picks a secret).
    text = "".join(
        p if isinstance(p, str) else (real[p % len(real)] if real else "") for p in pieces
    )
    masked = mask(text, secrets)
    for secret in real:
        assert secret not in masked
    if not real:
        assert masked == text


# -- run outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("succeeded", "timed_out", "result"),
    [
        (True, False, "succeeded"),
        (False, False, "failed"),
        (False, True, "timed_out"),
        (True, True, "timed_out"),
    ],
)
def test_the_result_of_a_run(succeeded: bool, timed_out: bool, result: str) -> None:
    outcome = RunOutcome(
        succeeded=succeeded,
        exit_code=None if timed_out else (0 if succeeded else 2),
        http_status=None,
        output="",
        truncated=False,
        timed_out=timed_out,
        duration_ms=5,
    )
    assert outcome.result == result
