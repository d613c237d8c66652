"""The tree's level rules, moves and deletes, in the service and in the database."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from governance import selectors, services
from governance.errors import DomainError, InvalidInput, NotAllowed
from governance.models import Level, PartyOrg, PartyOrgKind, Unit

from ..factories import HouseholdFactory, ResidentFactory, UserFactory


def test_units_take_the_level_below_their_parent_and_get_a_party_org(city):
    assert [city.s1.level, city.c1.level, city.g1.level, city.b1.level] == ["street", "community", "grid", "building"]
    assert city.c1.party_org.kind == PartyOrgKind.COMMUNITY_COMMITTEE
    assert city.c1.party_org.name == "第一社区党委"
    assert PartyOrg.objects.count() == Unit.objects.count()


def test_a_community_cannot_be_created_as_a_root(db):
    with pytest.raises(InvalidInput) as exc:
        services.unit_create(by=None, name="孤儿社区", code="X1", level=Level.COMMUNITY)
    assert "街道" in str(exc.value.message)
    assert not Unit.objects.exists()


def test_asking_for_the_wrong_level_under_a_parent_is_refused(city):
    with pytest.raises(InvalidInput) as exc:
        services.unit_create(by=None, name="某楼", code="X2", parent=city.c1, level=Level.BUILDING)
    assert exc.value.field == "level"
    assert "网格" in str(exc.value.message)


def test_nothing_goes_below_a_building(city):
    with pytest.raises(InvalidInput):
        services.unit_create(by=None, name="某室", code="X3", parent=city.b1)


def test_only_grids_have_a_grid_kind(city):
    with pytest.raises(InvalidInput):
        services.unit_create(by=None, name="某社区", code="X4", parent=city.s1, grid_kind="market")


def test_unit_codes_are_unique(city):
    with pytest.raises(InvalidInput) as exc:
        services.unit_create(by=None, name="重复", code="C1", parent=city.s1)
    assert exc.value.field == "code"


def test_the_database_refuses_a_level_that_does_not_match_the_depth(city):
    with pytest.raises(IntegrityError), transaction.atomic():
        Unit.objects.filter(pk=city.g1.pk).update(level=Level.COMMUNITY)


def test_the_database_refuses_a_grid_kind_on_a_community(city):
    with pytest.raises(IntegrityError), transaction.atomic():
        Unit.objects.filter(pk=city.c1.pk).update(grid_kind="market")


def test_moving_a_grid_to_another_community_takes_its_buildings_and_residents(city, admin_user, community_staff):
    resident = ResidentFactory(household=HouseholdFactory(building=city.b2))
    assert selectors.residents_visible_to(community_staff).filter(pk=resident.pk).exists()

    services.unit_move(by=admin_user, unit=city.g2, parent=city.c2)

    city.g2.refresh_from_db()
    city.b2.refresh_from_db()
    assert city.g2.path.startswith(city.c2.path)
    assert city.b2.path.startswith(city.g2.path)
    assert not any(Unit.objects.find_problems())
    assert not selectors.residents_visible_to(community_staff).filter(pk=resident.pk).exists()
    c2_staff = UserFactory()
    services.position_grant(by=None, user=c2_staff, role="community_staff", unit=city.c2)
    assert selectors.residents_visible_to(c2_staff).filter(pk=resident.pk).exists()


def test_moving_a_grid_under_a_street_is_refused_with_a_reason(city, admin_user):
    with pytest.raises(DomainError) as exc:
        services.unit_move(by=admin_user, unit=city.g1, parent=city.s2)
    assert "只能移动到社区下" in str(exc.value.message)
    city.g1.refresh_from_db()
    assert city.g1.path.startswith(city.c1.path)


def test_a_street_cannot_be_moved(city, admin_user):
    with pytest.raises(DomainError):
        services.unit_move(by=admin_user, unit=city.s1, parent=city.s2)


def test_only_administrators_move_units(city, street_staff):
    with pytest.raises(NotAllowed):
        services.unit_move(by=street_staff, unit=city.g1, parent=city.c2)


def test_a_unit_with_children_or_households_is_not_deleted(city, admin_user):
    with pytest.raises(DomainError) as exc:
        services.unit_delete(by=admin_user, unit=city.g1)
    assert "下级单元" in str(exc.value.message)
    HouseholdFactory(building=city.b1)
    with pytest.raises(DomainError) as exc:
        services.unit_delete(by=admin_user, unit=city.b1)
    assert "住户" in str(exc.value.message)
    assert Unit.objects.filter(pk=city.b1.pk).exists()


def test_an_empty_unit_is_deleted_with_its_party_org(city, admin_user):
    services.unit_delete(by=admin_user, unit=city.b2)
    assert not Unit.objects.filter(pk=city.b2.pk).exists()
    city.g2.refresh_from_db()
    assert city.g2.numchild == 0
    assert PartyOrg.objects.count() == Unit.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_additions_under_one_parent_keep_the_tree_consistent():
    """Twelve staff adding buildings to the same grid at once: every building gets its own path and the
    grid's child count is exact (the parent row is locked while a child is added)."""
    street = services.unit_create(by=None, name="并发街道", code="PS")
    community = services.unit_create(by=None, name="并发社区", code="PC", parent=street)
    grid = services.unit_create(by=None, name="并发网格", code="PG", parent=community)
    errors = []
    barrier = threading.Barrier(12)

    def add(i):
        try:
            barrier.wait()
            services.unit_create(by=None, name=f"{i}栋", code=f"PB{i}", parent=Unit.objects.get(pk=grid.pk))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    grid.refresh_from_db()
    assert grid.numchild == 12
    assert Unit.objects.filter(path__startswith=grid.path, depth=4).count() == 12
    assert not any(Unit.objects.find_problems())
