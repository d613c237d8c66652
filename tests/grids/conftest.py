"""Cases for the personas' city: categories from the default catalogue, and `make_case`, which files a case
in G1 through the services and walks it to the state a test needs."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from grids import services
from grids.models import CaseCategory


def photo(name="photo.jpg", size=(64, 48), color=(200, 80, 40), fmt="JPEG"):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


@pytest.fixture
def categories(db):
    """`clutter`: whistle item, on-site allowed, public. `neighbours`: not a whistle item, private.
    `lift`: whistle item, not on site."""

    class C:
        clutter = CaseCategory.objects.get(code="city-clutter")
        neighbours = CaseCategory.objects.get(code="dispute-neighbours")
        lift = CaseCategory.objects.get(code="property-lift")
        group = CaseCategory.objects.get(code="city")

    return C


# The steps that take a case from `reported` to each state, and who takes them.
PATH = {
    "reported": [],
    "returned": ["return"],
    "escalated": ["escalate"],
    "dispatched": ["escalate", "dispatch"],
    "in_progress": ["escalate", "dispatch", "sign"],
    "handled": ["escalate", "dispatch", "sign", "handle"],
    "verified": ["escalate", "dispatch", "sign", "handle", "verify"],
    "closed": ["escalate", "dispatch", "sign", "handle", "verify", "rate"],
}


@pytest.fixture
def make_case(city, categories, grid_worker, community_staff, street_staff, department_staff):
    def make(state="reported", *, stars=5, by=None, category=None, affected_resident=None, now=None, **fields):
        fields.setdefault("title", "楼道堆放杂物")
        fields.setdefault("description", "1栋2单元楼道堆满纸箱，影响通行。")
        case = services.case_file(
            by=by or grid_worker,
            category=category or categories.clutter,
            grid=fields.pop("grid", city.g1),
            affected_resident=affected_resident,
            now=now,
            **fields,
        )
        steps = {
            "return": lambda c: services.case_return(case=c, by=community_staff, note="请补充照片"),
            "escalate": lambda c: services.case_escalate(case=c, by=community_staff, note="需城管执法"),
            "dispatch": lambda c: services.case_dispatch(case=c, by=street_staff, department=city.department, now=now),
            "sign": lambda c: services.case_sign(case=c, by=department_staff, now=now),
            "handle": lambda c: services.case_handle(case=c, by=department_staff, note="已清理", now=now),
            "verify": lambda c: services.case_verify(case=c, by=grid_worker, confirmed=True, now=now),
            "rate": lambda c: services.case_rate(case=c, by=community_staff, stars=stars, now=now),
        }
        for step in PATH[state]:
            case = steps[step](case)
        case.refresh_from_db()
        return case

    return make
