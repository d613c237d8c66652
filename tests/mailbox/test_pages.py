"""The mailbox pages: writing on a phone, the inbox and "my letters", the letter with its steps and the rating
widget, the statistics, and the public pages without login — scope (404), roles (403) and query counts."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from governance.models import User
from mailbox import services
from mailbox.models import Letter, LetterState
from tests.mailbox.conftest import image


@pytest.fixture
def browser():
    def make(user=None):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


def test_a_resident_writes_a_letter_on_the_page(browser, resident, category, city):
    client = browser(resident)
    page = client.get("/mailbox/write/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "第一社区书记" in html and "第一街道书记" in html and 'accept="image/*,application/pdf"' in html
    response = client.post(
        "/mailbox/write/",
        {
            "unit": city.c1.pk,
            "channel": "mailbox",
            "category": category.pk,
            "subject": "小区门口积水",
            "body": "下雨天北门积水很深。",
            "contact_preference": "app",
            "allow_publication": "on",
            "attachments": [image()],
        },
    )
    letter = Letter.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mailbox/{letter.pk}/"
    assert letter.allow_publication and letter.attachments.count() == 1
    page = client.get(response["Location"])
    assert "小区门口积水" in page.content.decode() and letter.number in page.content.decode()


def test_writing_errors_are_shown_next_to_the_fields(browser, resident, category, city):
    response = browser(resident).post(
        "/mailbox/write/",
        {"unit": city.c1.pk, "channel": "mailbox", "category": category.pk, "subject": "", "body": ""},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "还不能提交" in html and html.count('class="field has-error"') >= 2
    assert not Letter.objects.exists()


def test_the_sixth_letter_of_a_day_is_refused_on_the_page(browser, resident, category, city):
    client = browser(resident)
    for n in range(6):
        response = client.post(
            "/mailbox/write/",
            {
                "unit": city.c1.pk,
                "channel": "mailbox",
                "category": category.pk,
                "subject": f"事{n}",
                "body": "内容",
                "contact_preference": "app",
            },
        )
    assert response.status_code == 429 and "每天最多来信 5 封" in response.content.decode()
    assert Letter.objects.count() == 5


def test_staff_find_a_resident_and_write_the_letter_down(browser, community_staff, resident_record, category, city):
    client = browser(community_staff)
    page = client.get("/mailbox/write/", {"q": "张"})
    assert f"?resident={resident_record.pk}" in page.content.decode()
    form = client.get("/mailbox/write/", {"resident": resident_record.pk})
    assert "来访代写" in form.content.decode()
    response = client.post(
        "/mailbox/write/",
        {
            "writer": resident_record.pk,
            "unit": city.c1.pk,
            "channel": "speak",
            "category": category.pk,
            "subject": "居民说事：加装电梯",
            "body": "老人们希望加装电梯。",
            "contact_preference": "visit",
            "intake": "phone",
        },
    )
    assert response.status_code == 302
    letter = Letter.objects.get()
    assert letter.writer == resident_record and letter.intake == "phone" and letter.channel == "speak"


def test_who_may_open_the_writing_page(browser, department_staff, street_staff, resident_2_record, grid_worker):
    assert browser(department_staff).get("/mailbox/write/").status_code == 403
    assert browser(grid_worker).get("/mailbox/write/", {"resident": resident_2_record.pk}).status_code == 404
    assert browser().get("/mailbox/write/").status_code == 302  # to the login page


def test_the_inbox_and_my_letters(browser, make_letter, secretary, resident, resident_2, outsider):
    letter = make_letter(subject="楼道灯坏了")
    inbox = browser(secretary).get("/mailbox/").content.decode()
    assert "书记信箱" in inbox and "楼道灯坏了" in inbox and "张三明" in inbox
    mine = browser(resident).get("/mailbox/").content.decode()
    assert "我的来信" in mine and "楼道灯坏了" in mine
    assert "楼道灯坏了" not in browser(resident_2).get("/mailbox/").content.decode()
    assert "楼道灯坏了" not in browser(outsider).get("/mailbox/").content.decode()
    waiting = browser(secretary).get("/mailbox/", {"mine": "on"}).content.decode()
    assert letter.number in waiting
    assert browser(secretary).get("/mailbox/", {"state": "nonsense", "page": "x"}).status_code == 200


def test_the_inbox_costs_the_same_queries_for_2_and_12_letters(browser, make_letter, secretary, settings):
    settings.MAILBOX_DAILY_LIMIT = 100

    def count():
        client = browser(User.objects.get(pk=secretary.pk))
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/mailbox/").status_code == 200
        return len(queries)

    for n in range(2):
        make_letter(subject=f"信{n}")
    few = count()
    for n in range(2, 12):
        make_letter("closed", subject=f"信{n}")
    assert count() == few


def test_the_secretary_takes_the_steps_on_the_letter_page(browser, make_letter, secretary, city):
    letter = make_letter(contact_preference="phone")
    client = browser(secretary)
    page = client.get(f"/mailbox/{letter.pk}/").content.decode()
    assert 'value="accept"' in page and 'value="reject"' in page
    assert '<small class="muted">13812345678</small>' in page  # the writer asked to be called back
    quiet = make_letter(subject="不用回电")
    assert '<small class="muted">138****5678</small>' in client.get(f"/mailbox/{quiet.pk}/").content.decode()
    assert client.post(f"/mailbox/{letter.pk}/", {"action": "accept", "note": ""}).status_code == 302
    response = client.post(f"/mailbox/{letter.pk}/", {"action": "assign", "to": "unit", "unit": city.g1.pk})
    assert response.status_code == 302
    response = client.post(f"/mailbox/{letter.pk}/", {"action": "reply", "text": ""})
    assert response.status_code == 400 and "has-error" in response.content.decode()
    assert client.post(f"/mailbox/{letter.pk}/", {"action": "reply", "text": "已修好"}).status_code == 302
    letter.refresh_from_db()
    assert letter.state == LetterState.REPLIED and letter.assignee_unit == city.g1


def test_the_writer_rates_with_the_star_widget(browser, make_letter, resident):
    letter = make_letter("replied")
    client = browser(resident)
    page = client.get(f"/mailbox/{letter.pk}/").content.decode()
    assert "书记答复" in page and "★★★★★ 非常满意" in page and 'value="follow-up"' in page
    assert client.post(f"/mailbox/{letter.pk}/", {"action": "rate", "stars": "9"}).status_code == 400
    assert client.post(f"/mailbox/{letter.pk}/", {"action": "rate", "stars": "5", "note": "满意"}).status_code == 302
    letter.refresh_from_db()
    assert letter.rating == 5 and letter.state == LetterState.CLOSED


def test_drafts_and_internal_notes_stay_with_the_staff(browser, make_letter, resident, secretary):
    letter = make_letter("drafted")
    writer_page = browser(resident).get(f"/mailbox/{letter.pk}/").content.decode()
    assert "已联系物业更换灯泡" not in writer_page and "请网格员核实" not in writer_page
    staff_page = browser(secretary).get(f"/mailbox/{letter.pk}/").content.decode()
    assert "已联系物业更换灯泡" in staff_page and 'value="sign-off"' in staff_page


def test_refusals_on_the_letter_page(browser, make_letter, resident, street_staff, outsider, resident_2):
    letter = make_letter()
    response = browser(resident).post(f"/mailbox/{letter.pk}/", {"action": "accept"})
    assert response.status_code == 403 and "受理" in response.content.decode()
    assert browser(street_staff).post(f"/mailbox/{letter.pk}/", {"action": "accept"}).status_code == 403
    for user in (outsider, resident_2):
        assert browser(user).get(f"/mailbox/{letter.pk}/").status_code == 404
        assert browser(user).post(f"/mailbox/{letter.pk}/", {"action": "accept"}).status_code == 404
    assert browser(resident).post(f"/mailbox/{letter.pk}/", {"action": "nonsense"}).status_code == 400
    closed = make_letter("closed", subject="已评价")
    response = browser(resident).post(f"/mailbox/{closed.pk}/", {"action": "rate", "stars": "4"})
    assert response.status_code in (403, 409)


def test_the_letter_page_costs_the_same_queries_with_a_long_log(browser, make_letter, secretary):
    letter = make_letter("replied")

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert browser(User.objects.get(pk=secretary.pk)).get(f"/mailbox/{letter.pk}/").status_code == 200
        return len(queries)

    before = count()
    services.letter_follow_up(letter=letter, by=letter.writer.positions.get().user, note="追问")
    services.letter_reply(letter=letter, by=secretary, text="再答复")
    assert count() <= before + 2  # the follow-up adds its own section, not a query per event


def test_attachments_are_served_within_scope(browser, resident, category, secretary, outsider):
    letter, _ = services.letter_submit(by=resident, category=category, subject="s", body="b", attachments=[image()])
    url = letter.attachments.get().get_absolute_url()
    assert browser(secretary).get(url).status_code == 200
    assert browser(outsider).get(url).status_code == 404


def test_the_stats_page(browser, make_letter, street_staff, resident, city):
    make_letter("closed", stars=5)
    page = browser(street_staff).get("/mailbox/stats/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "信箱统计" in html and "满意率" in html and "第一社区" in html and "100.0%" in html
    assert browser(resident).get("/mailbox/stats/").status_code == 403
    assert browser(street_staff).get("/mailbox/stats/", {"month": "bad"}).status_code == 400


def test_the_public_pages_need_no_login_and_hide_private_letters(browser, make_letter):
    public = make_letter("closed", allow_publication=True, subject="路灯坏了")
    private = make_letter("closed", allow_publication=False, subject="家事")
    client = browser()
    listing = client.get("/public/letters/").content.decode()
    assert "路灯坏了" in listing and "家事" not in listing and "张*明" in listing and "100.0%" in listing
    detail = client.get(f"/public/letters/{public.pk}/").content.decode()
    assert "13812345678" not in detail and "已安排物业三天内修好" in detail and "张三明" not in detail
    assert client.get(f"/public/letters/{private.pk}/").status_code == 404
    assert client.get("/public/letters/", {"unit": "x"}).status_code == 200


def test_navigation_shows_the_mailbox_to_the_right_people(browser, resident, secretary, department_staff):
    assert "/mailbox/write/" in browser(resident).get("/").content.decode()
    assert "/mailbox/stats/" in browser(secretary).get("/mailbox/").content.decode().split("<main")[0]
    assert "/mailbox/stats/" not in browser(department_staff).get("/mailbox/").content.decode().split("<main")[0]
    assert "/mailbox/" in browser(department_staff).get("/").content.decode().split("<main")[0]


def test_the_demo_city_has_letters_in_every_state(db):
    import io

    from django.core.management import call_command

    call_command("seed_demo", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    states = set(Letter.objects.values_list("state", flat=True))
    assert {"submitted", "closed"} <= states and len(states) >= 4
    assert Letter.objects.filter(published=True).exists()
    resident = User.objects.get(username="resident")
    from mailbox.selectors import letters_visible_to

    assert letters_visible_to(resident).exists()
    assert letters_visible_to(User.objects.get(username="secretary")).exists()
    call_command("seed_demo", "--reset", "--scale", "tiny", "--password", "pw-123456", stdout=io.StringIO())
    assert Letter.objects.exists()


def test_the_case_a_letter_became_links_back_to_it(browser, api, make_letter, secretary, city, community_staff):
    from grids.models import CaseCategory

    category = CaseCategory.objects.get(code="public-streetlight")
    letter = services.letter_assign(
        letter=make_letter("accepted"), by=secretary, case_grid=city.g1, case_category=category
    )
    page = browser(community_staff).get(f"/cases/{letter.case_id}/").content.decode()
    assert f'href="/mailbox/{letter.pk}/"' in page and letter.number in page
    assert api(community_staff).get(f"/api/v1/cases/{letter.case_id}/").json()["letter"] == {
        "id": letter.pk,
        "number": letter.number,
    }
    letter_page = browser(secretary).get(f"/mailbox/{letter.pk}/").content.decode()
    assert f'href="/cases/{letter.case_id}/"' in letter_page


def test_what_residents_write_is_shown_as_text_never_as_html(browser, make_letter, secretary):
    letter = make_letter(
        "closed", allow_publication=True, subject="<b>标题</b>", body='<script>alert("x")</script><img src=x onerror=1>'
    )
    for client, url in ((browser(secretary), f"/mailbox/{letter.pk}/"), (browser(), f"/public/letters/{letter.pk}/")):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>标题</b>" not in html
        assert "&lt;script&gt;" in html


def test_the_office_accepts_several_letters_at_once(browser, make_letter, secretary, resident_2, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    first, second = make_letter(subject="一"), make_letter(subject="二")
    accepted = make_letter("accepted", subject="三")
    client = browser(secretary)
    page = client.get("/mailbox/").content.decode()
    assert f'name="ids" value="{first.pk}"' in page and f'name="ids" value="{accepted.pk}"' not in page
    response = client.post("/mailbox/", {"bulk": "accept", "ids": [first.pk, second.pk, accepted.pk, "x"]}, follow=True)
    html = response.content.decode()
    assert "已批量受理 2 件" in html and accepted.number in html  # the one already accepted is reported
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == second.state == LetterState.ACCEPTED
    # A resident ticking letters accepts nothing.
    browser(resident_2).post("/mailbox/", {"bulk": "accept", "ids": [make_letter(subject="四").pk]})
    assert Letter.objects.filter(state=LetterState.SUBMITTED).count() == 1


def test_the_inbox_sorts_by_deadline(browser, make_letter, secretary, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    make_letter("accepted", subject="早")
    make_letter(subject="新")
    html = browser(secretary).get("/mailbox/", {"sort": "deadline"}).content.decode()
    assert 'aria-sort="ascending"' in html and html.index("早") < html.index("新")
    assert browser(secretary).get("/mailbox/", {"sort": "'; drop"}).status_code == 200


def test_the_inbox_shows_only_the_letters_still_in_hand_when_asked(browser, make_letter, secretary, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    waiting = make_letter(subject="还没受理")
    answered = make_letter("replied", subject="已答复待评价")
    done = make_letter("closed", subject="已办结")
    html = browser(secretary).get("/mailbox/").content.decode()
    assert {waiting.number, answered.number, done.number} <= set(re.findall(r"XJ-\d{4}-\d{6}", html))
    html = browser(secretary).get("/mailbox/", {"open": "on"}).content.decode()
    assert set(re.findall(r"XJ-\d{4}-\d{6}", html)) == {waiting.number}
    assert "只看未办结" in html and "清除全部筛选" in html
