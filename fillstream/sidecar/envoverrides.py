"""``FILLSTREAM_<SECTION>__<KEY>`` environment overrides, applied to the parsed TOML document.

Scheme (documented in the README):

* ``FILLSTREAM_DATABASE__DSN=postgresql://…`` sets ``[database] dsn``; any depth works
  (``FILLSTREAM_STREAM__STALE_AFTER_S=30``).
* Lists are comma separated: ``FILLSTREAM_NATS__SERVERS=nats://a:4222,nats://b:4222``.
* Accounts are addressed by name: ``FILLSTREAM_ACCOUNTS__ALPHA__ENABLED=false`` changes the
  account named ``alpha`` (case-insensitive; ``-`` in a name is written ``_``). Accounts are
  declared in the file; the environment cannot add one.
* Variables without ``__`` (``FILLSTREAM_CONFIG``, ``FILLSTREAM_TEST_PG_DSN``) are not overrides.
  A variable that names no field is an error, so a typo never passes silently.

Values stay strings here; msgspec converts them to the field's type (``strict=False``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import inspect as mi

from fillstream.ledger.errors import ConfigError

PREFIX = "FILLSTREAM_"
_SEQUENCES = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)


def _unwrap(t: mi.Type) -> mi.Type:
    """``X | None`` → ``X``."""
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) == 1:
            return inner[0]
    return t


def _norm(name: str) -> str:
    return name.upper().replace("-", "_")


def apply_env_overrides(
    raw: dict[str, Any], environ: Mapping[str, str], root: type[msgspec.Struct]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``raw`` with the overrides applied, and ``{field path: variable name}``.

    Raises :class:`ConfigError` naming the variable when it does not name a field.
    """
    out = copy.deepcopy(raw)
    sources: dict[str, str] = {}
    root_info = mi.type_info(root)
    for var in sorted(environ):
        if not var.startswith(PREFIX) or "__" not in var:
            continue
        parts = var[len(PREFIX) :].split("__")
        path = _apply(out, root_info, parts, environ[var], var)
        sources[path] = var
    return out, sources


def _apply(node: dict[str, Any], info: mi.Type, parts: list[str], value: str, var: str) -> str:
    """Set ``value`` at ``parts`` below ``node`` (of type ``info``); returns the field path."""
    path = ""
    t = info
    for i, part in enumerate(parts):
        field = _field(t, part, path, var)
        path = f"{path}.{field.encode_name}" if path else field.encode_name
        ftype = _unwrap(field.type)
        if i == len(parts) - 1:
            _set_leaf(node, field.encode_name, ftype, value, path=path, var=var)
            return path
        if _is_struct_seq(ftype):
            assert isinstance(ftype, _SEQUENCES)
            return _apply_to_entry(node, field.encode_name, ftype, parts[i + 1 :], value, var=var)
        child = node.setdefault(field.encode_name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{var}: {path} in the config file is not a table")
        node = child
        t = ftype
    raise ConfigError(f"{var}: names no field")  # pragma: no cover - parts is never empty


def _field(t: mi.Type, part: str, path: str, var: str) -> mi.Field:
    """The field of the struct type ``t`` that ``part`` names (case-insensitively)."""
    t = _unwrap(t)
    if not isinstance(t, mi.StructType):
        raise ConfigError(f"{var}: {path or 'config'} has no sub-field {part.lower()!r}")
    field = next((f for f in t.fields if f.encode_name == part.lower()), None)
    if field is None:
        raise ConfigError(f"{var}: {path or 'config'} has no field {part.lower()!r}")
    return field


def _set_leaf(
    node: dict[str, Any], name: str, ftype: mi.Type, value: str, *, path: str, var: str
) -> None:
    if isinstance(ftype, mi.StructType):
        raise ConfigError(f"{var}: {path} is a section; name one of its fields")
    if isinstance(ftype, _SEQUENCES) and not _is_struct_seq(ftype):
        node[name] = [v.strip() for v in value.split(",") if v.strip()]
    else:
        node[name] = value


def _apply_to_entry(
    node: dict[str, Any],
    name: str,
    ftype: mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType,
    parts: list[str],
    value: str,
    *,
    var: str,
) -> str:
    """``accounts``: ``parts[0]`` is the account's name, the rest a field of that entry."""
    items = node.get(name)
    wanted = parts[0]
    match = [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and _norm(str(item.get("name", ""))) == _norm(wanted)
    ]
    if len(match) != 1:
        why = "no" if not match else "more than one"
        raise ConfigError(
            f"{var}: {why} [[{name}]] entry named {wanted.lower()!r} in the config file"
        )
    rest = parts[1:]
    if not rest:
        raise ConfigError(f"{var}: name a field of {name}[{wanted.lower()}]")
    label = match[0].get("name")
    sub = _apply(match[0], ftype.item_type, rest, value, var)
    return f"{name}[{label}].{sub}"


def _is_struct_seq(t: mi.Type) -> bool:
    return isinstance(t, _SEQUENCES) and isinstance(_unwrap(t.item_type), mi.StructType)
