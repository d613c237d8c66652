"""API token authentication in one query: the token, its user and the user's positions.

Every signed-in API request needs the three, and DRF's `TokenAuthentication` followed by `scope_of` reads them
with two ORM queries, which cost more to build than to run (about 3 ms of the 10-15 ms of a list on the
machines of docs/PERFORMANCE.md). Here one query reads the token, every column of its user and the
`SCOPE_COLUMNS` of each position (a left join: a user without positions is one row), and its SQL is built by
the ORM once per process and database: only the key changes from one request to the next. On PostgreSQL it
is a prepared statement of each connection, since planning its seven tables costs PostgreSQL 1 ms, six times
what running it does (a generic plan is kept after five runs). A deleted token (a new password deletes them), a
deactivated user or a changed position counts from the next request on.

On PostgreSQL a worker keeps the rows of the tokens it has read (`kept_tokens`), for as long as nothing they are
read from changes and at most `API_TOKEN_CACHE_SECONDS` (60): triggers on the six tables of the query (tokens, users,
positions, units, residents, households; migration governance 0012, enabled ALWAYS, so that they fire for a
replica's or a bulk fix's writes too) send a notification on channel `governance_auth` with every statement that
writes them; each worker's connection listens on it, and before a kept token is used the notifications that have
arrived on the connection are read without a round trip (`poll`): any notification empties every kept token of that
worker. A deleted token, a new password, a changed position or a moved unit therefore counts from the worker's
first request after the notification has reached it. PostgreSQL sends it to the listening connections as the
change commits; it can arrive a moment after the writer has heard of the commit (a fraction of a millisecond on an
idle machine, more on a loaded one), as a request already under way when the change committed would also have
been answered; and whatever stops notifications (a trigger dropped or disabled) is bounded by the 60 seconds.

What is kept is tied to the connection that listened: a new connection, after an error or `CONN_MAX_AGE`, starts
with nothing kept, and a connection to a database without all six triggers enabled keeps nothing. Nothing is kept
inside a transaction or without autocommit (a notification is sent only on commit: a test's transaction never
sends one), with `CONN_MAX_AGE=0`, on SQLite, with psycopg 3 (Django's choice when it is installed: it reads
notifications differently), or with `API_TOKEN_CACHE_SECONDS=0`."""

import collections
import functools
import re
import time

from django.conf import settings
from django.db import DatabaseError, connections, router
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from .models import User
from .selectors import SCOPE_COLUMNS, remember_scope

_TOKEN_FIELDS = [f.attname for f in Token._meta.concrete_fields]
_USER_FIELDS = [f.attname for f in User._meta.concrete_fields]
_KEY = "\x00token key\x00"  # stands for the key while the SQL is built
_STATEMENT = "governance_token_scope"
_KEY_LENGTH = Token._meta.get_field("key").max_length
CHANNEL = "governance_auth"  # the triggers of migration governance 0012 notify it
TRIGGER = "governance_auth_changed"
MAX_KEPT = 2000  # tokens kept per worker; one more empties them


@functools.cache
def _compiled(alias):
    """The query's SQL and parameters (with the key's position among them) and its value converters."""
    query = (
        Token.objects.using(alias)
        .filter(key=_KEY)
        .values_list(
            *_TOKEN_FIELDS,
            *(f"user__{name}" for name in _USER_FIELDS),
            *(f"user__positions__{name}" for name in SCOPE_COLUMNS),
        )
        .order_by("user__positions__id")
    )
    compiler = query.query.get_compiler(alias)
    sql, params = compiler.as_sql()
    params = list(params)
    if params.count(_KEY) != 1:  # pragma: no cover - a change of Django's SQL would show here first
        raise RuntimeError("the token query's key parameter was not found")
    converters = [
        (i, [*backend, *field], expression)
        for i, (expression, _select, _alias) in enumerate(compiler.select)
        for backend, field in [
            (connections[alias].ops.get_db_converters(expression), expression.get_db_converters(connections[alias]))
        ]
        if backend or field
    ]
    return sql, params, params.index(_KEY), converters


def token_rows(key):
    """The rows of `key`: token columns, user columns, one position's scope columns (empty without a token)."""
    alias = router.db_for_read(Token)
    connection = connections[alias]
    kept = kept_tokens(connection)
    found = kept.get(key) if kept is not None else None
    if found is not None and time.monotonic() - found[0] < settings.TOKEN_CACHE_SECONDS:
        return alias, [list(row) for row in found[1]]
    sql, params, at, converters = _compiled(alias)
    params = [*params[:at], key, *params[at + 1 :]]
    with connection.cursor() as cursor:
        if _prepared(connection, cursor, sql, len(params)):
            cursor.execute(f"EXECUTE {_STATEMENT}({', '.join(['%s'] * len(params))})", params)
        else:
            cursor.execute(sql, params)
        rows = [list(row) for row in cursor.fetchall()]
    for row in rows:
        for i, functions, expression in converters:
            for convert in functions:
                row[i] = convert(row[i], expression, connection)
    if kept is not None and rows:  # a key no token has is asked anew every time
        if len(kept) >= MAX_KEPT:
            kept.clear()
        kept[key] = (time.monotonic(), tuple(tuple(row) for row in rows))
    return alias, rows


def kept_tokens(connection) -> dict | None:
    """The tokens' rows kept on this PostgreSQL connection ({key: (when read, rows)}), emptied when a notification
    has arrived since they were read; None where nothing is kept (see the module's docstring)."""
    if (
        not settings.TOKEN_CACHE_SECONDS
        or connection.vendor != "postgresql"
        or is_psycopg3
        or connection.in_atomic_block
        or connection.settings_dict.get("CONN_MAX_AGE") == 0  # None: kept open for good
    ):
        return None
    try:
        connection.ensure_connection()
        if not connection.get_autocommit():
            return None
        raw = connection.connection
        if getattr(connection, "_kept_tokens_of", None) is not raw:
            connection._kept_tokens = _listen(connection, raw)
            connection._kept_tokens_of = raw
        raw.poll()  # reads what has arrived on the socket, sends nothing
    except (DatabaseError, connection.Database.Error):  # the connection is gone: the request's query opens another
        connection.close()
        return None
    kept = connection._kept_tokens
    if kept is not None and raw.notifies:
        raw.notifies.clear()
        kept.clear()
    return kept


def _listen(connection, raw) -> dict | None:
    """Listen on CHANNEL on this new connection, and say whether tokens can be kept on it: {} when the database
    is a primary with the triggers of every table of the token query enabled ALWAYS, else None (nothing kept)."""
    tables = _tables(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(
            f"LISTEN {CHANNEL}; SELECT NOT pg_is_in_recovery() AND %s = (SELECT COUNT(DISTINCT c.relname) FROM "
            "pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = %s AND t.tgenabled = 'A' AND "
            "c.relname = ANY(%s) AND pg_table_is_visible(c.oid))",
            [len(tables), TRIGGER, list(tables)],
        )
        ready = cursor.fetchone()[0]
    # Whether any arrived is all that is asked of the notifications: one is kept, however many arrive meanwhile.
    raw.notifies = collections.deque(maxlen=1)
    return {} if ready else None


@functools.cache
def _tables(alias) -> frozenset:
    """The tables the token query reads."""
    return frozenset(re.findall(r'(?:FROM|JOIN) "(\w+)"', _compiled(alias)[0]))


def _prepared(connection, cursor, sql, count) -> bool:
    """Whether the query is a prepared statement of this PostgreSQL connection (prepared on its first use).
    Prepared statements belong to the session, so a connection kept open (`CONN_MAX_AGE`) plans it once and a
    new connection prepares it anew; a transaction rolled back keeps it."""
    if connection.vendor != "postgresql" or "%%" in sql:
        return False
    raw = connection.connection
    if getattr(connection, "_token_statement_of", None) is raw:
        return True
    cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [_STATEMENT])
    if not cursor.fetchone():
        numbered = sql
        for n in range(1, count + 1):
            numbered = numbered.replace("%s", f"${n}", 1)
        cursor.execute(f"PREPARE {_STATEMENT} AS {numbered}")
    connection._token_statement_of = raw
    return True


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, reading the token, the user and their scope in one query."""

    def authenticate_credentials(self, key):
        if "\x00" in key or len(key) > _KEY_LENGTH:  # no token has such a key, and PostgreSQL refuses a NUL
            raise exceptions.AuthenticationFailed()
        alias, rows = token_rows(key)
        if not rows:  # DRF's own refusal, in its words (one query more, for a refused token only)
            return super().authenticate_credentials(key)
        first = rows[0]
        token = Token.from_db(alias, _TOKEN_FIELDS, first[: len(_TOKEN_FIELDS)])
        user_end = len(_TOKEN_FIELDS) + len(_USER_FIELDS)
        user = User.from_db(alias, _USER_FIELDS, first[len(_TOKEN_FIELDS) : user_end])
        if not user.is_active:
            return super().authenticate_credentials(key)
        token.user = user
        positions = [row[user_end:] for row in rows if row[user_end] is not None]  # a role, or no position
        remember_scope(user, positions)
        return user, token
