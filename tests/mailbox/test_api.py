"""The mailbox API: writing, scope (404 outside), roles (403), states (409), input (400), limits (429), the public
letters without login, attachments, and bounded query counts."""

import datetime as dt

import time_machine

from mailbox import services
from mailbox.models import Letter, LetterState
from tests.mailbox.conftest import image, pdf

URL = "/api/v1/letters/"


def _write(api, user, **data):
    data.setdefault("subject", "小区路灯不亮")
    data.setdefault("body", "幸福小区北门的路灯坏了一周。")
    return api(user).post(URL, data, format="multipart" if "attachments" in data else "json")


def test_a_resident_writes_and_reads_their_letter(api, resident, category, city):
    response = _write(api, resident, category=category.pk, allow_publication=True, contact_preference="phone")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "submitted" and body["unit"]["id"] == city.c1.pk and body["number"].startswith("XJ-")
    assert body["writer"] == "张三明" and body["writer_detail"]["phone"] == "13812345678"  # their own number
    assert body["actions"] == ["make-private"]
    assert api(resident).get(f"{URL}{body['id']}/").status_code == 200


def test_writing_twice_in_a_minute_answers_200_with_the_same_letter(api, resident, category):
    first = _write(api, resident, category=category.pk)
    again = _write(api, resident, category=category.pk)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and Letter.objects.count() == 1


def test_the_sixth_letter_of_a_day_is_429_with_a_message(api, resident, category):
    for n in range(5):
        assert _write(api, resident, category=category.pk, subject=f"事情{n}").status_code == 201
    response = _write(api, resident, category=category.pk, subject="事情6")
    assert response.status_code == 429 and "5" in response.json()["detail"]


def test_bad_letters_are_400_naming_the_field_and_nothing_is_written(api, resident, category, city):
    cases = [
        ({"category": category.pk, "subject": ""}, "subject"),
        ({"category": category.pk, "body": "字" * 3001}, "body"),
        ({"category": 999999}, "category"),
        ({"category": category.pk, "unit": city.c3.pk}, "unit"),
        ({"category": category.pk, "channel": "wechat"}, "channel"),
    ]
    for data, field in cases:
        response = _write(api, resident, **data)
        assert response.status_code == 400, data
        assert field in response.json()["errors"], response.json()
    response = api(resident).post(
        URL, {"category": category.pk, "subject": "s", "body": "b", "attachments": [pdf("x.pdf")]}, format="multipart"
    )
    assert response.status_code == 201  # a real PDF is fine
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("病历.jpg", b"not an image", content_type="image/jpeg")
    response = api(resident).post(
        URL, {"category": category.pk, "subject": "s2", "body": "b", "attachments": [fake]}, format="multipart"
    )
    assert response.status_code == 400 and "attachments" in response.json()["errors"]
    assert Letter.objects.count() == 1


def test_anonymous_visitors_cannot_write_or_read(api, category, make_letter):
    letter = make_letter()
    assert api().post(URL, {"category": category.pk, "subject": "s", "body": "b"}).status_code in (401, 403)
    assert api().get(URL).status_code in (401, 403)
    assert api().get(f"{URL}{letter.pk}/").status_code in (401, 403)


def test_staff_write_down_a_letter_for_a_resident(api, community_staff, resident_record, category):
    response = _write(api, community_staff, category=category.pk, writer=resident_record.pk, intake="visit")
    assert response.status_code == 201 and response.json()["intake"] == "visit"


def test_each_persona_sees_the_letters_of_their_scope(
    api, personas, make_letter, city, secretary, other_department_staff
):
    to_c1 = make_letter(subject="写给社区")
    assigned = make_letter("assigned", subject="交办网格")
    to_street = make_letter(unit=city.s1, subject="写给街道")
    to_dept = services.letter_assign(
        letter=make_letter("accepted", subject="交办部门"), by=secretary, department=city.department
    )
    expected = {
        "admin": {to_c1, assigned, to_street, to_dept},
        "street_staff": {to_c1, assigned, to_street, to_dept},
        "community_staff": {to_c1, assigned, to_dept},
        "secretary": {to_c1, assigned, to_dept},
        "grid_worker": {assigned},
        "grid_worker_2": set(),
        "department_staff": {to_dept},
        "outsider": set(),
        "resident": {to_c1, assigned, to_street, to_dept},
        "resident_2": set(),
    }
    for name, letters in expected.items():
        response = api(personas[name]).get(URL)
        assert response.status_code == 200, name
        assert {row["id"] for row in response.json()["results"]} == {lt.pk for lt in letters}, name
    assert api(other_department_staff).get(f"{URL}{to_dept.pk}/").status_code == 404


def test_outside_the_scope_is_404_for_reads_and_every_step(api, make_letter, outsider, resident_2, grid_worker_2):
    letter = make_letter()
    for user in (outsider, resident_2, grid_worker_2):
        client = api(user)
        assert client.get(f"{URL}{letter.pk}/").status_code == 404
        assert client.get(f"{URL}{letter.pk}/events/").status_code == 404
        for step in ("accept", "reject", "assign", "reply", "sign-off", "rate", "publish"):
            assert client.post(f"{URL}{letter.pk}/{step}/", {"note": "x"}).status_code == 404, step
    assert api(outsider).get(f"{URL}999999/").status_code == 404


def test_a_visible_letter_one_may_not_act_on_is_403(api, make_letter, resident, grid_worker, street_staff):
    letter = make_letter()
    for user, step, data in (
        (resident, "accept", {}),
        (street_staff, "accept", {}),  # sees the community's letters, does not run its mailbox
        (resident, "publish", {}),
    ):
        response = api(user).post(f"{URL}{letter.pk}/{step}/", data, format="json")
        assert response.status_code == 403, (user, step)
        assert response.json()["detail"]
    assigned = make_letter("assigned", subject="交办")
    response = api(grid_worker).post(f"{URL}{assigned.pk}/sign-off/", {"approved": True}, format="json")
    assert response.status_code == 403


def test_a_step_the_state_does_not_allow_is_409(api, make_letter, secretary, resident):
    letter = make_letter()
    response = api(secretary).post(f"{URL}{letter.pk}/reply/", {"text": "答复"}, format="json")
    assert response.status_code == 409 and "待受理" in response.json()["detail"]
    closed = make_letter("closed", subject="已评价", stars=5)
    response = api(resident).post(f"{URL}{closed.pk}/rate/", {"stars": 4}, format="json")
    assert response.status_code == 409


def test_the_whole_workflow_through_the_api(api, make_letter, secretary, grid_worker, resident, city):
    letter = make_letter(allow_publication=True)
    url = f"{URL}{letter.pk}/"
    assert api(secretary).post(url + "accept/", {"note": "受理"}, format="json").json()["state"] == "accepted"
    response = api(secretary).post(url + "assign/", {"unit": city.g1.pk, "deadline": "2099-01-01"}, format="json")
    assert response.status_code == 400 and "deadline" in response.json()["errors"]  # after the reply deadline
    response = api(secretary).post(url + "assign/", {"unit": city.g1.pk, "note": "请核实"}, format="json")
    assert response.json()["assignee"] == {"kind": "unit", "id": city.g1.pk, "name": "第一网格"}
    response = api(grid_worker).post(url + "reply/", {"text": "已修好。"}, format="json")
    assert response.json()["state"] == "drafted" and response.json()["draft"] == "已修好。"
    assert api(resident).get(url).json()["draft"] == ""  # drafts are for staff
    response = api(secretary).post(url + "sign-off/", {"approved": True}, format="json")
    assert response.json()["state"] == "replied" and response.json()["published"]
    response = api(resident).post(url + "rate/", {"stars": 5, "note": "很快"}, format="json")
    assert response.json()["state"] == "closed" and response.json()["rating"] == 5
    events = api(resident).get(url + "events/").json()
    assert [e["action"] for e in events] == ["submit", "accept", "assign", "reply", "sign-off", "rate"]


def test_bad_step_input_is_400(api, make_letter, secretary, resident):
    letter = make_letter("replied")
    url = f"{URL}{letter.pk}/"
    for body in ({"stars": 0}, {"stars": "five"}, {}):
        response = api(resident).post(url + "rate/", body, format="json")
        assert response.status_code == 400 and response.json()["errors"], body
    response = api(secretary).post(f"{URL}{make_letter(subject='新的').pk}/reject/", {"note": ""}, format="json")
    assert response.status_code == 400 and "note" in response.json()["errors"]


def test_attachments_are_served_only_within_scope_and_pdfs_are_downloads(api, resident, category, outsider, secretary):
    response = api(resident).post(
        URL, {"category": category.pk, "subject": "s", "body": "b", "attachments": [image(), pdf()]}, format="multipart"
    )
    letter = response.json()
    by_kind = {a["kind"]: a["url"] for a in letter["attachments"]}
    shown = api(secretary).get(by_kind["image"])
    assert (
        shown.status_code == 200
        and shown["Content-Type"] == "image/jpeg"
        and shown["X-Content-Type-Options"] == "nosniff"
    )
    download = api(secretary).get(by_kind["pdf"])
    assert download["Content-Type"] == "application/pdf" and download["Content-Disposition"].startswith("attachment")
    assert api(outsider).get(by_kind["pdf"]).status_code == 404
    assert api(secretary).get(f"{URL}{letter['id']}/attachments/999999/").status_code == 404


def test_the_redaction_preview_is_for_the_secretary(api, make_letter, secretary, community_staff):
    letter = make_letter("accepted", allow_publication=True)
    response = api(secretary).get(f"{URL}{letter.pk}/redaction/")
    assert response.status_code == 200 and "13812345678" not in response.json()["public_body"]
    assert {"kind": "mobile", "text": "13812345678", "field": "public_body"} in response.json()["removed"]
    assert api(community_staff).get(f"{URL}{letter.pk}/redaction/").status_code == 403


def test_the_public_letters_need_no_login_and_show_only_published_redacted_letters(api, make_letter):
    public = make_letter("closed", allow_publication=True, subject="路灯问题，电话13812345678")
    private = make_letter("closed", allow_publication=False, subject="私事")
    waiting = make_letter("accepted", allow_publication=True, subject="待答复")
    response = api().get("/api/v1/public/letters/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [public.pk]
    row = rows[0]
    assert row["writer"] == "张*明" and "13812345678" not in row["subject"] and "13812345678" not in row["body"]
    assert "phone" not in row and "writer_detail" not in row and "attachments" not in row
    assert api().get(f"/api/v1/public/letters/{public.pk}/").status_code == 200
    for hidden in (private, waiting):
        assert api().get(f"/api/v1/public/letters/{hidden.pk}/").status_code == 404
    assert api().get("/api/v1/public/letters/", {"unit": public.unit_id}).json()["count"] == 1


def test_letter_categories_are_listed(api, resident):
    names = [c["name"] for c in api(resident).get("/api/v1/letter-categories/").json()]
    assert "环境卫生" in names and "其他" in names


def test_the_letter_list_costs_the_same_queries_for_3_and_15_letters(
    api, make_letter, street_staff, django_assert_max_num_queries, settings
):
    settings.MAILBOX_DAILY_LIMIT = 100

    def count():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from governance.models import User

        fresh = User.objects.get(pk=street_staff.pk)  # no scope cached on the user object
        with CaptureQueriesContext(connection) as queries:
            assert api(fresh).get(URL).status_code == 200
        return len(queries)

    for n in range(3):
        make_letter("assigned", subject=f"信{n}")
    count()  # the first list reads the letter categories into the cache
    few = count()
    for n in range(3, 15):
        make_letter("closed", subject=f"信{n}")
    assert count() == few
    with django_assert_max_num_queries(8):
        api(street_staff).get(URL)


def test_the_public_list_is_one_count_and_one_page_query(api, make_letter, django_assert_max_num_queries, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    for n in range(6):
        make_letter("replied", allow_publication=True, subject=f"公开{n}")
    # The newest letter event (what the cached copy is checked against), the count, the page.
    with django_assert_max_num_queries(3):
        assert api().get("/api/v1/public/letters/").json()["count"] == 6
    # Then the same page from the cache, while no letter changes.
    with django_assert_max_num_queries(1):
        assert api().get("/api/v1/public/letters/").json()["count"] == 6


def test_list_filters(api, make_letter, secretary):
    with time_machine.travel(dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))), tick=False):
        old = make_letter(subject="旧信")
    new = make_letter("accepted", subject="新信", channel="speak")
    client = api(secretary)

    def ids(**params):
        return {row["id"] for row in client.get(URL, params).json()["results"]}

    assert ids(state="accepted") == {new.pk}
    assert ids(channel="speak") == {new.pk}
    assert ids(q="旧") == {old.pk}
    assert ids(overdue="true") == {old.pk}  # not accepted within two working days
    assert ids(created_before="2026-11-03") == {old.pk}
    assert client.get(URL, {"state": "nonsense"}).status_code == 400
    assert client.get(URL, {"unit": "abc"}).status_code == 400
    assert LetterState.SUBMITTED == "submitted"


def test_unit_naming_the_callers_own_office_gives_the_letters_to_that_subtree(
    api, make_letter, city, street_staff, secretary, outsider, admin_user
):
    """Staff naming their own unit (`selectors.office_letters_of`): the letters written to its subtree, as the
    scope and the filter give together, read without the assignee units; the answer is the same as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance import services as governance_services

    to_c1 = make_letter(subject="写给社区")
    assigned = make_letter("assigned", subject="交办网格")  # to C1, assigned to G1
    to_street = make_letter(unit=city.s1, subject="写给街道")
    governance_services.unit_move(by=admin_user, unit=city.g1, parent=city.c3)  # G1 and its assignment to S2

    def ids(user, **params):
        response = api(user).get(URL, params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(outsider) == {assigned.pk}  # assigned to a grid of theirs now, written to another street
    assert ids(outsider, unit=city.s2.pk) == set()  # not written to their street
    assert ids(outsider, unit=city.g1.pk) == set()  # written to no unit under the grid
    assert ids(street_staff) == ids(street_staff, unit=city.s1.pk) == {to_c1.pk, assigned.pk, to_street.pk}
    assert ids(street_staff, unit=city.c1.pk) == {to_c1.pk, assigned.pk}
    assert ids(secretary, unit=city.c1.pk) == ids(secretary) == {to_c1.pk, assigned.pk}
    assert ids(admin_user, unit=city.s1.pk) == {to_c1.pk, assigned.pk, to_street.pk}
    assert ids(admin_user, unit=city.s2.pk) == set()

    def page_ids(queries) -> str:
        """The query of the page's ids: a WITH query (a list counted small, `ListPlan._windowed`) or `id IN (…)`."""
        page = next(q["sql"] for q in queries if "mailbox_letter" in q["sql"] and "LIMIT 21" in q["sql"])
        if page.startswith("WITH listed_page AS ("):
            return page[: page.index(") SELECT ")]
        return page[page.index('"mailbox_letter"."id" IN (') :]

    for _ in range(2):  # the page's ids counted with the page (a list counted small last time: with its count)
        with CaptureQueriesContext(connection) as queries:
            ids(street_staff, unit=city.s1.pk)
        own = page_ids(queries)
        assert "assignee_unit_id" not in own and "governance_unit" in own, own
        assert 'JOIN "governance_unit"' not in own, own  # the filter's join on the unit's path is left out
        with CaptureQueriesContext(connection) as queries:
            ids(street_staff, unit=city.c1.pk)  # another unit than their own: the scope and the filter, both
        assert "assignee_unit_id" in page_ids(queries)
    assert own.startswith("WITH listed_page AS (")


def test_the_office_calling_a_writer_back_sees_the_whole_number_and_it_is_logged(api, make_letter, secretary, resident):
    from governance.models import PersonalDataAccess

    letter = make_letter(contact_preference="phone")
    assert api(resident).get(f"/api/v1/letters/{letter.pk}/").json()["writer_detail"]["phone"] == "13812345678"
    assert not PersonalDataAccess.objects.exists()  # the writer's own number
    body = api(secretary).get(f"/api/v1/letters/{letter.pk}/").json()
    assert body["writer_detail"]["phone"] == "13812345678"
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.what, log.object_ids, log.fields) == (
        secretary,
        "letter_writer",
        [letter.writer_id],
        ["phone"],
    )


def test_the_open_filter_keeps_the_letters_still_in_the_offices_hands(api, make_letter, secretary, settings):
    settings.MAILBOX_DAILY_LIMIT = 100
    letters = {state: make_letter(state, subject=state) for state in ("submitted", "assigned", "replied", "closed")}
    letters["rejected"] = make_letter("rejected", subject="rejected")
    client = api(secretary)

    def subjects(**params):
        return {row["subject"] for row in client.get(URL, params).json()["results"]}

    assert subjects(open="true") == {"submitted", "assigned"}
    assert subjects(open="false") == {"replied", "closed", "rejected"}
    assert client.get(URL, {"open": "perhaps"}).status_code == 400


def test_a_unit_of_five_thousand_digits_is_a_400_not_a_500(api, secretary, community_staff):
    for user in (secretary, community_staff):
        for url in (URL, "/api/v1/cases/", "/api/v1/residents/"):
            response = api(user).get(url, {"unit": "9" * 5000})
            assert response.status_code == 400, (url, response.content[:200])
