"""Variants of contract structs for decoding or encoding only: the same tag, fields, constraints,
defaults and wire names, with some field types swapped (e.g. `dict[str, float]` → `msgspec.Raw`).

Derived from the contract at import, so a contract change reaches its variants by itself.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

import msgspec

__all__ = ["variant"]


def _swap(tp: Any, swaps: dict[Any, Any]) -> Any:
    """`tp` with the types in `swaps` replaced, also inside `Annotated[...]` and `list[...]`."""
    if tp in swaps:
        return swaps[tp]
    origin = get_origin(tp)
    if origin is Annotated:
        base, *metadata = get_args(tp)
        return Annotated[(_swap(base, swaps), *metadata)]
    if origin is list:
        return list[_swap(get_args(tp)[0], swaps)]  # type: ignore[misc]
    return tp


def variant(struct: type[msgspec.Struct], swaps: dict[Any, Any]) -> type[msgspec.Struct]:
    """A struct with the same tag, fields, constraints, defaults and wire names as `struct`,
    but some field types swapped (e.g. `dict[str, float]` → `msgspec.Raw`)."""
    config = struct.__struct_config__
    fields = msgspec.structs.fields(struct)
    return msgspec.defstruct(
        f"{struct.__name__}Variant",
        [
            (f.name, _swap(f.type, swaps), msgspec.field(default=f.default))
            if f.default_factory is msgspec.NODEFAULT
            else (f.name, _swap(f.type, swaps), msgspec.field(default_factory=f.default_factory))
            for f in fields
        ],
        tag_field=config.tag_field,
        tag=config.tag,
        rename={f.name: f.encode_name for f in fields},
        omit_defaults=config.omit_defaults,
        forbid_unknown_fields=config.forbid_unknown_fields,
        array_like=config.array_like,
        kw_only=True,
        frozen=True,
        gc=False,  # decoded messages and values being encoded: never part of a cycle
    )
