"""The PowerShell syntax ``jitpam ps`` reads: one pipeline of commands per line.

Pure code, no I/O. What it reads, as PowerShell reads it in argument mode: parameters
(``-Name value``, ``-Name:value``, ``-Switch``), single-quoted strings (``''`` is a quote),
double-quoted strings (``""`` or a backtick escapes), the typographic quotes (U+201C, U+201D,
U+201E and U+2018, U+2019, U+201A, U+201B) as their plain kinds, bare words, arrays
``@('a','b')`` and bare comma lists ``'a','b'``, ``$true``/``$false``/``$null``, script blocks
``{ $_.Prop -like 'x*' }`` and ``|`` between commands. Anything else (variables, redirection,
several statements) is a ``ParseError``: text either parses or raises it, never anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
DASHES = "-\u2013\u2014\u2015"
_WORD_END = " \t\r\n\f\v|;,(){}" + SINGLE_QUOTES + DOUBLE_QUOTES
_BACKTICK_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BACKTICK_ESCAPES["v"] = "\v"
_SPACE = " \t\r\n\f\v"


class ParseError(ValueError):
    """The line is not PowerShell that ``jitpam ps`` reads (exit code 2)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"ParserError: char {position + 1}: {message}")
        self.reason = message
        self.position = position


# ---------------------------------------------------------------- the tree
@dataclass(frozen=True)
class Property:
    """``$_.Name`` (``name`` empty for ``$_`` itself)."""

    name: str


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Compare:
    left: Operand
    operator: str  # lowercased, without the dash: eq, ne, like, notlike, match, ...
    right: Operand


@dataclass(frozen=True)
class Logical:
    operator: str  # and, or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Operand: TypeAlias = Property | Literal
Expr: TypeAlias = Compare | Logical | Not | Property | Literal

OPERATORS = frozenset(
    prefix + op
    for op in ("eq", "ne", "like", "notlike", "match", "notmatch", "gt", "ge", "lt", "le")
    for prefix in ("", "i", "c")
)


@dataclass(frozen=True)
class ScriptBlock:
    text: str
    expr: Expr


Value: TypeAlias = str | bool | ScriptBlock | tuple["Value", ...] | None


@dataclass(frozen=True)
class Parameter:
    """``-Name`` (``value`` given only with ``-Name:value``)."""

    name: str
    value: Value = None
    has_value: bool = False


@dataclass(frozen=True)
class Argument:
    value: Value


Element: TypeAlias = Parameter | Argument


@dataclass(frozen=True)
class Command:
    name: str
    elements: tuple[Element, ...] = field(default=())


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command, ...]


# ---------------------------------------------------------------- writing (for round trips)
def quote(text: str) -> str:
    """``text`` as a single-quoted PowerShell string (every single-quote kind doubled)."""
    return "'" + "".join(c + c if c in SINGLE_QUOTES else c for c in text) + "'"


def render_value(value: Value) -> str:
    if value is True:
        return "$true"
    if value is False:
        return "$false"
    if value is None:
        return "$null"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, ScriptBlock):
        return "{" + value.text + "}"
    return "@(" + ",".join(render_value(v) for v in value) + ")"


def render(pipeline: Pipeline) -> str:
    stages = []
    for command in pipeline.commands:
        words = [command.name]
        for element in command.elements:
            if isinstance(element, Parameter):
                words.append(
                    f"-{element.name}:{render_value(element.value)}"
                    if element.has_value
                    else f"-{element.name}"
                )
            else:
                words.append(render_value(element.value))
        stages.append(" ".join(words))
    return " | ".join(stages)


# ---------------------------------------------------------------- reading
def parse(line: str) -> Pipeline:
    """One line as a pipeline; raises ParseError (only) for anything it cannot read."""
    return _Reader(line).pipeline()


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self, offset: int = 0) -> str:
        i = self.at + offset
        return self.text[i] if i < len(self.text) else ""

    def fail(self, message: str, at: int | None = None) -> ParseError:
        return ParseError(message, self.at if at is None else at)

    def skip_space(self) -> None:
        while self.peek() and self.peek() in _SPACE:
            self.at += 1
        if self.peek() == "#":  # a comment runs to the end of the line
            self.at = len(self.text)

    def pipeline(self) -> Pipeline:
        commands = [self.command()]
        while True:
            self.skip_space()
            ch = self.peek()
            if not ch:
                return Pipeline(tuple(commands))
            if ch != "|":  # pragma: no cover - command() stops only at "|" or the end
                raise self.fail(f"Unexpected token '{ch}'.")
            self.at += 1
            commands.append(self.command())

    def command(self) -> Command:
        self.skip_space()
        start = self.at
        ch = self.peek()
        if not ch or ch == "|":
            raise self.fail("An empty pipe element is not allowed.")
        if ch in SINGLE_QUOTES + DOUBLE_QUOTES + "@$({,":
            raise self.fail("Expected a cmdlet name (Verb-Noun) at the start of the pipeline.")
        name = self.bare_word()
        if name == "&":
            raise self.fail("The call operator '&' is not supported.", start)
        elements: list[Element] = []
        while True:
            self.skip_space()
            ch = self.peek()
            if not ch or ch == "|":
                return Command(name, tuple(elements))
            if ch in DASHES and self._is_parameter():
                elements.append(self.parameter())
            else:
                elements.append(Argument(self.value_list()))

    def _is_parameter(self) -> bool:
        nxt = self.peek(1)
        return nxt.isalpha() or nxt in "_?"

    def parameter(self) -> Parameter:
        self.at += 1  # the dash
        start = self.at
        while self.peek() and (self.peek().isalnum() or self.peek() in "_?"):
            self.at += 1
        name = self.text[start : self.at]
        if self.peek() == ":":
            self.at += 1
            self.skip_space()
            if not self.peek() or self.peek() == "|":
                raise self.fail(f"Missing an argument after the parameter '-{name}:'.")
            return Parameter(name, self.value_list(), True)
        ch = self.peek()
        if ch and ch not in _SPACE and ch not in "|":
            raise self.fail(f"Unexpected character '{ch}' in the parameter name '-{name}'.")
        return Parameter(name)

    def value_list(self) -> Value:
        """One value, or several joined by commas (an array)."""
        first = self.value()
        items = [first]
        while True:
            mark = self.at
            self.skip_space()
            if self.peek() != ",":
                self.at = mark
                break
            self.at += 1
            self.skip_space()
            if not self.peek() or self.peek() in "|)":
                raise self.fail("Missing expression after ','.")
            items.append(self.value())
        return first if len(items) == 1 else tuple(items)

    def value(self) -> Value:
        """One argument: adjacent pieces (quoted or bare) join into one string, as PowerShell
        joins them in argument mode; an array, a script block or a variable stands alone."""
        ch = self.peek()
        if ch == "@" and self.peek(1) == "(":
            return self.array()
        if ch == "{":
            return self.script_block()
        if ch == "$":
            return self.variable()
        if ch in "()":
            raise self.fail(f"Unexpected token '{ch}': sub-expressions are not supported.")
        if ch in ";":
            raise self.fail("Several statements on one line (';') are not supported.")
        if ch in "}":
            raise self.fail("Unexpected token '}'.")
        pieces: list[str] = []
        while True:
            ch = self.peek()
            if not ch or ch in _SPACE or ch in "|;,(){}":
                break
            if ch in SINGLE_QUOTES:
                pieces.append(self.single_quoted())
            elif ch in DOUBLE_QUOTES:
                pieces.append(self.double_quoted())
            elif ch == "$" and pieces:
                raise self.fail("Variables are not supported.")
            else:
                pieces.append(self.bare_word())
        if not pieces:  # pragma: no cover - value() is called on a non-separator
            raise self.fail("Missing a value.")
        return "".join(pieces)

    def bare_word(self) -> str:
        out: list[str] = []
        start = self.at
        while True:
            ch = self.peek()
            if not ch or ch in _WORD_END:
                break
            if ch == "`":
                nxt = self.peek(1)
                if not nxt:
                    raise self.fail("Missing a character after the escape '`'.")
                out.append(nxt)
                self.at += 2
                continue
            if ch in "<>":
                raise self.fail(
                    f"The '{ch}' operator (redirection) is not supported"
                    + (" (is a placeholder such as <request id> left in?)" if ch == "<" else "")
                    + "."
                )
            if ch == "$" and self.at > start:
                raise self.fail("Variables are not supported.")
            if ch == "&" and self.peek(1) == "&":
                raise self.fail("The '&&' operator is not supported.")
            out.append(ch)
            self.at += 1
        if self.at == start:
            raise self.fail(f"Unexpected token '{self.peek()}'.")
        return "".join(out)

    def single_quoted(self) -> str:
        start = self.at
        self.at += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail("The string is missing the terminator: '.", start)
            if ch in SINGLE_QUOTES:
                if self.peek(1) and self.peek(1) in SINGLE_QUOTES:
                    out.append(ch)
                    self.at += 2
                    continue
                self.at += 1
                return "".join(out)
            out.append(ch)
            self.at += 1

    def double_quoted(self) -> str:
        start = self.at
        self.at += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail('The string is missing the terminator: ".', start)
            if ch == "`":
                nxt = self.peek(1)
                if not nxt:
                    raise self.fail('The string is missing the terminator: ".', start)
                out.append(_BACKTICK_ESCAPES.get(nxt, nxt))
                self.at += 2
                continue
            if ch in DOUBLE_QUOTES:
                if self.peek(1) and self.peek(1) in DOUBLE_QUOTES:
                    out.append(ch)
                    self.at += 2
                    continue
                self.at += 1
                return "".join(out)
            out.append(ch)
            self.at += 1

    def variable(self) -> Value:
        start = self.at
        self.at += 1
        while self.peek() and (self.peek().isalnum() or self.peek() in "_"):
            self.at += 1
        name = self.text[start + 1 : self.at].lower()
        constants: dict[str, Value] = {"true": True, "false": False, "null": None}
        if name not in constants:
            raise self.fail(f"Variables are not supported (${name or ''}).", start)
        return constants[name]

    def array(self) -> Value:
        start = self.at
        self.at += 2  # @(
        items: list[Value] = []
        self.skip_space()
        if self.peek() == ")":
            self.at += 1
            return ()
        while True:
            self.skip_space()
            if not self.peek():
                raise self.fail("Missing closing ')' in the array '@('.", start)
            if self.peek() in ",)":
                raise self.fail("Missing expression in the array.")
            value = self.value_list()
            items.extend(value if isinstance(value, tuple) else (value,))
            self.skip_space()
            ch = self.peek()
            if ch == ")":
                self.at += 1
                return tuple(items)
            if not ch:
                raise self.fail("Missing closing ')' in the array '@('.", start)
            raise self.fail(f"Unexpected token '{ch}' in the array.")

    def script_block(self) -> ScriptBlock:
        start = self.at
        self.at += 1
        depth = 1
        while depth:
            ch = self.peek()
            if not ch:
                raise self.fail("Missing closing '}' in the script block.", start)
            if ch in SINGLE_QUOTES:
                self.single_quoted()
                continue
            if ch in DOUBLE_QUOTES:
                self.double_quoted()
                continue
            if ch == "`":
                self.at += 2
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            self.at += 1
        text = self.text[start + 1 : self.at - 1]
        return ScriptBlock(text, _ExprReader(text, start + 1).whole())


# ---------------------------------------------------------------- filters
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      |(?P<lparen>\()|(?P<rparen>\))|(?P<bang>!)
      |(?P<prop>\$_(?:\.(?P<pname>[A-Za-z_][A-Za-z0-9_]*))?)
      |(?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op>[-\u2013\u2014\u2015][A-Za-z]+)
      |(?P<number>[0-9]+(?:\.[0-9]+)?)
      |(?P<quote>['\u2018\u2019\u201a\u201b"\u201c\u201d\u201e])
      |(?P<word>[^\s()!'"\u2018\u2019\u201a\u201b\u201c\u201d\u201e$-][^\s()'"\u2018\u2019\u201a\u201b\u201c\u201d\u201e]*)
    """,
    re.X,
)


class _ExprReader:
    """``-or`` of ``-and`` of ``-not``/``!`` of comparisons, parenthesized as needed."""

    def __init__(self, text: str, offset: int) -> None:
        self.tokens: list[tuple[str, Value | str, int]] = []
        at = 0
        while at < len(text):
            m = _TOKEN.match(text, at)
            if not m:
                raise ParseError(f"Unexpected token '{text[at]}' in the script block.", offset + at)
            kind = m.lastgroup if m.lastgroup != "pname" else "prop"
            assert kind is not None
            if kind == "quote":
                sub = _Reader(text)
                sub.at = at
                try:
                    s = sub.single_quoted() if text[at] in SINGLE_QUOTES else sub.double_quoted()
                except ParseError as exc:
                    raise ParseError(exc.reason, offset + exc.position) from None
                self.tokens.append(("literal", s, offset + at))
                at = sub.at
                continue
            if kind == "prop":
                self.tokens.append(("prop", m.group("pname") or "", offset + at))
            elif kind == "var":
                name = m.group()[1:].lower()
                consts: dict[str, Value] = {"true": True, "false": False, "null": None}
                if name not in consts:
                    raise ParseError(f"Variables are not supported (${name}).", offset + at)
                self.tokens.append(("literal", consts[name], offset + at))
            elif kind == "op":
                self.tokens.append(("op", m.group()[1:].lower(), offset + at))
            elif kind in ("number", "word"):
                self.tokens.append(("literal", m.group(), offset + at))
            elif kind != "space":
                self.tokens.append((kind, m.group(), offset + at))
            at = m.end()
        self.i = 0
        self.end = offset + len(text)

    def peek(self) -> tuple[str, Value | str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def where(self) -> int:
        token = self.peek()
        return token[2] if token else self.end

    def whole(self) -> Expr:
        if not self.tokens:
            raise ParseError("The script block is empty.", self.end)
        expr = self.disjunction()
        if self.peek() is not None:
            raise ParseError("Unexpected token in the script block.", self.where())
        return expr

    def _is_op(self, *names: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in names

    def disjunction(self) -> Expr:
        expr = self.conjunction()
        while self._is_op("or"):
            self.i += 1
            expr = Logical("or", expr, self.conjunction())
        return expr

    def conjunction(self) -> Expr:
        expr = self.negation()
        while self._is_op("and"):
            self.i += 1
            expr = Logical("and", expr, self.negation())
        return expr

    def negation(self) -> Expr:
        token = self.peek()
        if token is not None and (token[0] == "bang" or (token[0] == "op" and token[1] == "not")):
            self.i += 1
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.primary()
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] not in ("and", "or", "not"):
            if token[1] not in OPERATORS:
                raise ParseError(f"Unexpected token '-{token[1]}' in the script block.", token[2])
            self.i += 1
            right = self.primary()
            if not isinstance(left, (Property, Literal)) or not isinstance(
                right, (Property, Literal)
            ):
                raise ParseError("A comparison needs a value on each side.", token[2])
            return Compare(left, str(token[1]), right)
        return left

    def primary(self) -> Expr:
        token = self.peek()
        if token is None:
            raise ParseError("Missing an expression in the script block.", self.end)
        kind, value, at = token
        if kind == "lparen":
            self.i += 1
            inner = self.disjunction()
            closing = self.peek()
            if closing is None or closing[0] != "rparen":
                raise ParseError("Missing closing ')' in the expression.", self.where())
            self.i += 1
            return inner
        if kind == "prop":
            self.i += 1
            return Property(str(value))
        if kind == "literal":
            self.i += 1
            return Literal(value)
        raise ParseError(f"Unexpected token '{value}' in the script block.", at)
