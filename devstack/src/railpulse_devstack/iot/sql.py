"""The subset of AWS IoT SQL (2016-03-23) the topic rules use: parsed once, run per message.

    SELECT <item>, ... FROM '<topic filter>'
    item:     *  |  <expr> AS <alias>
    expr:     'string' | number | function(<arg>, ...)
    arg:      * (the whole message) | expr
    functions: encode(*, 'base64'), topic(), topic(n), clientid(), timestamp()

Semantics as in IoT Core: `topic()` is the topic without a Basic Ingest prefix, `topic(n)` its
n-th level (from 1), `clientid()` the publisher's MQTT client id, `timestamp()` the receipt time
in epoch ms; a value that is Undefined (no client id, a level past the end) leaves its attribute
out of the result. `SELECT *` passes the message bytes on untouched. Anything else (WHERE, payload
attributes, other functions) is refused when the rule is compiled, with `SqlError` naming it, so
the stand-in never runs a rule differently from how it reads.

Substitution templates (`${clientid()}` in an action's PartitionKey) use the same expressions.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from railpulse_devstack.errors import StackError

__all__ = [
    "CompiledRule",
    "Message",
    "SqlError",
    "Template",
    "compile_sql",
    "compile_template",
    "topic_matches",
]


class SqlError(StackError):
    """A rule's SQL or template is outside the supported subset, or malformed."""


@dataclass(frozen=True, slots=True)
class Message:
    """What a rule sees of one MQTT message."""

    topic: str
    """As the rule sees it: a Basic Ingest prefix already removed."""
    payload: bytes
    client_id: str | None
    received_ms: int


class _Undefined:
    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED: Final = _Undefined()

Value = str | int | float | bytes | _Undefined
_Expr = Callable[[Message], Value]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[(),*])|(?P<other>\S))"
)
_KEYWORDS = frozenset({"select", "as", "from", "where"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SqlError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos}: {text!r}")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _unquote(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise SqlError(f"unexpected end of {self.text!r}")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "ident" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text.lower() != text:
            raise SqlError(f"expected {text!r} at {tok.pos}, found {tok.text!r}: {self.text!r}")

    def at_end(self) -> bool:
        return self.peek() is None

    # expr := 'string' | number | name(args)
    def expr(self) -> _Expr:
        tok = self.take()
        if tok.kind == "string":
            return _constant(_unquote(tok.text))
        if tok.kind == "number":
            return _constant(float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "ident" and tok.text.lower() not in _KEYWORDS:
            following = self.peek()
            if following is None or following.text != "(":
                raise SqlError(
                    f"payload attribute {tok.text!r} (at {tok.pos}) is not supported by the "
                    "stand-in's IoT SQL: select functions of the message, e.g. encode(*, 'base64')"
                )
            self.take()
            args: list[_Expr | None] = []  # None stands for `*`
            if self.peek() is not None and self.peek().text == ")":  # type: ignore[union-attr]
                self.take()
            else:
                while True:
                    if self.peek() is not None and self.peek().text == "*":  # type: ignore[union-attr]
                        self.take()
                        args.append(None)
                    else:
                        args.append(self.expr())
                    sep = self.take()
                    if sep.text == ")":
                        break
                    if sep.text != ",":
                        raise SqlError(f"expected ',' or ')' at {sep.pos}: {self.text!r}")
            return _function(tok.text, args, self.text)
        raise SqlError(f"unexpected {tok.text!r} at {tok.pos}: {self.text!r}")


def _constant(value: Value) -> _Expr:
    def constant(_message: Message) -> Value:
        return value

    return constant


def _function(name: str, args: list[_Expr | None], text: str) -> _Expr:
    fn = name.lower()
    if fn == "encode":
        if len(args) != 2 or args[1] is None:
            raise SqlError(f"encode takes (value, 'scheme'): {text!r}")
        scheme_expr = args[1]
        scheme = scheme_expr(Message("", b"", None, 0))
        if scheme != "base64":
            raise SqlError(f"encode supports only the 'base64' scheme, not {scheme!r}: {text!r}")
        source = args[0]
        if source is None:
            return lambda m: base64.b64encode(m.payload).decode("ascii")

        def encode_value(m: Message) -> Value:
            value = source(m)
            if isinstance(value, _Undefined):
                return value
            raw = value if isinstance(value, bytes) else str(value).encode()
            return base64.b64encode(raw).decode("ascii")

        return encode_value
    if fn == "topic":
        if not args:
            return lambda m: m.topic
        if len(args) != 1 or args[0] is None:
            raise SqlError(f"topic takes no argument or one level number: {text!r}")
        level = args[0](Message("", b"", None, 0))
        if not isinstance(level, int) or level < 1:
            raise SqlError(f"topic(n) needs a level number from 1, not {level!r}: {text!r}")

        def topic_level(m: Message, n: int = level) -> Value:
            parts = m.topic.split("/")
            return parts[n - 1] if n <= len(parts) else UNDEFINED

        return topic_level
    if fn in ("clientid", "timestamp", "principal") and args:
        raise SqlError(f"{fn}() takes no arguments: {text!r}")
    if fn == "clientid":
        return lambda m: m.client_id if m.client_id else UNDEFINED
    if fn == "timestamp":
        return lambda m: m.received_ms
    if fn == "principal":
        raise SqlError(
            "principal() is the certificate id (a hash) for X.509 connections in AWS IoT and the "
            f"stand-in does not provide it; the thing name is clientid(): {text!r}"
        )
    raise SqlError(
        f"function {name}() is not supported by the stand-in's IoT SQL "
        f"(supported: encode, topic, clientid, timestamp): {text!r}"
    )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (`+` one level, `#` the rest)."""
    fparts = topic_filter.split("/")
    tparts = topic.split("/")
    for i, f in enumerate(fparts):
        if f == "#":
            return True
        if i >= len(tparts) or (f != "+" and f != tparts[i]):
            return False
    return len(fparts) == len(tparts)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    sql: str
    topic_filter: str
    columns: tuple[tuple[str, _Expr], ...] | None
    """(alias, expression) in SELECT order; None for `SELECT *`."""

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, message: Message) -> dict[str, Any] | bytes:
        """The rule's result: an object (Undefined attributes left out), or the message bytes."""
        if self.columns is None:
            return message.payload
        out: dict[str, Any] = {}
        for alias, expr in self.columns:
            value = expr(message)
            if not isinstance(value, _Undefined):
                out[alias] = value
        return out

    def output(self, message: Message) -> bytes:
        """The bytes a rule action (Kinesis Data) receives: the result as JSON."""
        result = self.evaluate(message)
        if isinstance(result, bytes):
            return result
        return json.dumps(result, separators=(",", ":")).encode()


def compile_sql(sql: str) -> CompiledRule:
    p = _Parser(sql)
    if not p.keyword("select"):
        raise SqlError(f"a rule's SQL starts with SELECT: {sql!r}")
    columns: list[tuple[str, _Expr]] = []
    tok = p.peek()
    star = tok is not None and tok.text == "*"
    if star:
        p.take()
    else:
        while True:
            start = p.peek()
            expr = p.expr()
            if not p.keyword("as"):
                raise SqlError(
                    f"give the expression at {start.pos if start else '?'} a name with AS: {sql!r}"
                )
            alias = p.take()
            if alias.kind != "ident" or alias.text.lower() in _KEYWORDS:
                raise SqlError(f"expected an alias at {alias.pos}, found {alias.text!r}: {sql!r}")
            if any(alias.text == a for a, _ in columns):
                raise SqlError(f"alias {alias.text!r} is used twice: {sql!r}")
            columns.append((alias.text, expr))
            nxt = p.peek()
            if nxt is None or nxt.text != ",":
                break
            p.take()
    if not p.keyword("from"):
        found = p.peek()
        raise SqlError(f"expected FROM, found {found.text if found else 'the end'!r}: {sql!r}")
    source = p.take()
    if source.kind != "string":
        raise SqlError(f"FROM takes a quoted topic filter, found {source.text!r}: {sql!r}")
    topic_filter = _unquote(source.text)
    _check_filter(topic_filter, sql)
    if p.keyword("where"):
        raise SqlError(f"WHERE is not supported by the stand-in's IoT SQL: {sql!r}")
    if not p.at_end():
        extra = p.take()
        raise SqlError(f"unexpected {extra.text!r} at {extra.pos}: {sql!r}")
    return CompiledRule(sql, topic_filter, None if star else tuple(columns))


def _check_filter(topic_filter: str, sql: str) -> None:
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if ("#" in part and (part != "#" or i != len(parts) - 1)) or ("+" in part and part != "+"):
            raise SqlError(f"malformed topic filter {topic_filter!r}: {sql!r}")
    if not topic_filter or topic_filter.startswith("$aws/rules/"):
        raise SqlError(f"FROM needs a topic filter (not a Basic Ingest topic): {sql!r}")


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    parts: tuple[str | _Expr, ...]

    def render(self, message: Message) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part(message)
                if not isinstance(value, _Undefined):
                    out.append(value.decode() if isinstance(value, bytes) else str(value))
        return "".join(out)


def compile_template(text: str) -> Template:
    """A substitution template: literal text with `${expression}` parts."""
    parts: list[str | _Expr] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        end = text.find("}", start)
        if end < 0:
            raise SqlError(f"unclosed ${{ in template {text!r}")
        if start > pos:
            parts.append(text[pos:start])
        p = _Parser(text[start + 2 : end])
        parts.append(p.expr())
        if not p.at_end():
            raise SqlError(f"one expression per ${{...}} in template {text!r}")
        pos = end + 1
    if pos < len(text):
        parts.append(text[pos:])
    return Template(text, tuple(parts))
