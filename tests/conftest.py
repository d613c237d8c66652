"""The test city and its people (the personas every test speaks of).

    第一街道 S1 ─┬─ 第一社区 C1 ─┬─ 第一网格 G1 ── 1栋 B1   (grid_worker, resident)
                 │               └─ 第二网格 G2 ── 2栋 B2
                 └─ 第二社区 C2 ─── 第三网格 G3 ── 3栋 B3   (grid_worker_2, resident_2)
    第二街道 S2 ─── 第三社区 C3 ─── 第四网格 G4 ── 4栋 B4   (outsider: street staff of S2)

street_staff at S1, community_staff and secretary at C1, department_staff at 城管局, admin everywhere.
"""

import os
from dataclasses import dataclass

import pytest
from django.db import connection
from rest_framework.test import APIClient

from governance import services
from governance.models import Department, DepartmentKind, GridTeamMember, ResidentTag, Role, Unit

from .factories import HouseholdFactory, ResidentFactory, UserFactory


def pytest_runtest_setup(item):
    """Tests that need PostgreSQL or the real broker skip without them, unless CI says they are required, in
    which case the skip becomes a failure (a skipped test would hide a gap)."""
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        message = "needs PostgreSQL (set DATABASE_URL)"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(message + " but REQUIRE_POSTGRES is set")
        pytest.skip(message)  # only without postgres, and never in CI (REQUIRE_POSTGRES)
    if item.get_closest_marker("broker") and not os.environ.get("CELERY_BROKER_URL"):
        message = "needs the Celery broker (set CELERY_BROKER_URL)"
        if os.environ.get("REQUIRE_BROKER"):
            pytest.fail(message + " but REQUIRE_BROKER is set")
        pytest.skip(message)  # only without a broker, and never in CI (REQUIRE_BROKER, beside REQUIRE_POSTGRES)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (the dashboards keep history figures there for minutes)."""
    from django.core.cache import cache

    from governance import catalogues
    from governance.api_base import forget_list_plans

    cache.clear()
    catalogues._LOCAL.clear()
    forget_list_plans()


CATALOGUES = (  # the data migrations' rows: a transactional test's flush empties their tables for the next one
    ("governance.migrations.0002_default_resident_tags", "add_tags"),
    ("grids.migrations.0002_default_categories", "load"),
    ("mailbox.migrations.0002_default_categories", "load"),
    ("points.migrations.0002_default_schemes", "load"),
)


@pytest.fixture(autouse=True)
def _catalogues_after_a_flush(request):
    """A test with `transaction=True` starts from a database another such test may have flushed: the default
    catalogues (tags, categories, schemes) are put back, as the data migrations wrote them."""
    marker = request.node.get_closest_marker("django_db")
    if not (marker and marker.kwargs.get("transaction")):
        return
    request.getfixturevalue("transactional_db")
    import importlib

    from django.apps import apps

    from governance.models import ResidentTag

    if ResidentTag.objects.exists():
        return
    for module, function in CATALOGUES:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def _tasks_run_in_the_test():
    """Tasks run eagerly in the test, even where CI sets CELERY_BROKER_URL for the whole run; the tests marked
    `broker` switch to the real broker and a worker of their own."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _administrators_sign_in_with_one_factor(settings):
    """The personas sign in with `force_login`, which has no second step; the tests of two-factor sign-in
    (tests/governance/test_login_security.py) switch the administrators' rule back on."""
    settings.TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class City:
    s1: Unit
    s2: Unit
    c1: Unit
    c2: Unit
    c3: Unit
    g1: Unit
    g2: Unit
    g3: Unit
    g4: Unit
    b1: Unit
    b2: Unit
    b3: Unit
    b4: Unit
    department: Department
    other_department: Department


@pytest.fixture
def city(db):
    def unit(name, code, parent=None, **details):
        return services.unit_create(by=None, name=name, code=code, parent=parent, **details)

    s1 = unit("第一街道", "S1")
    s2 = unit("第二街道", "S2")
    c1 = unit("第一社区", "C1", s1)
    c2 = unit("第二社区", "C2", s1)
    c3 = unit("第三社区", "C3", s2)
    g1 = unit("第一网格", "G1", c1, compound_name="幸福小区")
    g2 = unit("第二网格", "G2", c1)
    g3 = unit("第三网格", "G3", c2)
    g4 = unit("第四网格", "G4", c3)
    b1 = unit("1栋", "B1", g1, address="幸福路1号")
    b2 = unit("2栋", "B2", g2)
    b3 = unit("3栋", "B3", g3)
    b4 = unit("4栋", "B4", g4)
    department = Department.objects.create(name="城管局", code="CG", kind=DepartmentKind.CITY_MANAGEMENT)
    other = Department.objects.create(name="民政局", code="MZ", kind=DepartmentKind.CIVIL_AFFAIRS)
    return City(s1, s2, c1, c2, c3, g1, g2, g3, g4, b1, b2, b3, b4, department, other)


def _person(username, name, **position):
    user = UserFactory(username=username, name=name)
    if position:
        services.position_grant(by=None, user=user, **position)
    return user


@pytest.fixture
def admin_user(city):
    return _person("admin", "管理员", role=Role.ADMINISTRATOR)


@pytest.fixture
def street_staff(city):
    return _person("street_staff", "街道干部", role=Role.STREET_STAFF, unit=city.s1)


@pytest.fixture
def community_staff(city):
    return _person("community_staff", "社区工作者", role=Role.COMMUNITY_STAFF, unit=city.c1)


@pytest.fixture
def secretary(city):
    return _person("secretary", "书记", role=Role.SECRETARY, unit=city.c1)


@pytest.fixture
def grid_worker(city):
    return _person("grid_worker", "网格员", role=Role.GRID_WORKER, unit=city.g1)


@pytest.fixture
def grid_worker_2(city):
    return _person("grid_worker_2", "网格员二", role=Role.GRID_WORKER, unit=city.g3)


@pytest.fixture
def department_staff(city):
    return _person("department_staff", "部门人员", role=Role.DEPARTMENT_STAFF, department=city.department)


@pytest.fixture
def other_department_staff(city):
    return _person("other_department_staff", "民政局人员", role=Role.DEPARTMENT_STAFF, department=city.other_department)


@pytest.fixture
def outsider(city):
    """Street staff of the other street: the same role elsewhere in the tree."""
    return _person("outsider", "外街道干部", role=Role.STREET_STAFF, unit=city.s2)


@pytest.fixture
def resident_record(city):
    household = HouseholdFactory(building=city.b1, room="1单元101")
    resident = ResidentFactory(household=household, name="张三明", id_number="510603198001011237", phone="13812345678")
    resident.tags.add(ResidentTag.objects.get(code=ResidentTag.PARTY_MEMBER))
    return resident


@pytest.fixture
def resident(resident_record):
    return _person("resident", "张三明", role=Role.RESIDENT, resident=resident_record)


@pytest.fixture
def resident_2_record(city):
    return ResidentFactory(household=HouseholdFactory(building=city.b3, room="2单元202"), name="李四")


@pytest.fixture
def resident_2(resident_2_record):
    return _person("resident_2", "李四", role=Role.RESIDENT, resident=resident_2_record)


@pytest.fixture
def team(city):
    return GridTeamMember.objects.create(grid=city.g1, team_role="grid_worker", name="王网格", phone="13900001111")


@pytest.fixture
def personas(
    admin_user,
    street_staff,
    community_staff,
    secretary,
    grid_worker,
    grid_worker_2,
    department_staff,
    outsider,
    resident,
    resident_2,
):
    return {
        "admin": admin_user,
        "street_staff": street_staff,
        "community_staff": community_staff,
        "secretary": secretary,
        "grid_worker": grid_worker,
        "grid_worker_2": grid_worker_2,
        "department_staff": department_staff,
        "outsider": outsider,
        "resident": resident,
        "resident_2": resident_2,
    }


@pytest.fixture
def api():
    """`api(user)` gives an API client logged in as `user` (None: anonymous)."""

    def make(user=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make
