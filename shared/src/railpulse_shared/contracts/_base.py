"""The base of every event: a frozen, keyword-only msgspec Struct tagged by `kind`.

Each concrete event sets an explicit versioned tag (`"frame.v1"`). Evolution rules (checked by
tests/contracts): a new field needs a default and keeps the tag; a removed field, a changed type or
a new required field is a breaking change and gets a new `.v2` Struct beside the old one.
"""

from __future__ import annotations

import msgspec

__all__ = ["Event", "Wire"]


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    """Base of the tagged union of events exchanged between services."""


class Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of untagged wire shapes (nested values, device payloads, shadow documents)."""
