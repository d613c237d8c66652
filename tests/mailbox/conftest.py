"""Letters for the personas' city: `make_letter` writes one through the services (from `resident`, in B1 of
第一网格 / 第一社区 / 第一街道, to the community's `secretary` by default) and walks it to the state a test needs."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from governance import services as governance_services
from governance.models import Role
from mailbox import services
from mailbox.models import LetterCategory
from tests.factories import UserFactory


def image(name="photo.jpg", size=(64, 48)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 160, 40)).save(buffer, "JPEG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


def pdf(name="材料.pdf"):
    body = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    return SimpleUploadedFile(name, body, content_type="application/pdf")


@pytest.fixture
def category(db):
    return LetterCategory.objects.get(code="environment")


@pytest.fixture
def street_secretary(city):
    user = UserFactory(username="street_secretary", name="街道书记")
    governance_services.position_grant(by=None, user=user, role=Role.SECRETARY, unit=city.s1)
    return user


# The steps that take a letter from `submitted` to each state (the secretary replies herself).
PATH = {
    "submitted": [],
    "accepted": ["accept"],
    "rejected": ["reject"],
    "assigned": ["accept", "assign"],
    "drafted": ["accept", "assign", "draft"],
    "replied": ["accept", "assign", "reply"],
    "follow_up": ["accept", "assign", "reply", "follow-up"],
    "closed": ["accept", "assign", "reply", "rate"],
}


@pytest.fixture
def make_letter(city, category, resident, secretary, community_staff, grid_worker):
    def make(state="submitted", *, stars=5, by=None, allow_publication=False, now=None, **fields):
        fields.setdefault("subject", "楼道灯坏了")
        fields.setdefault("body", "我住1栋1单元，楼道灯坏了一个月，晚上老人上下楼很不方便，电话13812345678。")
        letter, _created = services.letter_submit(
            by=by or resident, category=category, allow_publication=allow_publication, now=now, **fields
        )
        steps = {
            "accept": lambda lt: services.letter_accept(letter=lt, by=secretary, now=now),
            "reject": lambda lt: services.letter_reject(letter=lt, by=secretary, note="不属于社区职责范围", now=now),
            "assign": lambda lt: services.letter_assign(
                letter=lt, by=secretary, unit=city.g1, note="请网格员核实", now=now
            ),
            "draft": lambda lt: services.letter_reply(letter=lt, by=grid_worker, text="已联系物业更换灯泡。", now=now),
            "reply": lambda lt: services.letter_reply(letter=lt, by=secretary, text="已安排物业三天内修好。", now=now),
            "follow-up": lambda lt: services.letter_follow_up(letter=lt, by=resident, note="三天了还没修？", now=now),
            "rate": lambda lt: services.letter_rate(letter=lt, by=resident, stars=stars, note="谢谢", now=now),
        }
        for step in PATH[state]:
            letter = steps[step](letter)
        letter.refresh_from_db()
        return letter

    return make
