"""One object of every kind, in 第一街道 / 第一社区 / 第一网格, for the checks that walk every endpoint and page.

The fixtures of the apps' own conftests are shared here (pytest finds fixtures by name in this module)."""

import datetime as dt

import pytest
from django.utils import timezone

from governance.models import Household, PartyOrg, ResidentTag
from grids.models import CaseCategory
from mailbox import services as letter_services
from mailbox.models import LetterCategory
from points import services as points_services
from points import shop, tally
from points.models import Board, Reward, Rule, Tally
from tests.grids.conftest import categories, make_case, photo  # noqa: F401 (fixtures)
from tests.mailbox.conftest import category, make_letter, pdf  # noqa: F401 (fixtures)
from tests.points.conftest import award, make_rule, schemes  # noqa: F401 (fixtures)


@pytest.fixture
def world(personas, city, make_case, make_letter, make_rule, schemes, resident_record):  # noqa: F811
    """Everything a path can point at, each the one a persona of 第一网格's chain may see."""
    case = make_case("in_progress", photos=[photo()])
    last_month = (timezone.localdate().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    rule = make_rule(points=20, unit=city.s1)
    entry = points_services.points_record(
        by=personas["grid_worker"],
        resident=resident_record,
        rule=rule,
        occurred_on=last_month,
        evidence=photo("evidence.jpg"),
    )
    run = tally.tally_month(month=last_month)
    tally.boards_publish_all(month=last_month)
    board = Board.objects.get(month=last_month, unit=city.c1, scheme=schemes.resident)
    objection = tally.objection_file(by=personas["resident"], board=board, reason="名次不对")
    reward = shop.reward_create(
        by=personas["community_staff"],
        community=city.c1,
        scheme=schemes.resident,
        name="洗衣液",
        cost=5,
        stock=5,
        photo=photo("reward.jpg"),
    )
    redemption = shop.redemption_reserve(by=personas["resident"], reward=reward)
    letter = make_letter("replied", attachments=[pdf()])
    published = make_letter("closed", allow_publication=True, subject="小区路灯")
    published = letter_services.letter_publish(letter=published, by=personas["secretary"])
    notification = personas["resident"].notifications.order_by("pk").first()
    return {
        "unit": city.g1,
        "party_org": PartyOrg.objects.filter(unit=city.c1).first(),
        "household": Household.objects.get(pk=resident_record.household_id),
        "resident": resident_record,
        "department": city.department,
        "resident_tag": ResidentTag.objects.order_by("pk").first(),
        "case_category": CaseCategory.objects.order_by("pk").first(),
        "letter_category": LetterCategory.objects.order_by("pk").first(),
        "case": case,
        "case_photo": case.photos.first(),
        "rule": rule if rule.pk else Rule.objects.first(),
        "entry": entry,
        "tally_run": run,
        "tally": Tally.objects.filter(month=last_month, resident=resident_record).first(),
        "board": board,
        "objection": objection,
        "reward": reward if reward.pk else Reward.objects.first(),
        "redemption": redemption,
        "letter": letter,
        "attachment": letter.attachments.first(),
        "published_letter": published,
        "notification": notification,
    }
