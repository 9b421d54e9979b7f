"""Affected systems: "<kind>:<name>" tokens, and which of them two changes share.

Sources belong to Module Alpha, rules and enrichment to Beta, destinations and routes to Gamma, so
a change to `module:alpha` touches every change to an Alpha source.
"""
import re
from collections.abc import Iterable

from opsconsole.errors import ApplicationError

from .choices import MODULES, SYSTEM_KINDS

_NAME = re.compile(r"^[\w.\-/@]+$")


def systems_normalize(value: str | Iterable[str] | None) -> list[str]:
    """Parse affected systems from a list or from text (one per line or comma-separated).

    `alpha` alone means `module:alpha`; a bare name that is not a module is `system:<name>`."""
    if value is None:
        return []
    if isinstance(value, str):
        items = re.split(r"[,\n]", value)
    else:
        items = list(value)
    result: list[str] = []
    errors: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            errors.append(f"{raw!r} is not text")
            continue
        token = raw.strip()
        if not token:
            continue
        if ":" in token:
            kind, name = (part.strip() for part in token.split(":", 1))
            kind = kind.lower()
        else:
            kind, name = ("module", token.lower()) if token.lower() in MODULES else ("system", token)
        if kind not in SYSTEM_KINDS:
            errors.append(f"'{token}': unknown kind '{kind}' (use {', '.join(sorted(SYSTEM_KINDS))})")
            continue
        if kind == "module":
            name = name.lower()
            if name not in MODULES:
                errors.append(f"'{token}': the modules are {', '.join(MODULES)}")
                continue
        if not name or not _NAME.match(name):
            errors.append(f"'{token}': the name may hold letters, digits and . _ - / @ only")
            continue
        normalized = f"{kind}:{name}"
        if normalized not in result:
            result.append(normalized)
    if errors:
        raise ApplicationError("Affected systems: " + "; ".join(errors), extra={"field": "affected_systems"})
    return result


def _module_of(token: str) -> str | None:
    kind = token.split(":", 1)[0]
    module = SYSTEM_KINDS.get(kind)
    return f"module:{module}" if module else None


def systems_shared(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """What two changes both touch: the same token, or a module and something inside it."""
    shared = set()
    for x in a:
        for y in b:
            if x == y:
                shared.add(x)
            elif _module_of(x) == y:
                shared.add(f"{x} (in {y})")
            elif _module_of(y) == x:
                shared.add(f"{y} (in {x})")
    return sorted(shared)
