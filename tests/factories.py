"""Factories for the people and places of the test city. Units go through `services.unit_create` so that
their tree paths and party organisations are exactly what production builds."""

import factory
from factory.django import DjangoModelFactory

from governance import services
from governance.models import Department, DepartmentKind, Gender, Household, Resident, Unit, User
from governance.validators import id_number_check_digit


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    name = factory.Sequence(lambda n: f"用户{n}")
    password = factory.django.Password("pass-word-123")


class _UnitFactory(DjangoModelFactory):
    class Meta:
        model = Unit

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.unit_create(by=None, **kwargs)


class StreetFactory(_UnitFactory):
    name = factory.Sequence(lambda n: f"第{n}街道")
    code = factory.Sequence(lambda n: f"S{n:04d}")


class CommunityFactory(_UnitFactory):
    parent = factory.SubFactory(StreetFactory)
    name = factory.Sequence(lambda n: f"第{n}社区")
    code = factory.Sequence(lambda n: f"C{n:04d}")


class GridFactory(_UnitFactory):
    parent = factory.SubFactory(CommunityFactory)
    name = factory.Sequence(lambda n: f"第{n}网格")
    code = factory.Sequence(lambda n: f"G{n:04d}")
    grid_kind = "comprehensive"
    compound_name = factory.Sequence(lambda n: f"幸福{n}小区")


class BuildingFactory(_UnitFactory):
    parent = factory.SubFactory(GridFactory)
    name = factory.Sequence(lambda n: f"{n}栋")
    code = factory.Sequence(lambda n: f"B{n:05d}")
    address = factory.Sequence(lambda n: f"幸福路{n}号")


class DepartmentFactory(DjangoModelFactory):
    class Meta:
        model = Department

    name = factory.Sequence(lambda n: f"部门{n}")
    code = factory.Sequence(lambda n: f"D{n:03d}")
    kind = DepartmentKind.CITY_MANAGEMENT


class HouseholdFactory(DjangoModelFactory):
    class Meta:
        model = Household

    building = factory.SubFactory(BuildingFactory)
    room = factory.Sequence(lambda n: f"1单元{100 + n}")


def make_id_number(n: int, birth: str = "19800101", region: str = "510603") -> str:
    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + id_number_check_digit(first17)


class ResidentFactory(DjangoModelFactory):
    class Meta:
        model = Resident

    household = factory.SubFactory(HouseholdFactory)
    name = factory.Sequence(lambda n: f"居民{n}")
    gender = Gender.FEMALE
    id_number = factory.Sequence(lambda n: make_id_number(n, birth=f"19{50 + n % 40:02d}0101"))
    phone = factory.Sequence(lambda n: f"139{n:08d}")
