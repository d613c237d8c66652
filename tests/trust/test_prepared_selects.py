"""Repeated SELECTs run as prepared statements of their connection (governance.prepared): planned once, and
still answering what the database holds now."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError, DataError
from django.test.utils import CaptureQueriesContext

from governance import prepared
from governance.models import Unit
from grids.models import Case

pytestmark = pytest.mark.postgres


def statements(runs=False):
    """The texts of the connection's own prepared SELECTs as PostgreSQL lists them (with how often each ran)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements WHERE name LIKE %s",
            ["dj\\_%"],
        )
        rows = cursor.fetchall()
    return rows if runs else [text for text, _ in rows]


@pytest.mark.django_db(transaction=True)
def test_a_list_read_again_is_prepared_and_still_shows_a_change_made_between_reads(make_case, street_staff, api):
    case = make_case("reported")
    client = api(street_staff)
    connection.close()  # a new connection: no statement of an earlier test counts
    first = client.get("/api/v1/cases/").json()["results"]
    assert statements() == []  # run once: not prepared
    # From the second read on, the list counted small is read with its count in one WITH query (ListPlan._windowed)
    assert client.get("/api/v1/cases/").json()["results"] == first
    assert client.get("/api/v1/cases/").json()["results"] == first
    Case.objects.filter(pk=case.pk).update(title="楼道灯已修好")
    fourth = client.get("/api/v1/cases/").json()["results"]
    assert [row["title"] for row in fourth if row["id"] == case.pk] == ["楼道灯已修好"]
    page = [runs for text, runs in statements(runs=True) if 'FROM "grids_case"' in text]
    assert page and set(page) == {2}  # the page's query: prepared on the third read, run again by the fourth


@pytest.mark.django_db(transaction=True)
def test_a_connection_keeps_at_most_max_statements(city, monkeypatch):
    monkeypatch.setattr(prepared, "MAX_STATEMENTS", 2)
    connection.close()  # a new connection starts with no statements
    units = list(Unit.objects.order_by("pk").values_list("pk", flat=True)[:3])
    for pk in units:
        for _ in range(2):
            assert Unit.objects.get(pk=pk).pk == pk
    kept = statements()
    assert len(kept) == 2  # the last two; the first was deallocated
    assert not any(f'"governance_unit"."id" = {units[0]} LIMIT' in text for text in kept)
    assert Unit.objects.get(pk=units[0]).pk == units[0]  # the one let go is run as text, then prepared again


@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_in_a_rolled_back_transaction_still_runs(city):
    connection.close()
    grid = Unit.objects.get(name="第一网格")

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        for _ in range(2):
            assert Unit.objects.get(pk=grid.pk).name == "第一网格"
        Unit.objects.filter(pk=grid.pk).update(name="改名后撤销")
        raise Undo
    assert Unit.objects.get(pk=grid.pk).name == "第一网格"
    assert any(f'"governance_unit"."id" = {grid.pk} LIMIT' in text for text in statements())


@pytest.mark.django_db(transaction=True)
def test_a_query_that_fails_fails_with_its_own_error_every_time_and_leaves_one_statement(city):
    connection.close()
    for _ in range(4):
        with pytest.raises(DataError, match="division by zero"), connection.cursor() as cursor:
            cursor.execute("SELECT 1 / %s", [0])
    assert [text.split(" AS ", 1)[1] for text in statements()] == ["SELECT 1 / 0"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 / %s", [1])
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_a_column_changed_under_a_statement_is_let_go(city):
    connection.close()

    def titles():
        with connection.cursor() as cursor:
            cursor.execute("SELECT title FROM prepared_probe WHERE id = %s", [1])
            return cursor.fetchall()

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id integer, title varchar(10))")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, '路灯')")
    try:
        assert titles() == titles() == [("路灯",)]  # prepared
        with connection.cursor() as cursor:  # as a migration's AlterField(max_length=200) does
            cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN title TYPE varchar(200)")
        assert titles() == [("路灯",)]  # outside a transaction: run again as text at once
        assert titles() == titles() == [("路灯",)]  # and prepared anew
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN title TYPE text")
        with pytest.raises(DatabaseError, match="cached plan"), transaction.atomic():
            titles()  # inside a transaction it fails this once
        assert titles() == titles() == [("路灯",)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE prepared_probe")


def test_logged_queries_show_their_sql_not_execute(city):
    for _ in range(3):
        Unit.objects.filter(level="grid").count()
    with CaptureQueriesContext(connection) as queries:
        assert Unit.objects.filter(level="grid").count() == 4
    assert [q["sql"][:6] for q in queries] == ["SELECT"]


@pytest.mark.django_db(transaction=True)
def test_server_side_cursors_are_left_alone(city):
    expected = list(Unit.objects.order_by("path").values_list("name", flat=True))
    for _ in range(3):
        assert list(Unit.objects.order_by("path").values_list("name", flat=True).iterator(chunk_size=2)) == expected


def test_two_statements_in_one_text_still_run(city):
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s; SELECT %s", ["甲;乙", 2])
            assert cursor.fetchone() == (2,)
