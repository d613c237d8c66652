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
  with none. Each statement has a name of its own, so one whose PREPARE failed (the query's own error) is
  never confused with another.
- Left alone: queries with more than `MAX_PARAMS` parameters, queries while Django logs them (DEBUG, or a test capturing queries: they show the SQL, not
  `EXECUTE`), server-side cursors (`iterator()`), `executemany`, and anything that is not a plain SELECT.
"""

from collections import OrderedDict

from django.conf import settings

MAX_STATEMENTS = 100
MAX_SEEN = 5000
MAX_PARAMS = 50  # a query with more (`id IN` a long list) is seldom run twice: it is left as it is


class PreparedSelects:
    """The execute wrapper of one connection (`connection.execute_wrappers`)."""

    def __init__(self):
        self.statements = OrderedDict()  # text -> statement name, least recently used first
        self.seen = set()  # hashes of texts run once
        self.made = 0

    def __call__(self, execute, sql, params, many, context):
        cursor = context["cursor"].cursor
        if (
            many
            or not sql.startswith("SELECT ")
            or (params is not None and len(params) > MAX_PARAMS)
            or context["connection"].queries_logged
            or cursor.name
        ):
            return execute(sql, params, many, context)
        # What psycopg2 would send; it is sent as it is (psycopg2 writes no parameters into it a second time).
        text = cursor.mogrify(sql, params).decode() if params is not None else sql
        if ";" in text:  # PREPARE takes one statement (and a ';' in a value is not worth telling apart)
            return execute(text, None, many, context)
        name = self.statements.get(text)
        if name is not None:
            self.statements.move_to_end(text)
            return execute(f"EXECUTE {name}", None, many, context)
        key = hash(text)
        if key not in self.seen:
            if len(self.seen) >= MAX_SEEN:
                self.seen.clear()
            self.seen.add(key)
            return execute(text, None, many, context)
        self.seen.discard(key)
        self.made += 1
        name = f"dj_select_{self.made}"
        steps = []
        if len(self.statements) >= MAX_STATEMENTS:
            steps.append(f"DEALLOCATE {self.statements.popitem(last=False)[1]}")
        # One round trip: the last statement's rows are the cursor's.
        result = execute(";".join([*steps, f"PREPARE {name} AS {text}", f"EXECUTE {name}"]), None, many, context)
        self.statements[text] = name
        return result


def install(sender, connection, **kwargs):
    """`connection_created`: a fresh wrapper for each new PostgreSQL connection (it has no statements yet)."""
    if connection.vendor != "postgresql" or not settings.PREPARED_SELECTS:
        return
    connection.execute_wrappers[:] = [w for w in connection.execute_wrappers if not isinstance(w, PreparedSelects)]
    connection.execute_wrappers.insert(0, PreparedSelects())
