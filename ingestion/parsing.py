"""Parsing bodies and files into records: JSON (array, object or `record_path`), JSON lines, CSV."""
import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

import orjson


_UNDECODABLE = re.compile("[\udc80-\udcff]")


class ParseError(ValueError):
    """The body or file as a whole cannot be read."""


@dataclass
class Parsed:
    records: list[Any] = field(default_factory=list)
    # Lines or rows that could not be read, each (position, raw text, reason); the rest still count.
    bad: list[tuple[str, str, str]] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not valid UTF-8 at byte {exc.start}") from exc


def select_record_path(document: Any, record_path: str | None) -> Any:
    """`$.data.records` style paths (dots only)."""
    if not record_path or record_path in ("$", "$."):
        return document
    value = document
    for part in record_path.removeprefix("$").strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise ParseError(f"record_path {record_path}: '{part}' not found")
        value = value[part]
    return value


def parse_json(data: bytes, record_path: str | None = None) -> Parsed:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from exc
    selected = select_record_path(document, record_path)
    if isinstance(selected, list):
        return Parsed(records=selected)
    if isinstance(selected, dict):
        return Parsed(records=[selected])
    raise ParseError(f"expected a JSON array or object of records, got {type(selected).__name__}")


def parse_jsonl(data: bytes) -> Parsed:
    parsed = Parsed()
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            parsed.records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            parsed.bad.append((f"line {number}", line[:4096].decode("utf-8", "replace"), f"malformed JSON: {exc}"))
    return parsed


def _has_undecodable(values: list[str]) -> bool:
    return any(_UNDECODABLE.search(v) for v in values)


def parse_csv(data: bytes) -> Parsed:
    """CSV with a header row. A row with the wrong number of fields, or with bytes that are not UTF-8,
    is a bad row (counted, with its reason); the other rows still count."""
    # surrogateescape keeps undecodable bytes visible per row instead of failing the whole body.
    text = data.decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return Parsed()
    except csv.Error as exc:
        raise ParseError(f"malformed CSV header: {exc}") from exc
    if _has_undecodable(header):
        raise ParseError("CSV header is not valid UTF-8")
    if not header or len(set(header)) != len(header):
        raise ParseError("CSV header is empty or has duplicate column names")
    parsed = Parsed()
    try:
        for row in reader:
            if not row:
                continue
            if _has_undecodable(row):
                shown = ",".join(row).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                parsed.bad.append((f"row {reader.line_num}", shown[:4096], "not valid UTF-8"))
                continue
            if len(row) != len(header):
                parsed.bad.append(
                    (f"row {reader.line_num}", ",".join(row)[:4096], f"has {len(row)} fields, header has {len(header)}")
                )
                continue
            parsed.records.append(dict(zip(header, row)))
    except csv.Error as exc:
        raise ParseError(f"malformed CSV at line {reader.line_num}: {exc}") from exc
    return parsed


def parse_body(data: bytes, fmt: str | None = None, record_path: str | None = None) -> Parsed:
    """fmt: json, jsonl or csv; None guesses json, then JSON lines."""
    if fmt == "csv":
        return parse_csv(data)
    if fmt == "jsonl":
        return parse_jsonl(data)
    if fmt == "json":
        return parse_json(data, record_path)
    stripped = data.lstrip()
    if stripped[:1] == b"[" or fmt is None and b"\n" not in data.strip():
        return parse_json(data, record_path)
    try:
        return parse_json(data, record_path)
    except ParseError:
        parsed = parse_jsonl(data)
        if not parsed.records:
            raise
        return parsed
