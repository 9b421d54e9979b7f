"""Dotted field paths into records (`customer.address.zip`)."""
from typing import Any

MISSING = object()


def get_path(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def set_path(record: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    target = record
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            if nxt is not None:
                raise ValueError(f"field '{part}' of '{path}' is a {type(nxt).__name__}, not an object")
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = value


def delete_path(record: dict, path: str) -> bool:
    parts = path.split(".")
    target = record
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return False
    return target.pop(parts[-1], MISSING) is not MISSING
