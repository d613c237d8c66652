"""Repeated SELECTs as prepared statements of their PostgreSQL connection.

psycopg2 sends every query as text with its parameters written in, and PostgreSQL parses and plans it anew
each time. For the lists' page queries (four or five tables joined) planning costs as much as running: the
page of a street's cases is planned in 1.0 ms and run in 1.1 ms, and pgbench runs it 685 times a second as
text and 1,657 times prepared (docs/PERFORMANCE.md). A connection kept open (`CONN_MAX_AGE`) serves the same
few lists again and again, so this wrapper, installed on every PostgreSQL connection, prepares each SELECT text
the connection runs a second time and runs it with EXECUTE from then on.

- The text is the whole query with its parameters written in (psycopg2's own `mogrify`, exactly what it would
  send). A statement is therefore planned once with its own values: its plan is the one the text gets today,
  never a generic plan guessed for unknown parameters (PostgreSQL would misjudge `path LIKE $1`).
- Only what is repeated is prepared: a text seen once is remembered by its hash only, and at most
  `MAX_STATEMENTS` statements are kept per connection (the least recently used one is deallocated). A list's
  page statement holds about 230 KB of the PostgreSQL backend's memory, so a connection keeps at most about
  23 MB of them.
- Prepared statements belong to the session and survive a rolled-back transaction; a new connection starts
  with none. A statement is named by a hash of its text, so a name can only ever mean that text (a pooler in
  transaction mode, which the README rules out, would give an error, never another query's rows). PREPARE is
  a round trip of its own: a query that fails, fails with its own error, and leaves nothing behind that is
  not counted.
- A migration that changes a column under a statement ("cached plan must not change result type"): the
  statement is let go; outside a transaction the query runs again as text at once, inside one it fails that
  once.
- Left alone: queries with more than `MAX_PARAMS` parameters or with a `;` or `--` in their text, queries while
  Django logs them (DEBUG, or a test capturing queries: they show the SQL, not `EXECUTE`), server-side cursors
  (`iterator()`), `executemany`, and anything that is not a plain SELECT (or the lists' page with its count,
  `SELECTS`: a SELECT reading a WITH query that is one, `api_base.ListPlan._windowed`).
"""

import hashlib
from collections import OrderedDict

from django.conf import settings
from django.db import DatabaseError

MAX_STATEMENTS = 100
MAX_SEEN = 5000
MAX_PARAMS = 50  # a query with more (`id IN` a long list) is seldom run twice: it is left as it is
# What a statement the wrapper prepares starts with: a SELECT, or a SELECT after a WITH query that is a SELECT.
SELECTS = ("SELECT ", "WITH listed_page AS (SELECT ")


class PreparedSelects:
    """The execute wrapper of one connection (`connection.execute_wrappers`)."""

    def __init__(self):
        self.statements = OrderedDict()  # text -> statement name, least recently used first
        self.seen = set()  # hashes of texts run once
        self.stale = set()  # names still prepared on the server, no longer used (their table changed)

    def __call__(self, execute, sql, params, many, context):
        connection = context["connection"]
        cursor = context["cursor"].cursor
        if (
            many
            or not sql.startswith(SELECTS)
            or (params is not None and len(params) > MAX_PARAMS)
            or connection.queries_logged
            or cursor.name
        ):
            return execute(sql, params, many, context)
        # What psycopg2 would send; it is sent as it is (psycopg2 writes no parameters into it a second time).
        with connection.wrap_database_errors:
            text = cursor.mogrify(sql, params).decode() if params is not None else sql
        if ";" in text or "--" in text:  # PREPARE takes one statement; a ';' or '--' in a value is left alone too
            return execute(text, None, many, context)
        name = self.statements.get(text)
        if name is not None:
            self.statements.move_to_end(text)
            return self._execute(execute, text, name, many, context)
        key = hash(text)
        if key not in self.seen:
            if len(self.seen) >= MAX_SEEN:
                self.seen.clear()
            self.seen.add(key)
            return execute(text, None, many, context)
        self.seen.discard(key)
        if len(self.statements) >= MAX_STATEMENTS:
            oldest_text, oldest = next(iter(self.statements.items()))
            execute(f"DEALLOCATE {oldest}", None, False, context)
            del self.statements[oldest_text]
        # Named by the text: behind a pooler that mixed up sessions a name could only ever mean this same text.
        name = "dj_" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
        if name in self.stale:
            execute(f"DEALLOCATE {name}", None, False, context)
            self.stale.discard(name)
        execute(f"PREPARE {name} AS {text}", None, False, context)  # parsed only: the query's own errors come next
        self.statements[text] = name
        return self._execute(execute, text, name, many, context)

    def _execute(self, execute, text, name, many, context):
        try:
            return execute(f"EXECUTE {name}", None, many, context)
        except DatabaseError as error:
            # "cached plan must not change result type": a migration changed a column under the statement. It is
            # let go; outside a transaction the query runs again as text, inside one it fails this once.
            if getattr(error.__cause__, "pgcode", None) != "0A000":
                raise
            del self.statements[text]
            self.stale.add(name)
            if not context["connection"].get_autocommit():
                raise
            execute(f"DEALLOCATE {name}", None, False, context)
            self.stale.discard(name)
            return execute(text, None, many, context)


def install(sender, connection, **kwargs):
    """`connection_created`: a fresh wrapper for each new PostgreSQL connection (it has no statements yet)."""
    if connection.vendor != "postgresql" or not settings.PREPARED_SELECTS:
        return
    connection.execute_wrappers[:] = [w for w in connection.execute_wrappers if not isinstance(w, PreparedSelects)]
    connection.execute_wrappers.insert(0, PreparedSelects())
