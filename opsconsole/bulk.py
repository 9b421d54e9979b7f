"""Bulk writes for the data plane: COPY on PostgreSQL, executemany elsewhere (SQLite).

Rows are tuples in the order of `columns`; values are converted once per column, not per row by Django.
"""
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _converter(field: models.Field) -> Callable[[Any], Any]:
    if isinstance(field, models.JSONField):
        return _json_text
    if is_postgresql():
        if isinstance(field, models.UUIDField):
            return lambda v: None if v is None else str(v)
        return lambda v: v
    return lambda v: field.get_db_prep_save(v, connection)


def bulk_insert(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert rows into model's table; returns the number written."""
    fields = [model._meta.get_field(name) for name in columns]
    convert = [_converter(f) for f in fields]
    table = model._meta.db_table
    names = [f.column for f in fields]
    count = 0
    with connection.cursor() as cursor:
        if is_postgresql():
            sql = f'COPY "{table}" ({", ".join(chr(34) + n + chr(34) for n in names)}) FROM STDIN'
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row([c(v) for c, v in zip(convert, row)])
                    count += 1
        else:
            sql = f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join(["%s"] * len(names))})'
            prepared = [[c(v) for c, v in zip(convert, row)] for row in rows]
            cursor.executemany(sql, prepared)
            count = len(prepared)
    return count


def bulk_update(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """UPDATE model SET columns... WHERE pk = row[-1] for every row (values in column order, pk last).

    PostgreSQL: COPY the rows into a temporary table and run one UPDATE ... FROM it (one statement,
    not one per row). Elsewhere: executemany."""
    fields = [model._meta.get_field(name) for name in columns]
    pk = model._meta.pk
    convert = [_converter(f) for f in fields] + [_converter(pk)]
    prepared = [[c(v) for c, v in zip(convert, row)] for row in rows]
    if not prepared:
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if not is_postgresql():
            assignments = ", ".join(f'"{f.column}" = %s' for f in fields)
            cursor.executemany(f'UPDATE "{table}" SET {assignments} WHERE "{pk.column}" = %s', prepared)
            return
        temp = f"_bulk_update_{table}"
        definitions = ", ".join(f'"{f.column}" {f.db_type(connection)}' for f in [*fields, pk])
        cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{temp}" ({definitions}) ON COMMIT DELETE ROWS')
        cursor.execute(f'TRUNCATE "{temp}"')
        names = ", ".join(f'"{f.column}"' for f in [*fields, pk])
        with cursor.cursor.copy(f'COPY "{temp}" ({names}) FROM STDIN') as copy:
            for row in prepared:
                copy.write_row(row)
        assignments = ", ".join(f'"{f.column}" = t."{f.column}"' for f in fields)
        cursor.execute(f'UPDATE "{table}" SET {assignments} FROM "{temp}" t WHERE "{table}"."{pk.column}" = t."{pk.column}"')


def load_json(value: Any) -> Any:
    """A JSON column read with raw SQL: decoded already on PostgreSQL, text on SQLite."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value
