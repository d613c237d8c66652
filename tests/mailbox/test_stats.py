"""The mailbox statistics on a small known month, who may read them, and their constant query count."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from mailbox import services
from mailbox.stats import letter_stats

SH = ZoneInfo("Asia/Shanghai")
NOV = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SH)  # a Monday
OCT = dt.datetime(2026, 10, 12, 10, 0, tzinfo=SH)


@pytest.fixture
def november(make_letter, secretary, street_secretary, resident, city, community_staff, category, settings):
    """Six letters of November 2026 to 第一社区 and one to 第一街道, one of October:
    - a: replied on time, 5 stars;  b: replied on time, 4 stars;  c: replied late, 2 stars
    - d: replied, left unrated for seven days;  e: rejected;  f: residents speak, waiting (overdue by now)
    - s: to the street, replied on time, 3 stars;  o: October, 5 stars."""
    settings.MAILBOX_DAILY_LIMIT = 100
    letters = {}
    for key, stars in (("a", 5), ("b", 4)):
        letters[key] = make_letter("closed", stars=stars, subject=f"信{key}", now=NOV)
    c = make_letter("assigned", subject="信c", now=NOV)
    late = c.reply_deadline + dt.timedelta(days=1)
    c = services.letter_reply(letter=c, by=secretary, text="迟复", now=late)
    letters["c"] = services.letter_rate(letter=c, by=resident, stars=2, now=late)
    letters["d"] = make_letter("replied", subject="信d", now=NOV)
    services.letter_sweep(now=NOV + dt.timedelta(days=8))
    letters["e"] = make_letter("rejected", subject="信e", now=NOV)
    letters["f"] = make_letter(subject="信f", channel="speak", now=NOV)
    s, _ = services.letter_submit(by=resident, unit=city.s1, category=category, subject="信s", body="给街道", now=NOV)
    s = services.letter_accept(letter=s, by=street_secretary, now=NOV)
    s = services.letter_reply(letter=s, by=street_secretary, text="街道答复", now=NOV)
    letters["s"] = services.letter_rate(letter=s, by=resident, stars=3, now=NOV)
    letters["o"] = make_letter("closed", stars=5, subject="信o", now=OCT)
    return letters


def test_the_streets_month(november, city):
    figures = letter_stats(unit=city.s1, month=dt.date(2026, 11, 1), now=NOV + dt.timedelta(days=20))
    s = figures["summary"]
    assert s["received"] == 7 and s["mailbox"] == 6 and s["speak"] == 1
    assert s["rejected"] == 1 and s["replied"] == 5
    assert s["accept_on_time_rate"] == 1.0  # six decided (accepted or rejected), all on the day
    assert s["reply_on_time_rate"] == 0.8  # c was late
    assert s["rated"] == 4 and s["satisfied"] == 2 and s["satisfaction_rate"] == 0.5
    assert s["rating_avg"] == 3.5  # (5 + 4 + 2 + 3) / 4
    assert s["unrated"] == 1
    assert s["overdue_now"] == 1  # f, never accepted
    by_unit = {row["unit"]["name"]: row["received"] for row in figures["by_unit"]}
    assert by_unit == {"第一街道": 1, "第一社区": 6}
    assert figures["by_category"][0]["category"] == "环境卫生" and figures["by_category"][0]["received"] == 7
    trend = {row["month"]: row["received"] for row in figures["trend"]}
    assert len(figures["trend"]) == 12 and trend["2026-11"] == 7 and trend["2026-10"] == 1 and trend["2026-09"] == 0
    secretaries = {p["name"]: p["months"] for p in figures["secretaries"]}
    assert [m["month"] for m in secretaries["书记"]] == ["2026-10", "2026-11"]
    assert secretaries["书记"][1]["replied"] == 4 and secretaries["街道书记"][0]["rating_avg"] == 3.0


def test_a_communitys_month_leaves_out_the_streets_letters(november, city):
    figures = letter_stats(unit=city.c1, month=dt.date(2026, 11, 1))
    assert figures["summary"]["received"] == 6
    assert letter_stats(unit=city.c2, month=dt.date(2026, 11, 1))["summary"]["received"] == 0
    assert letter_stats(unit=None, month=dt.date(2026, 10, 1))["summary"]["satisfaction_rate"] == 1.0


def test_the_stats_cost_the_same_queries_whatever_the_letters(make_letter, city, django_assert_num_queries, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    with django_assert_num_queries(6):
        letter_stats(unit=city.s1, month=dt.date(2026, 11, 1))
    for n in range(8):
        make_letter("closed", subject=f"信{n}", now=NOV)
    with django_assert_num_queries(6):
        letter_stats(unit=city.s1, month=dt.date(2026, 11, 1))


def test_who_reads_the_stats(api, personas, november, city, street_secretary):
    url = "/api/v1/letters/stats/"
    for name in ("street_staff", "community_staff", "secretary", "admin"):
        assert api(personas[name]).get(url, {"month": "2026-11"}).status_code == 200, name
    assert api(personas["admin"]).get(url, {"month": "2026-11"}).json()["summary"]["received"] == 7
    for name in ("grid_worker", "department_staff", "resident"):
        response = api(personas[name]).get(url, {"month": "2026-11"})
        assert response.status_code == 403 and response.json()["detail"], name
    assert api(personas["outsider"]).get(url, {"unit": city.s1.pk}).status_code == 404
    assert api(personas["community_staff"]).get(url, {"unit": city.s1.pk}).status_code == 403  # above her own
    assert api(personas["street_staff"]).get(url, {"unit": city.g1.pk}).status_code == 400
    assert api(personas["street_staff"]).get(url, {"month": "2026-13"}).status_code == 400
    response = api(personas["street_staff"]).get(url, {"unit": city.c1.pk, "month": "2026-11"})
    assert response.json()["summary"]["received"] == 6
