"""The demo-city generator: sizes, tree consistency, valid personal data, the nine logins, re-runs."""

import io
from collections import Counter

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from governance.management.commands.seed_demo import LOGINS, SCALES, apportion
from governance.models import (
    LEVEL_DEPTH,
    PARTY_ORG_KIND_FOR_LEVEL,
    Department,
    GridTeamMember,
    Household,
    Level,
    PartyOrg,
    Position,
    Resident,
    ResidentTag,
    Role,
    TeamRole,
    Unit,
    User,
)
from governance.validators import id_number_problem

PASSWORD = "seed-pass-123"


def seed(*args):
    out = io.StringIO()
    call_command("seed_demo", "--password", PASSWORD, *args, stdout=out)
    return out.getvalue()


def counts():
    return {
        "units": Unit.objects.count(),
        "party_orgs": PartyOrg.objects.count(),
        "households": Household.objects.count(),
        "residents": Resident.objects.count(),
        "tags": Resident.tags.through.objects.count(),
        "users": User.objects.count(),
        "positions": Position.objects.count(),
        "team": GridTeamMember.objects.count(),
        "departments": Department.objects.count(),
    }


def level_counts():
    return dict(Counter(Unit.objects.values_list("level", flat=True)))


def position(username, role):
    return Position.objects.select_related("unit", "resident__household__building").get(
        user__username=username, role=role
    )


@pytest.fixture
def tiny(db):
    return seed("--scale", "tiny")


def test_apportion_is_exact_and_keeps_the_minimum():
    parts = apportion(100, [0, 1, 5, 0.5], minimum=2)
    assert sum(parts) == 100
    assert min(parts) >= 2
    assert parts[2] == max(parts)
    with pytest.raises(ValueError):
        apportion(3, [1, 1], minimum=2)


def test_tiny_city_has_the_stated_sizes(tiny):
    scale = SCALES["tiny"]
    assert level_counts() == {
        Level.STREET: scale.streets,
        Level.COMMUNITY: scale.communities,
        Level.GRID: scale.grids,
        Level.BUILDING: scale.buildings,
    }
    assert Household.objects.count() == scale.households
    assert Resident.objects.count() == scale.residents
    assert Department.objects.count() == 10
    assert "演示城市已生成" in tiny
    assert "http://127.0.0.1:8000/" in tiny
    assert PASSWORD in tiny


def test_tree_is_consistent(tiny):
    assert Unit.objects.find_problems() == ([], [], [], [], [])
    for unit in Unit.objects.all():
        assert unit.depth == LEVEL_DEPTH[unit.level]
        assert unit.numchild == Unit.objects.filter(path__startswith=unit.path, depth=unit.depth + 1).count()
    assert [u.level for u in Unit.objects.get_tree()][:4] == [Level.STREET, Level.COMMUNITY, Level.GRID, Level.BUILDING]
    assert not Unit.objects.exclude(level=Level.GRID).exclude(grid_kind="").exists()
    assert not Unit.objects.filter(level=Level.GRID, grid_kind="").exists()
    assert Unit.objects.values("code").distinct().count() == Unit.objects.count()
    assert not Household.objects.exclude(building__level=Level.BUILDING).exists()


def test_every_unit_has_exactly_one_party_org_of_its_kind(tiny):
    assert PartyOrg.objects.count() == Unit.objects.count()
    for org in PartyOrg.objects.select_related("unit"):
        assert org.kind == PARTY_ORG_KIND_FOR_LEVEL[org.unit.level]
        assert org.name.startswith(org.unit.name)


def test_personal_data_is_valid_and_unique(tiny):
    rows = list(Resident.objects.values_list("id_number", "birth_date", "gender", "phone"))
    ids = [r[0] for r in rows]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    for id_number, birth_date, gender, phone in rows:
        assert id_number_problem(id_number) is None, id_number
        assert id_number[6:14] == birth_date.strftime("%Y%m%d")
        assert (int(id_number[16]) % 2 == 1) == (gender == "male")
        assert phone == "" or (len(phone) == 11 and phone[0] == "1" and phone[1] in "3456789" and phone.isdigit())


def test_the_nine_logins_authenticate(tiny):
    for username in LOGINS:
        user = authenticate(username=username, password=PASSWORD)
        assert user is not None, username
        assert user.name, username
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert Position.objects.filter(user=admin, role=Role.ADMINISTRATOR).exists()
    assert position("department_staff", Role.DEPARTMENT_STAFF).department.name == "城管局"


def test_personas_sit_where_the_brief_says(tiny):
    street = position("street_staff", Role.STREET_STAFF).unit
    community = position("community_staff", Role.COMMUNITY_STAFF).unit
    secretary = position("secretary", Role.SECRETARY).unit
    grid = position("grid_worker", Role.GRID_WORKER).unit
    grid_2 = position("grid_worker_2", Role.GRID_WORKER).unit
    home = position("resident", Role.RESIDENT).resident.household.building
    home_2 = position("resident_2", Role.RESIDENT).resident.household.building

    assert street.level == Level.STREET and community.level == Level.COMMUNITY and grid.level == Level.GRID
    assert community.path.startswith(street.path)
    assert secretary == community
    assert Position.objects.filter(role=Role.SECRETARY, unit=community).count() == 1
    assert grid.path.startswith(community.path)
    assert grid.ancestor_path(Level.COMMUNITY) != grid_2.ancestor_path(Level.COMMUNITY)
    assert home.path.startswith(grid.path)
    assert home_2.path.startswith(grid_2.path)
    assert home_2.ancestor_path(Level.COMMUNITY) != home.ancestor_path(Level.COMMUNITY)


def test_staff_and_teams_cover_every_unit(tiny):
    for grid in Unit.objects.filter(level=Level.GRID):
        assert Position.objects.filter(role=Role.GRID_WORKER, unit=grid).count() == 1
        roles = Counter(GridTeamMember.objects.filter(grid=grid).values_list("team_role", flat=True))
        assert roles[TeamRole.GRID_WORKER] == 1
        assert roles[TeamRole.COMMUNITY_WORKER] == 1
        assert roles[TeamRole.POLICE] == 1
        assert sum(roles.values()) >= 4  # 1+1+1+N
    for community in Unit.objects.filter(level=Level.COMMUNITY):
        assert Position.objects.filter(role=Role.COMMUNITY_STAFF, unit=community).count() >= 2
        assert Position.objects.filter(role=Role.SECRETARY, unit=community).count() == 1
    for street in Unit.objects.filter(level=Level.STREET):
        assert Position.objects.filter(role=Role.STREET_STAFF, unit=street).exists()
    for department in Department.objects.all():
        assert Position.objects.filter(role=Role.DEPARTMENT_STAFF, department=department).exists()


def test_rerun_refuses_and_changes_nothing(tiny):
    before = counts()
    out = seed("--scale", "tiny")
    assert "已经存在" in out
    assert "--reset" in out
    assert counts() == before


def test_reset_rebuilds_the_same_city(tiny):
    before = counts()
    names = list(Resident.objects.order_by("id_number").values_list("name", "id_number")[:20])
    out = seed("--scale", "tiny", "--reset")
    assert "演示城市已生成" in out
    assert counts() == before
    assert list(Resident.objects.order_by("id_number").values_list("name", "id_number")[:20]) == names
    assert authenticate(username="grid_worker", password=PASSWORD) is not None


def test_reset_switches_scale(tiny):
    seed("--scale", "demo", "--reset")
    assert level_counts()[Level.GRID] == SCALES["demo"].grids


def test_generated_password_is_printed(db):
    out = io.StringIO()
    call_command("seed_demo", "--scale", "tiny", stdout=out)
    text = out.getvalue()
    line = next(line for line in text.splitlines() if line.strip().startswith("grid_worker "))
    password = line.split()[-1]
    assert authenticate(username="grid_worker", password=password) is not None


@pytest.mark.django_db
def test_demo_city_has_the_stated_sizes():
    seed()  # the default scale is demo (its build time is a benchmark: docs/PERFORMANCE.md, not a test)
    assert level_counts() == {Level.STREET: 2, Level.COMMUNITY: 6, Level.GRID: 40, Level.BUILDING: 300}
    assert Household.objects.count() == 5_000
    assert Resident.objects.count() == 12_000
    assert Resident.objects.values("id_number").distinct().count() == 12_000
    party = Resident.objects.filter(tags__code=ResidentTag.PARTY_MEMBER).count()
    assert 0.06 <= party / 12_000 <= 0.10
    assert Household.objects.filter(is_party_central=True).exists()
    assert Resident.objects.filter(tags__code="elderly_alone").exists()
    assert Position.objects.filter(role=Role.GRID_WORKER).values("unit").distinct().count() == 40
