"""Dotted field paths as transformation rules use them: checked at compile time, strict at run time.

opsconsole.fields reads paths leniently (anything unreachable is MISSING), which is right for
conditions. A transform must tell "the field is absent" from "the path runs into a list or a
scalar", so the second is a counted failure with a clear reason, never a silent no-op.
"""
import re
from typing import Any

from opsconsole.fields import MISSING

_SEGMENT = re.compile(r"^[^.\[\]]+$")


class PathError(ValueError):
    """A path that cannot be used (compile time)."""


class PathBlocked(ValueError):
    """A path that runs into a value that is not an object (run time, for one record)."""


def path_check(path: Any) -> str:
    """The path if it is usable, else PathError with the reason."""
    if not isinstance(path, str) or not path:
        raise PathError("must be a field path such as 'customer.email'")
    if "[" in path or "]" in path:
        raise PathError(f"'{path}': list indexes are not supported in field paths (a path names object fields)")
    parts = path.split(".")
    if any(not _SEGMENT.match(p) for p in parts):
        raise PathError(f"'{path}': empty segment in field path")
    return path


def top_level(path: str) -> str:
    return path.split(".", 1)[0]


def strict_get(record: dict, path: str) -> Any:
    """The value at path, MISSING when a field on the way is absent (or null), PathBlocked when a value
    on the way is a list or a scalar."""
    value: Any = record
    walked = []
    for part in path.split("."):
        if value is None:
            return MISSING
        if not isinstance(value, dict):
            where = ".".join(walked)
            raise PathBlocked(f"'{where}' is {_kind(value)}, so '{path}' cannot be read")
        if part not in value:
            return MISSING
        value = value[part]
        walked.append(part)
    return value


def settable_check(record: dict, path: str) -> None:
    """PathBlocked when a value on the way to path is a list or a scalar (so it cannot be set)."""
    parts = path.split(".")
    target: Any = record
    for i, part in enumerate(parts[:-1]):
        nxt = target.get(part)
        if nxt is None:
            return
        if not isinstance(nxt, dict):
            raise PathBlocked(f"'{'.'.join(parts[:i + 1])}' is {_kind(nxt)}, so '{path}' cannot be set")
        target = nxt


def strict_set(record: dict, path: str, value: Any) -> None:
    """Set the value at path, creating missing objects on the way; PathBlocked (and nothing changed)
    when a value on the way is a list or a scalar."""
    settable_check(record, path)
    parts = path.split(".")
    target = record
    for part in parts[:-1]:
        nxt = target.get(part)
        if nxt is None:
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = value


def strict_delete(record: dict, path: str) -> bool:
    """Remove the field at path; False when it was not there (or a value on the way is not an object)."""
    parts = path.split(".")
    target: Any = record
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return False
    return target.pop(parts[-1], MISSING) is not MISSING


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted path: leaf value} of a record, for before/after comparisons (lists are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}
