"""API tokens read the token, the user and the user's positions in one query (governance.authentication).

The shortcut must give the scope `scope_of` gives, and must notice at the next request everything that
changes who may see what: a token deleted, a new password, a user deactivated, a position granted or taken
away, a resident moved out. On PostgreSQL the query is a prepared statement of each connection.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance import services
from governance.models import Position, Resident, Role, User
from governance.selectors import scope_of


def token_client(user):
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def scope_through_token(user):
    from governance.authentication import TokenAuthentication

    key = Token.objects.get_or_create(user=user)[0].key
    found, token = TokenAuthentication().authenticate_credentials(key)
    assert found.pk == user.pk and token.key == key and token.user is found
    return found._governance_scope


@pytest.mark.parametrize(
    "persona",
    ["admin_user", "street_staff", "community_staff", "grid_worker", "department_staff", "resident", "outsider"],
)
def test_the_token_query_gives_the_scope_of_the_positions(request, city, persona):
    user = request.getfixturevalue(persona)
    assert scope_through_token(user) == scope_of(User.objects.get(pk=user.pk))


def test_several_positions_and_none_give_the_same_scope_both_ways(city, street_staff, resident_record):
    services.position_grant(by=None, user=street_staff, role=Role.SECRETARY, unit=city.c2)
    services.position_grant(by=None, user=street_staff, role=Role.RESIDENT, resident=resident_record)
    scope = scope_through_token(street_staff)
    assert scope == scope_of(User.objects.get(pk=street_staff.pk))
    assert scope.paths() == (city.s1.path, city.c2.path) and scope.resident_ids == (resident_record.pk,)

    nobody = User.objects.create_user("nobody", password="x-long-password-1")
    assert scope_through_token(nobody) == scope_of(User.objects.get(pk=nobody.pk))
    assert not scope_through_token(nobody).is_staff_member


def test_one_query_reads_the_token_the_user_and_the_positions(street_staff):
    client = token_client(street_staff)
    assert client.get("/api/v1/case-categories/").status_code == 200  # a new connection prepares it first
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/case-categories/").status_code == 200
    assert len(queries) == 2, [q["sql"][:80] for q in queries]  # the token and scope; the categories


def test_a_moved_out_resident_keeps_the_token_but_not_the_scope(resident, resident_record):
    client = token_client(resident)
    assert client.get("/api/v1/me/").status_code == 200
    assert scope_through_token(resident).resident_ids == (resident_record.pk,)
    Resident.objects.filter(pk=resident_record.pk).update(moved_out_on="2026-01-01")
    assert scope_through_token(resident).resident_ids == ()


def test_everything_that_changes_access_counts_from_the_next_request(city, make_case, grid_worker):
    case = make_case()  # in G1, the grid worker's grid
    client = token_client(grid_worker)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    Position.objects.filter(user=grid_worker).delete()
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 404  # the position is gone: out of scope
    services.position_grant(by=None, user=grid_worker, role=Role.GRID_WORKER, unit=city.g1)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    User.objects.filter(pk=grid_worker.pk).update(is_active=False)
    response = client.get(f"/api/v1/cases/{case.pk}/")
    assert response.status_code == 401 and response.json()["detail"]
    User.objects.filter(pk=grid_worker.pk).update(is_active=True)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    grid_worker.refresh_from_db()
    grid_worker.set_password("another-long-password-7")
    grid_worker.save()  # a new password deletes the tokens
    response = client.get(f"/api/v1/cases/{case.pk}/")
    assert response.status_code == 401 and response.json()["detail"]


def test_an_unknown_token_is_refused_in_chinese(city):
    response = APIClient(HTTP_AUTHORIZATION="Token " + "0" * 40).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["detail"] == "认证令牌无效。"


@pytest.mark.parametrize("key", ["a\x00b", "f" * 41, "'OR'1'='1'--"])
def test_a_key_no_token_can_have_is_a_401_not_a_500(city, key):
    response = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["detail"] in {"认证令牌无效。", "不正确的身份认证信息。"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_new_connection_prepares_the_query_again(settings, city, street_staff):
    settings.TOKEN_CACHE_SECONDS = 0  # every request asks (kept tokens: below)
    client = token_client(street_staff)
    assert client.get("/api/v1/me/").json()["username"] == "street_staff"
    connection.close()  # as CONN_MAX_AGE or a broken connection would: the prepared statement went with it
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/me/").json()["username"] == "street_staff"
    assert any(q["sql"].startswith("PREPARE governance_token_scope") for q in queries)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/me/").json()["username"] == "street_staff"
    assert not any(q["sql"].startswith("PREPARE") for q in queries)
    assert any(q["sql"].startswith("EXECUTE governance_token_scope") for q in queries)


# --- Kept tokens (PostgreSQL, outside a transaction, as a worker serves requests) ------------------------------


def token_queries(queries) -> int:
    """How many times the token query ran (not its preparing: a connection new to the test prepares it first)."""
    return sum(q["sql"].startswith("EXECUTE governance_token_scope") for q in queries)


def delete_tokens_elsewhere(user):
    """Delete the user's tokens over a second connection to the test database, as another worker would."""
    import psycopg2

    other = psycopg2.connect(**connection.get_connection_params())
    other.autocommit = True
    try:
        with other.cursor() as cursor:
            cursor.execute("DELETE FROM authtoken_token WHERE user_id = %s", [user.pk])
    finally:
        other.close()


def wait_for_the_notification():
    """PostgreSQL sends a notification to the listening connections as the writer's commit ends, not before the
    writer hears of its commit: wait until it has arrived on this worker's socket, as a request a moment later
    would find it."""
    import select

    assert select.select([connection.connection], [], [], 5)[0], "no notification arrived"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_token_is_read_without_a_query(street_staff):
    client = token_client(street_staff)
    assert client.get("/api/v1/me/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/me/").json()["username"] == "street_staff"
    assert token_queries(queries) == 0, [q["sql"][:80] for q in queries]
    with CaptureQueriesContext(connection) as queries:  # a key no token has is asked every time
        assert APIClient(HTTP_AUTHORIZATION="Token " + "0" * 40).get("/api/v1/me/").status_code == 401
        assert APIClient(HTTP_AUTHORIZATION="Token " + "0" * 40).get("/api/v1/me/").status_code == 401
    assert token_queries(queries) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_kept_tokens_follow_everything_that_changes_access(city, make_case, grid_worker, community_staff, admin_user):
    """What `test_everything_that_changes_access_counts_from_the_next_request` asks, with the tokens kept: each
    change empties them through its table's trigger, and the next request reads them anew."""
    case = make_case()  # in G1, the grid worker's grid, in C1
    client = token_client(grid_worker)
    for _ in range(2):
        assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    Position.objects.filter(user=grid_worker).delete()
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 404
    services.position_grant(by=None, user=grid_worker, role=Role.GRID_WORKER, unit=city.g1)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    User.objects.filter(pk=grid_worker.pk).update(is_active=False)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 401
    User.objects.filter(pk=grid_worker.pk).update(is_active=True)
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200

    staff = token_client(community_staff)
    assert staff.get(f"/api/v1/cases/{case.pk}/").status_code == 200
    services.unit_move(by=admin_user, unit=city.g1, parent=city.c2)  # the grid, and its case, leave C1
    assert staff.get(f"/api/v1/cases/{case.pk}/").status_code == 404
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 200  # still the grid worker's grid

    grid_worker.refresh_from_db()
    grid_worker.set_password("another-long-password-7")
    grid_worker.save()  # a new password deletes the tokens
    assert client.get(f"/api/v1/cases/{case.pk}/").status_code == 401


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_resident_scope_follows_a_move_out(resident, resident_record):
    assert scope_through_token(resident).resident_ids == (resident_record.pk,)
    assert scope_through_token(resident).resident_ids == (resident_record.pk,)  # kept
    Resident.objects.filter(pk=resident_record.pk).update(moved_out_on="2026-01-01")
    assert scope_through_token(resident).resident_ids == ()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_token_deleted_by_another_worker_counts_from_the_next_request(street_staff):
    client = token_client(street_staff)
    for _ in range(2):
        assert client.get("/api/v1/me/").status_code == 200
    delete_tokens_elsewhere(street_staff)
    wait_for_the_notification()
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_new_connection_keeps_nothing_of_the_old_one(street_staff):
    """A notification sent while a worker's connection was closed never reaches it: what it kept went with it."""
    client = token_client(street_staff)
    for _ in range(2):
        assert client.get("/api/v1/me/").status_code == 200
    connection.close()  # as CONN_MAX_AGE or a broken connection would
    delete_tokens_elsewhere(street_staff)
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_nothing_is_kept_with_the_setting_off(settings, street_staff):
    settings.TOKEN_CACHE_SECONDS = 0
    client = token_client(street_staff)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get("/api/v1/me/").status_code == 200
    assert token_queries(queries) == 3


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_table_of_the_token_query_notifies_when_written():
    """The kept tokens are emptied by the notifications of the triggers of migration governance 0012: every table
    the token query reads must have one (a column added to the query from another table fails here first)."""
    import re

    from governance.authentication import _compiled

    read = set(re.findall(r'(?:FROM|JOIN) "(\w+)"', _compiled(connection.alias)[0]))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = 'governance_auth_changed' AND t.tgenabled = 'A'"
        )
        notifying = {name for (name,) in cursor.fetchall()}
    assert read == notifying and "governance_position" in read, (read, notifying)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_token_is_read_again_after_the_seconds_kept(settings, monkeypatch, street_staff):
    """Whatever would stop the notifications (a trigger dropped by hand) is bounded by API_TOKEN_CACHE_SECONDS."""
    from governance import authentication

    settings.TOKEN_CACHE_SECONDS = 60
    now = [1000.0]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: now[0])
    client = token_client(street_staff)
    with CaptureQueriesContext(connection) as queries:
        for step in (0, 59, 2):  # read, kept at 59 s, read again at 61 s
            now[0] += step
            assert client.get("/api/v1/me/").status_code == 200
    assert token_queries(queries) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_nothing_is_kept_where_a_trigger_is_missing_or_not_always_enabled(street_staff):
    """A database whose triggers are not all there and enabled ALWAYS (a deploy serving before `migrate`, a trigger
    disabled for a bulk fix) would never say that a token changed: nothing is kept on a connection to it."""
    client = token_client(street_staff)
    for change in ("DISABLE TRIGGER", "ENABLE TRIGGER"):  # off; on, but not for a replica's writes
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE governance_position {change} governance_auth_changed")
        try:
            connection.close()  # a new connection looks again
            with CaptureQueriesContext(connection) as queries:
                for _ in range(3):
                    assert client.get("/api/v1/me/").status_code == 200
            assert token_queries(queries) == 3, change
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE governance_position ENABLE ALWAYS TRIGGER governance_auth_changed")
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get("/api/v1/me/").status_code == 200
    assert token_queries(queries) == 1  # all there again: kept
