"""The invariants command, and the backup path it serves: pg_dump, pg_restore into a new database, then
`check_invariants` against the restored copy (docs/BACKUP.md)."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from governance import invariants
from grids.models import Case
from mailbox.models import Letter
from points import services as points_services
from points.models import Account

ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def some_of_everything(make_case, make_letter, make_rule, award, grid_worker, resident_record):
    make_case("closed")
    make_case("in_progress")
    make_letter("closed")
    make_letter("assigned", subject="小区门口积水", body="下雨后门口积水很深。")
    rule = make_rule(points=10)
    entry = award(rule)
    award(make_rule(points=5))
    points_services.points_reverse(by=grid_worker, entry=entry, note="记错了")


def failed(findings) -> dict:
    return {f.check: f.ids for f in findings if not f.ok}


def test_all_invariants_hold_on_data_written_through_the_services(some_of_everything, capsys):
    assert failed(invariants.run()) == {}
    call_command("check_invariants")
    assert "all 13 invariants hold" in capsys.readouterr().out


def test_a_kept_balance_that_drifted_from_its_entries_is_found(some_of_everything):
    account = Account.objects.get()
    Account.objects.filter(pk=account.pk).update(balance=account.balance + 3)
    assert failed(invariants.run()) == {"ledger.balance": [account.pk]}
    with pytest.raises(CommandError, match="ledger.balance"):
        call_command("check_invariants")


def test_a_letter_to_a_unit_deeper_than_letters_go_is_found(some_of_everything, city):
    """Who sees a letter is read from the streets, communities and grids only (mailbox.selectors)."""
    letter = Letter.objects.filter(state="assigned").get()
    Letter.objects.filter(pk=letter.pk).update(assignee_unit=city.b1)
    assert failed(invariants.run()) == {"mailbox.units": [letter.pk]}
    Letter.objects.filter(pk=letter.pk).update(assignee_unit=city.g1, unit=city.g1)
    assert failed(invariants.run()) == {"mailbox.units": [letter.pk]}
    Letter.objects.filter(pk=letter.pk).update(unit=city.c1)
    assert failed(invariants.run()) == {}


def test_a_case_whose_community_or_street_is_not_its_grids_is_found(some_of_everything, city):
    """Who sees a case is read from the community and street kept on it (grids.selectors.cases_visible_to)."""
    case = Case.objects.filter(state="in_progress").get()
    Case.objects.filter(pk=case.pk).update(community=city.c2)
    assert failed(invariants.run()) == {"grids.units": [case.pk]}
    Case.objects.filter(pk=case.pk).update(community=city.c1, street=city.s2)
    assert failed(invariants.run()) == {"grids.units": [case.pk]}
    Case.objects.filter(pk=case.pk).update(street=city.s1)
    assert failed(invariants.run()) == {}


def test_a_case_or_letter_whose_state_disagrees_with_its_log_is_found(some_of_everything):
    case = Case.objects.filter(state="in_progress").get()
    letter = Letter.objects.filter(state="assigned").get()
    Case.objects.filter(pk=case.pk).update(state="closed")
    Letter.objects.filter(pk=letter.pk).update(state="submitted")
    assert failed(invariants.run()) == {"grids.state": [case.pk], "mailbox.state": [letter.pk]}


def test_a_gap_in_a_log_is_found(some_of_everything):
    case = Case.objects.filter(state="closed").get()
    middle = case.events.order_by("id")[2]
    middle.delete()
    assert "grids.chain" in failed(invariants.run())


def _psql_url(name: str) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _pg(*args, **kwargs):
    db = connection.settings_dict
    base = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres"]
    return subprocess.run([args[0], *base, *args[1:]], check=True, capture_output=True, text=True, **kwargs)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_dump_restores_into_a_new_database_where_the_invariants_and_the_ledger_trigger_hold(
    some_of_everything, tmp_path
):
    for tool in ("pg_dump", "pg_restore", "createdb", "dropdb", "psql"):
        assert shutil.which(tool), f"{tool} is needed for the backup path (postgresql-client)"
    dump = tmp_path / "grid.dump"
    _pg("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", connection.settings_dict["NAME"])
    restored = f"restore_{uuid.uuid4().hex[:8]}"
    _pg("createdb", restored)
    try:
        _pg("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored}", str(dump))
        env = {**os.environ, "DATABASE_URL": _psql_url(restored)}
        env.pop("DJANGO_SETTINGS_MODULE", None)

        def check():
            return subprocess.run(
                [sys.executable, "manage.py", "check_invariants"], cwd=ROOT, env=env, capture_output=True, text=True
            )

        result = check()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all 13 invariants hold" in result.stdout
        migrations = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--check"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert migrations.returncode == 0, migrations.stdout + migrations.stderr

        # The append-only trigger came back with the dump: the restored ledger still refuses an edit.
        edit = subprocess.run(
            ["psql", _psql_url(restored), "-c", "UPDATE points_entry SET points = points + 1"],
            capture_output=True,
            text=True,
        )
        assert edit.returncode != 0 and "append-only" in (edit.stderr + edit.stdout).lower().replace(" ", "-")

        _pg("psql", restored, "-c", "UPDATE points_account SET balance = balance + 1")
        broken = check()
        assert broken.returncode == 1 and "FAIL  ledger.balance" in broken.stdout
    finally:
        _pg("dropdb", "--if-exists", restored)
