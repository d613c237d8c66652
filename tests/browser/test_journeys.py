"""The product through a real browser (Debian's Chromium driven by Playwright), as its users go through it: every
persona logs in; a grid worker on a phone files a case with a photo; the community escalates it, the street
dispatches it, the department signs for it and handles it, the grid worker verifies it and the resident rates
it — all through the pages; points are recorded and redeemed; a letter is written, answered and rated; the
elder-friendly switch; the public letters without login. Each step's page is saved as a screenshot under
`test-artifacts/` (not committed)."""

import datetime as dt

import pytest

from grids.models import Case, CaseState
from mailbox.models import Letter, LetterState
from points.models import Redemption, Reward, Rule, RuleKind, Scheme

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migration_data")]

PASSWORD = "pass-word-123"  # tests/factories.py
PHONE = {"width": 390, "height": 844}


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{live_server.url}/")


def step(page, name, fields=None, radios=None, selects=None):
    """Open the step's panel on an object's page, fill it in and confirm."""
    panel = f"#step-{name}"
    if page.get_attribute(panel, "open") is None:
        page.click(f"{panel} summary")
    for field, value in (fields or {}).items():
        page.fill(f"{panel} [name={field}]", value)
    for field, value in (radios or {}).items():
        page.check(f'{panel} [name={field}][value="{value}"]')
    for field, value in (selects or {}).items():
        page.select_option(f"{panel} [name={field}]", str(value))
    page.click(f"{panel} button[type=submit]")
    page.wait_for_load_state()


def test_every_persona_logs_in_and_sees_their_home(live_server, personas, new_page, shoot):
    for name, user in personas.items():
        page = new_page()
        log_in(page, live_server, user.username)
        assert user.display_name in page.content()
        shoot(page, f"home-{name}")
        page.context.close()


def test_a_case_goes_round_the_whole_loop_through_the_pages(
    live_server,
    city,
    grid_worker,
    community_staff,
    street_staff,
    department_staff,
    resident,
    new_page,
    shoot,
    photo_file,
):
    worker = new_page(viewport=PHONE)
    log_in(worker, live_server, grid_worker.username)
    worker.goto(f"{live_server.url}/cases/new/")
    options = worker.eval_on_selector_all("[name=category] option", "els => els.map(e => [e.value, e.textContent])")
    clutter = next(value for value, text in options if "堆" in text and value)
    worker.select_option("[name=category]", clutter)
    worker.fill("[name=title]", "楼道堆放杂物")
    worker.fill("[name=description]", "1栋2单元楼道堆满纸箱，影响通行和消防安全。")
    worker.fill("[name=resident_id_number]", "510603198001011237")
    worker.set_input_files("[name=photos]", str(photo_file))
    shoot(worker, "case-1-filing-on-a-phone")
    worker.click("form button[type=submit].primary")
    worker.wait_for_load_state()
    if "not_duplicate" in worker.content():  # possible duplicates offered: file anyway
        worker.check("[name=not_duplicate]")
        worker.click("form button[type=submit].primary")
    case = Case.objects.get()
    assert case.photos.count() == 1 and worker.url.endswith(f"/cases/{case.pk}/")
    shoot(worker, "case-2-filed")

    community = new_page()
    log_in(community, live_server, community_staff.username)
    community.goto(f"{live_server.url}/cases/{case.pk}/")
    step(community, "escalate", fields={"note": "需要城管执法，请街道吹哨。"})
    shoot(community, "case-3-escalated")

    street = new_page()
    log_in(street, live_server, street_staff.username)
    street.goto(f"{live_server.url}/cases/{case.pk}/")
    step(street, "dispatch", selects={"department": city.department.pk}, fields={"note": "请城管局按时处置。"})
    shoot(street, "case-4-dispatched")

    department = new_page()
    log_in(department, live_server, department_staff.username)
    department.goto(f"{live_server.url}/cases/{case.pk}/")
    step(department, "sign")
    step(department, "handle", fields={"note": "已清理楼道杂物。"})
    shoot(department, "case-5-handled")

    worker.goto(f"{live_server.url}/cases/{case.pk}/")
    step(worker, "verify", radios={"confirmed": "yes"}, fields={"note": "现场核查已清理干净。"})
    shoot(worker, "case-6-verified")

    person = new_page(viewport=PHONE)
    log_in(person, live_server, resident.username)
    person.goto(f"{live_server.url}/cases/{case.pk}/")
    step(person, "rate", radios={"stars": "5"}, fields={"note": "处理及时，谢谢！"})
    shoot(person, "case-7-rated")
    case.refresh_from_db()
    assert case.state == CaseState.CLOSED and case.rating == 5
    assert [e.action for e in case.events.order_by("id")] == [
        "file",
        "escalate",
        "dispatch",
        "sign",
        "handle",
        "verify",
        "rate",
    ]


def test_points_are_recorded_on_a_phone_and_redeemed_at_the_supermarket(
    live_server, city, grid_worker, community_staff, resident, resident_record, new_page, shoot
):
    scheme = Scheme.objects.get(code=Scheme.RESIDENT)
    rule = Rule.objects.create(
        unit=city.c1,
        scheme=scheme,
        code="volunteer",
        name="志愿服务",
        kind=RuleKind.BONUS,
        points=30,
        active_from=dt.date(2026, 1, 1),
    )
    Reward.objects.create(community=city.c1, scheme=scheme, name="大米 5 公斤", cost=20, stock=3)

    worker = new_page(viewport=PHONE)
    log_in(worker, live_server, grid_worker.username)
    worker.goto(f"{live_server.url}/points/record/?q=张")
    worker.click(f"a[href='?resident={resident_record.pk}']")
    worker.check(f'[name=rule][value="{rule.pk}"]')
    worker.fill("[name=note]", "社区清扫志愿服务")
    shoot(worker, "points-1-recording")
    worker.click("form button[type=submit].primary")
    worker.wait_for_load_state()
    assert "余额 30 分" in worker.content()
    shoot(worker, "points-2-recorded")

    person = new_page(viewport=PHONE)
    log_in(person, live_server, resident.username)
    person.goto(f"{live_server.url}/points/shop/")
    person.click("form:has(input[value=reserve]) button[type=submit]")
    person.wait_for_load_state()
    redemption = Redemption.objects.get()
    assert redemption.pickup_code in person.content()
    shoot(person, "points-3-reserved")

    counter = new_page()
    log_in(counter, live_server, community_staff.username)
    counter.goto(f"{live_server.url}/points/shop/?community={city.c1.pk}&code={redemption.pickup_code}")
    shoot(counter, "points-4-counter")
    counter.click("form:has(input[value=fulfil]) button[type=submit]")
    counter.wait_for_load_state()
    shoot(counter, "points-5-handed-over")
    redemption.refresh_from_db()
    assert redemption.state == "fulfilled" and redemption.points == 20 and Reward.objects.get().stock == 2


def test_a_letter_is_written_answered_and_rated(live_server, city, resident, secretary, new_page, shoot):
    person = new_page(viewport=PHONE)
    log_in(person, live_server, resident.username)
    person.goto(f"{live_server.url}/mailbox/write/")
    options = person.eval_on_selector_all("[name=category] option", "els => els.map(e => e.value)")
    person.select_option("[name=category]", next(v for v in options if v))
    person.fill("[name=subject]", "小区路灯不亮")
    person.fill("[name=body]", "北门路灯坏了一周，晚上出行不便。我的电话13812345678。")
    person.check("[name=allow_publication]")
    shoot(person, "letter-1-writing")
    person.click("form button[type=submit].primary")
    person.wait_for_load_state()
    letter = Letter.objects.get()
    shoot(person, "letter-2-sent")

    office = new_page()
    log_in(office, live_server, secretary.username)
    office.goto(f"{live_server.url}/mailbox/{letter.pk}/")
    step(office, "accept")
    step(office, "reply", fields={"text": "已安排物业三天内修好。"})
    shoot(office, "letter-3-replied")

    person.goto(f"{live_server.url}/mailbox/{letter.pk}/")
    assert "已安排物业三天内修好" in person.content()
    step(person, "rate", radios={"stars": "5"}, fields={"note": "修好了，谢谢书记"})
    shoot(person, "letter-4-rated")
    letter.refresh_from_db()
    assert letter.state == LetterState.CLOSED and letter.rating == 5 and letter.published


def test_the_elder_friendly_switch_and_the_public_letters_without_login(live_server, resident, new_page, shoot):
    person = new_page(viewport=PHONE)
    log_in(person, live_server, resident.username)
    size = person.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    person.click(".elder-switch button")
    person.wait_for_load_state()
    assert person.evaluate("() => document.documentElement.classList.contains('elder')")
    assert person.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)") > size
    shoot(person, "elder-mode")
    resident.refresh_from_db()
    assert resident.elder_mode

    visitor = new_page(viewport=PHONE)
    visitor.goto(f"{live_server.url}/public/letters/")
    assert "公开信件" in visitor.content() and visitor.url.endswith("/public/letters/")
    shoot(visitor, "public-letters")


@pytest.mark.parametrize("username", ["grid_worker", "resident"])
def test_the_phone_pages_fit_a_360_pixel_screen(live_server, personas, username, new_page, shoot):
    """Nothing wider than the screen (no sideways scrolling) and buttons big enough for a thumb, on the pages a
    grid worker or a resident uses on a cheap phone."""
    page = new_page(viewport={"width": 360, "height": 740})
    log_in(page, live_server, personas[username].username)
    pages = ["/", "/cases/", "/points/", "/mailbox/", "/mailbox/write/", "/public/letters/"]
    if username == "grid_worker":
        pages += ["/cases/new/", "/points/record/"]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
        smallest = page.evaluate(
            "() => Math.min(...[...document.querySelectorAll('main button, main .button')]"
            ".filter(b => b.offsetParent).map(b => b.getBoundingClientRect().height), 999)"
        )
        assert smallest >= 44, (path, smallest)
        shoot(page, path.strip("/").replace("/", "-") or "home")
