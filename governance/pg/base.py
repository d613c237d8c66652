"""Django's PostgreSQL backend, with a health check that costs no round trip while the server has said nothing.

With `CONN_HEALTH_CHECKS` (the settings turn it on with `DATABASE_URL`) Django checks a kept connection at the
start of each request by running `SELECT 1` on it: a round trip to the server before every request's first query,
about a tenth of what a page of the API costs the two processes under load (docs/PERFORMANCE.md).

Here a kept connection is first asked without a word to the server: whether anything has arrived on its socket
while it was idle. A server that ends a session says so before it closes it (a restart, `pg_terminate_backend`,
`idle_session_timeout`, a crash of another backend: an error message, then the end of the connection), and a
closed socket reads as readable too. When something has arrived, or the socket cannot be asked, Django's own
check runs (`SELECT 1`) and a dead connection is replaced before the request uses it, as before; when what
arrived was notifications only (`_only_notified`), it is read and the connection is used without a word. Only a
connection lost without a packet (a cable pulled, a firewall forgetting it) passes the check and fails the
request's first query; Django's `SELECT 1` would have waited for it as long."""

import select

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        try:
            poller = select.poll()
            poller.register(self.connection.fileno(), select.POLLIN)
            quiet = not poller.poll(0)
        except (OSError, ValueError):
            quiet = False
        return quiet or self._only_notified() or super().is_usable()

    def _only_notified(self) -> bool:
        """Whether what arrived was notifications only (a connection listening on `governance.authentication`'s
        channel gets one with every change to the tables of the API's tokens), read without a round trip and left
        in `notifies` for their reader. A message of the server while the connection is idle, such as the error
        that says a session is being ended, reaches psycopg2 as a notice, and then Django's own check decides."""
        if is_psycopg3:
            return False
        raw = self.connection
        del raw.notices[:]
        try:
            raw.poll()
        except self.Database.Error:
            return False
        return not raw.closed and not raw.notices
