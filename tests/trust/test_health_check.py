"""A kept PostgreSQL connection is checked at the start of each request without a round trip while the server
has said nothing, and replaced when the server has ended it (governance.pg)."""

import select
import time

import psycopg2
import pytest
from django.db import connection

from governance.models import Unit

pytestmark = pytest.mark.postgres


def last_query_of(pid) -> str:
    """What PostgreSQL's activity view says the backend `pid` ran last, asked over a connection of its own."""
    other = psycopg2.connect(**connection.get_connection_params())
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone()[0]
    finally:
        other.close()


def terminate(pid):
    other = psycopg2.connect(**connection.get_connection_params())
    other.autocommit = True
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_quiet_connection_passes_without_a_query(city):
    assert connection.settings_dict["ENGINE"] == "governance.pg" and connection.health_check_enabled
    with connection.cursor() as cursor:
        cursor.execute("SELECT 42 AS the_last_query")
    pid = connection.connection.info.backend_pid
    assert connection.is_usable()
    assert last_query_of(pid) == "SELECT 42 AS the_last_query"  # no SELECT 1 was sent


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it(city):
    count = Unit.objects.count()
    pid = connection.connection.info.backend_pid
    terminate(pid)
    for _ in range(50):  # the server's farewell reaches the socket
        if not connection.is_usable():
            break
        time.sleep(0.02)
    assert not connection.is_usable()
    connection.health_check_done = False  # a new request (Django's request_started does this)
    assert Unit.objects.count() == count  # checked, closed and opened anew: no error
    assert connection.connection.info.backend_pid != pid


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_was_only_notified_passes_without_a_query(city):
    """A worker listening for changes to the API's tokens (governance.authentication) finds notifications on its
    socket after every such change: read without a round trip, and left for the token cache to see."""
    with connection.cursor() as cursor:
        cursor.execute("LISTEN governance_auth")
        cursor.execute("SELECT 43 AS the_last_query")
    pid = connection.connection.info.backend_pid
    other = psycopg2.connect(**connection.get_connection_params())
    other.autocommit = True
    try:
        with other.cursor() as cursor:
            cursor.execute("NOTIFY governance_auth")
    finally:
        other.close()
    for _ in range(250):  # the notification reaches the socket
        if select.select([connection.connection], [], [], 0)[0]:
            break
        time.sleep(0.02)
    assert connection.is_usable()
    assert last_query_of(pid) == "SELECT 43 AS the_last_query"  # no SELECT 1 was sent
    assert [n.channel for n in connection.connection.notifies] == ["governance_auth"]
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN governance_auth")
