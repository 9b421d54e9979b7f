"""PostgreSQL destination (Runbook C.1): INSERT with column_mapping, idempotent on the record id.

column_mapping maps record attributes (record_id, source_id, timestamp, ingested_at, payload,
quality_score) or data field paths to table columns. The column that record_id maps to must be
unique in the table: rows already there are skipped (ON CONFLICT DO NOTHING).
"""
import threading

import orjson
import psycopg
from psycopg import sql

from configuration.secrets import SecretError, resolve_secret

from . import DeliveryError, OutgoingRecord, record_value

_connections: dict[tuple, psycopg.Connection] = {}
_lock = threading.Lock()

# SQLSTATE classes that a retry can cure: connection exceptions, insufficient resources,
# operator intervention (shutdown), serialization failures and deadlocks.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57", "40")


def _plain(value):
    """Objects and lists go to the table as JSON text."""
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else value


class PostgresDestination:
    def __init__(self, destination_id: str, spec: dict):
        self.destination_id = destination_id
        self.connection_spec = spec.get("connection") or {}
        self.timeout_s = max(1, int((spec.get("delivery") or {}).get("timeout_ms", 30000)) // 1000)
        fmt = spec.get("format") or {}
        self.table = fmt.get("table")
        self.mapping: dict = fmt.get("column_mapping") or {}
        if "record_id" not in self.mapping:
            raise DeliveryError("format.column_mapping must map record_id (the idempotency key)", transient=False)
        self.key = (destination_id, orjson.dumps(spec, option=orjson.OPT_SORT_KEYS))

    @classmethod
    def for_spec(cls, destination_id: str, spec: dict) -> "PostgresDestination":
        return cls(destination_id, spec)

    def _connect(self) -> psycopg.Connection:
        with _lock:
            conn = _connections.get(self.key)
            if conn is not None and not conn.closed:
                return conn
        c = self.connection_spec
        try:
            user = resolve_secret(c["username_ref"]) if c.get("username_ref") else None
            password = resolve_secret(c["password_ref"]) if c.get("password_ref") else None
        except SecretError as exc:
            raise DeliveryError(str(exc), transient=False, category="authorization") from exc
        try:
            conn = psycopg.connect(
                host=c.get("host"), port=c.get("port", 5432), dbname=c.get("database"), user=user,
                password=password, sslmode=c.get("ssl_mode", "prefer"), connect_timeout=self.timeout_s,
                autocommit=False,
            )
        except psycopg.OperationalError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            auth = "authentication" in message or "password" in message
            raise DeliveryError(f"cannot connect: {message}", transient=not auth,
                                category="authorization" if auth else None) from exc
        with _lock:
            _connections[self.key] = conn
        return conn

    def _drop(self) -> None:
        with _lock:
            conn = _connections.pop(self.key, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def deliver(self, records: list[OutgoingRecord], *, batch_id: str) -> None:
        if not records:
            return
        if not self.table:
            raise DeliveryError("format.table is not set", transient=False)
        keys = list(self.mapping)
        columns = sql.SQL(", ").join(sql.Identifier(self.mapping[k]) for k in keys)
        target = sql.Identifier(*self.table.split("."))
        # COPY into a scratch table shaped like the target, then one INSERT ... ON CONFLICT DO NOTHING:
        # idempotent on the record id column, and one statement instead of one per record.
        rows = [[_plain(record_value(r, k)) for k in keys] for r in records]
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(self.timeout_s * 1000)))
                cursor.execute(sql.SQL("CREATE TEMP TABLE _opsconsole_delivery (LIKE {} INCLUDING DEFAULTS) "
                                       "ON COMMIT DROP").format(target))
                with cursor.copy(sql.SQL("COPY _opsconsole_delivery ({}) FROM STDIN").format(columns)) as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM _opsconsole_delivery ON CONFLICT ({}) "
                                       "DO NOTHING").format(target, columns, columns,
                                                            sql.Identifier(self.mapping["record_id"])))
            conn.commit()
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None) or ""
            transient = isinstance(exc, psycopg.OperationalError) or state.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
            if state == "57014":  # statement timeout
                transient = True
            self._drop()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DeliveryError(f"{state or type(exc).__name__}: {first}", transient=transient,
                                category="authorization" if state.startswith("42501") else None) from exc

    def test(self) -> str:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            conn.rollback()
        except psycopg.Error as exc:
            self._drop()
            raise DeliveryError(f"connected but cannot query: {exc}", transient=True) from exc
        return f"connected to {self.connection_spec.get('host')}:{self.connection_spec.get('port', 5432)}"
