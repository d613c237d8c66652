"""The fast read path of the main lists (bench/load_city.py): what it shortcuts must not change what users see.

- the list serializers write their rows directly: the same rows DRF's declared fields give;
- the catalogues named from the cache: an edit shows at once;
- the count: exact up to EXACT_COUNT, then the one counted a minute ago, and the next page is never lost;
- the public letters served from the cache: a letter published, unpublished or made private shows at once;
- the SQL of a case or letter list kept for the same request (`ListPlan`): the rows and the count are read anew,
  a filter that reads the clock is never kept, another caller or scope has a plan of its own.
"""

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request

from governance import services
from governance.models import Position, Resident, Role, User
from grids.api import CaseListSerializer
from grids.models import Case
from mailbox import services as mailbox_services
from mailbox.api import LetterListSerializer
from mailbox.models import Letter


def declared_fields_row(serializer, obj):
    """What DRF's field-by-field representation gives for `obj`."""
    return serializers.ModelSerializer.to_representation(serializer, obj)


@pytest.mark.parametrize("state", ["reported", "returned", "escalated", "dispatched", "in_progress", "closed"])
def test_case_rows_match_the_declared_fields(state, make_case, city, street_staff, api):
    case = make_case(state, address="1栋2单元")
    if state == "closed":
        Case.objects.filter(pk=case.pk).update(closed_reason="invalid")
    response = api(street_staff).get("/api/v1/cases/")
    assert response.status_code == 200
    listed = {row["id"]: row for row in response.json()["results"]}
    serializer = CaseListSerializer(context={"now": timezone.now()})
    expected = declared_fields_row(serializer, Case.objects.get(pk=case.pk))
    assert listed[case.pk] == expected
    assert list(listed[case.pk]) == CaseListSerializer.Meta.fields
    if state == "dispatched":
        assert listed[case.pk]["holder"] == {"kind": "department", "id": city.department.pk, "name": "城管局"}


@pytest.mark.parametrize("state", ["submitted", "assigned", "closed"])
def test_letter_rows_match_the_declared_fields(state, make_letter, secretary, resident, api):
    letter = make_letter(state)
    for user, staff_view in ((secretary, True), (resident, False)):
        response = api(user).get("/api/v1/letters/")
        assert response.status_code == 200
        listed = {row["id"]: row for row in response.json()["results"]}
        serializer = LetterListSerializer(
            context={"now": timezone.now(), "staff_view": staff_view, "resident_ids": (letter.writer_id,)}
        )
        assert listed[letter.pk] == declared_fields_row(serializer, Letter.objects.get(pk=letter.pk))
        assert list(listed[letter.pk]) == LetterListSerializer.Meta.fields


@pytest.mark.parametrize("moved_out", [False, True])
def test_resident_rows_match_the_declared_fields(moved_out, resident_record, community_staff, api):
    from governance.api import ResidentSerializer

    if moved_out:
        Resident.objects.filter(pk=resident_record.pk).update(moved_out_on="2026-03-04", birth_date=None)
    query = "?archived=true&unmask=true" if moved_out else "?unmask=true"
    response = api(community_staff).get(f"/api/v1/residents/{query}")  # whole values: community staff keep records
    assert response.status_code == 200
    [listed] = response.json()["results"]
    resident = Resident.objects.select_related("household__building").get(pk=resident_record.pk)
    assert listed == declared_fields_row(ResidentSerializer(), resident)
    assert list(listed) == ResidentSerializer.Meta.fields
    assert listed["tags"] == ["party_member"] and listed["id_number"] == "510603198001011237"


def test_category_rows_match_the_declared_fields(categories, street_staff, api):
    from grids.api import CaseCategorySerializer
    from grids.models import CaseCategory

    CaseCategory.objects.filter(pk=categories.clutter.pk).update(default_department=None, is_public=True)
    response = api(street_staff).get("/api/v1/case-categories/")
    assert response.status_code == 200
    listed = {row["id"]: row for row in response.json()}
    assert len(listed) == CaseCategory.objects.count()
    for category in CaseCategory.objects.select_related("parent"):
        assert listed[category.pk] == declared_fields_row(CaseCategorySerializer(), category), category.code
        assert list(listed[category.pk]) == CaseCategorySerializer.Meta.fields
    assert any(row["group"] is None for row in listed.values()) and any(row["group"] for row in listed.values())
    detail = api(street_staff).get(f"/api/v1/case-categories/{categories.clutter.pk}/").json()
    assert detail == listed[categories.clutter.pk]


def test_a_page_of_residents_names_each_ones_tags_in_order(city, resident_record, community_staff, api):
    """The list reads the tags with the page (`TagCodes`); each row has its own, in the tags' order, as the detail."""
    from governance.models import ResidentTag
    from tests.factories import HouseholdFactory, ResidentFactory

    untagged = ResidentFactory(household=HouseholdFactory(building=city.b1, room="1单元102"), name="李四")
    tags = list(ResidentTag.objects.order_by("-order", "-id")[:3])
    resident_record.tags.add(*tags)
    client = api(community_staff)
    rows = {row["id"]: row["tags"] for row in client.get("/api/v1/residents/").json()["results"]}
    detail = client.get(f"/api/v1/residents/{resident_record.pk}/").json()["tags"]
    assert rows[resident_record.pk] == detail and len(detail) == len(
        {*tags, ResidentTag.objects.get(code="party_member")}
    )
    assert detail == [t.code for t in resident_record.tags.order_by("order", "id")]
    assert rows[untagged.pk] == []


def test_case_lists_in_english_name_states_in_english(make_case, street_staff, api):
    make_case("escalated")
    row = api(street_staff).get("/api/v1/cases/", HTTP_ACCEPT_LANGUAGE="en").json()["results"][0]
    assert row["state_display"] == "Escalated, awaiting dispatch"
    row = api(street_staff).get("/api/v1/cases/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()["results"][0]
    assert row["state_display"] == "已吹哨待派单"


def test_a_category_renamed_in_the_admin_shows_in_the_next_list(make_case, categories, street_staff, api):
    make_case()
    assert api(street_staff).get("/api/v1/cases/").json()["results"][0]["category"]["name"] == categories.clutter.name
    categories.clutter.name = "乱堆乱放（更名）"
    categories.clutter.save()
    row = api(street_staff).get("/api/v1/cases/").json()["results"][0]
    assert row["category"] == {"id": categories.clutter.pk, "name": "乱堆乱放（更名）", "group": categories.group.name}


def test_a_category_added_behind_the_cache_is_still_named(make_case, categories, street_staff, api):
    make_case()
    api(street_staff).get("/api/v1/cases/")  # the catalogue is now cached
    new = type(categories.clutter).objects.bulk_create(
        [type(categories.clutter)(code="city-new", name="新分类", parent=categories.group)]
    )[0]
    case = make_case(category=new)
    rows = {r["id"]: r for r in api(street_staff).get("/api/v1/cases/").json()["results"]}
    assert rows[case.pk]["category"]["name"] == "新分类"


def test_count_is_exact_below_the_limit_and_kept_above_it(settings, make_case, street_staff, api):
    settings.EXACT_COUNT = 3
    client = api(street_staff)
    for _ in range(3):
        make_case()
    assert client.get("/api/v1/cases/").json()["count"] == 3
    make_case()
    assert client.get("/api/v1/cases/").json()["count"] == 4  # first counted above the limit
    newest = make_case()
    body = client.get("/api/v1/cases/").json()
    assert body["count"] == 4  # the count kept from a moment ago …
    assert newest.pk in [row["id"] for row in body["results"]]  # … but the rows are now's
    assert len(body["results"]) == 5


def test_the_next_page_never_depends_on_a_kept_count(settings, make_case, street_staff, api):
    settings.EXACT_COUNT = 2
    client = api(street_staff)
    made = [make_case() for _ in range(3)]
    assert client.get("/api/v1/cases/?page_size=2").json()["count"] == 3
    made += [make_case() for _ in range(2)]  # 5 now; the kept count still says 3 (2 pages)
    first = client.get("/api/v1/cases/?page_size=2").json()
    assert first["count"] == 3 and first["next"]
    second = client.get(first["next"].replace("http://testserver", "")).json()
    assert second["next"], "a third page exists although the kept count says two"
    third = client.get(second["next"].replace("http://testserver", "")).json()
    assert third["next"] is None
    seen = [row["id"] for page in (first, second, third) for row in page["results"]]
    assert sorted(seen) == sorted(case.pk for case in made)
    assert client.get("/api/v1/cases/?page_size=2&page=9").status_code == 404
    assert client.get("/api/v1/cases/?page_size=2&page=0").status_code == 404


def test_a_filtered_count_is_its_own(settings, make_case, street_staff, api):
    settings.EXACT_COUNT = 1
    client = api(street_staff)
    for _ in range(3):
        make_case()
    make_case("escalated")
    make_case("escalated")
    assert client.get("/api/v1/cases/").json()["count"] == 5
    assert client.get("/api/v1/cases/?state=escalated").json()["count"] == 2
    assert client.get("/api/v1/cases/?state=reported").json()["count"] == 3


def test_a_list_that_can_match_nothing_counts_nothing(make_case, api):
    from tests.factories import UserFactory

    make_case()
    nobody = UserFactory(username="no_position")  # signed in, with no position anywhere
    body = api(nobody).get("/api/v1/cases/").json()
    assert body["count"] == 0 and body["results"] == [] and body["next"] is None


def test_a_small_list_is_counted_in_the_query_of_its_page(settings, make_case, street_staff, api):
    """Within EXACT_COUNT the count comes with the page's rows, one statement for both: the same count, pages
    and refusals as when they were two."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.EXACT_COUNT = 10
    client = api(street_staff)
    assert client.get("/api/v1/cases/").json() == {"count": 0, "next": None, "previous": None, "results": []}
    made = [make_case() for _ in range(5)]
    with CaptureQueriesContext(connection) as queries:
        first = client.get("/api/v1/cases/?page_size=2").json()
    cases = [q["sql"] for q in queries if 'FROM "grids_case"' in q["sql"]]
    assert len(cases) == 1 and "COUNT(*)" in cases[0], cases
    assert first["count"] == 5 and len(first["results"]) == 2 and first["next"]
    third = client.get("/api/v1/cases/?page_size=2&page=3").json()
    assert third["count"] == 5 and len(third["results"]) == 1 and third["next"] is None
    last = client.get("/api/v1/cases/?page_size=2&page=last").json()
    assert last["results"] == third["results"]
    assert client.get("/api/v1/cases/?page_size=2&page=4").status_code == 404
    assert client.get("/api/v1/cases/?page_size=2&page=0").status_code == 404
    assert client.get("/api/v1/cases/?page_size=2&page=x").status_code == 404
    assert client.get("/api/v1/cases/?page_size=2&page=500000000000000000000").status_code == 404
    assert client.get("/api/v1/cases/?page_size=2&state=reported&page=600").status_code == 404  # a new question
    seen = [
        row["id"] for n in (1, 2, 3) for row in client.get(f"/api/v1/cases/?page_size=2&page={n}").json()["results"]
    ]
    assert sorted(seen) == sorted(case.pk for case in made)
    # Past EXACT_COUNT the count is counted in full, once, and kept for the pages that follow.
    settings.EXACT_COUNT = 3
    assert client.get("/api/v1/cases/?page_size=2&state=reported").json()["count"] == 5
    make_case()
    with CaptureQueriesContext(connection) as queries:
        kept = client.get("/api/v1/cases/?page_size=2&state=reported").json()
    cases = [q["sql"] for q in queries if 'FROM "grids_case"' in q["sql"]]
    assert kept["count"] == 5 and len(cases) == 1 and "COUNT(*)" not in cases[0], cases


def test_a_small_list_of_letters_is_sorted_from_its_own_rows(make_letter, secretary, api):
    """Once a list is counted within EXACT_COUNT its pages sort the list's own rows (no index walk in the list's
    order): the same letters in the same order, ties on the minute broken by id as before."""
    import datetime as dt

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now().replace(second=0, microsecond=0)
    made = [  # two and two written in the same minute
        make_letter(now=now - dt.timedelta(minutes=i // 2), subject=f"第{i}封", body=f"第{i}封信：楼道灯坏了一个月。")
        for i in range(5)
    ]
    expected = [letter.pk for letter in sorted(made, key=lambda letter: (letter.created_at, letter.pk), reverse=True)]
    client = api(secretary)

    def read(n):
        with CaptureQueriesContext(connection) as queries:
            rows = [row["id"] for row in client.get(f"/api/v1/letters/?page_size=2&page={n}").json()["results"]]
        return rows, " ".join(q["sql"] for q in queries)

    first, sql = read(1)
    assert "COALESCE" not in sql  # not yet counted: the index walk
    pages = [read(n) for n in (1, 2, 3)]
    assert all("COALESCE" in sql for _rows, sql in pages)
    assert first + pages[1][0] + pages[2][0] == [pk for rows, _sql in pages for pk in rows] == expected


def test_a_sorted_small_list_keeps_every_term_it_cannot_rewrite(city, make_case):
    """Only a plain column of the model is written as `COALESCE(x, x)`; the primary key, a relation (ordered by its
    own model's order), a lookup across relations and an annotation are left as they are."""
    from django.db.models import F

    from governance.api_base import ListPlan

    make_case()
    cases = Case.objects.annotate(newest=F("created_at")).order_by(
        "-newest", "grid", "grid__path", "-created_at", "-id"
    )
    terms = ListPlan(cases, ["id"], sort_small=True)._sorted_ordering()
    assert terms[:3] == ["-newest", "grid", "grid__path"] and terms[4] == "-id"
    assert "COALESCE" in str(Case.objects.order_by(terms[3]).values("pk").query)


def public_ids(client):
    return [row["id"] for row in client.get("/api/v1/public/letters/").json()["results"]]


def test_public_letters_show_every_change_at_once(make_letter, secretary, resident, client):
    assert public_ids(client) == []
    letter = make_letter("closed", allow_publication=True)
    if not letter.published:
        letter = mailbox_services.letter_publish(letter=letter, by=secretary)
    assert public_ids(client) == [letter.pk]
    mailbox_services.letter_unpublish(letter=letter, by=secretary, note="再核实")
    assert public_ids(client) == []
    letter.refresh_from_db()
    letter = mailbox_services.letter_publish(letter=letter, by=secretary)
    assert public_ids(client) == [letter.pk]
    mailbox_services.letter_make_private(letter=letter, by=resident)
    assert public_ids(client) == [], "a letter its writer made private must leave the public page at once"


def test_public_letters_saved_outside_the_workflow_show_at_once(make_letter, secretary, client):
    letter = make_letter("closed", allow_publication=True)
    if not letter.published:
        letter = mailbox_services.letter_publish(letter=letter, by=secretary)
    assert client.get("/api/v1/public/letters/").json()["results"][0]["subject"] == letter.public_subject
    letter.public_subject = "楼道照明（管理员更正）"
    letter.save(update_fields=["public_subject"])  # as the admin does, without an event
    assert client.get("/api/v1/public/letters/").json()["results"][0]["subject"] == "楼道照明（管理员更正）"


def test_public_letters_cache_is_per_query_and_address(make_letter, secretary, city, category, client):
    letter = make_letter("closed", allow_publication=True)
    if not letter.published:
        letter = mailbox_services.letter_publish(letter=letter, by=secretary)
    assert public_ids(client) == [letter.pk]
    assert client.get(f"/api/v1/public/letters/?unit={city.s2.pk}").json()["results"] == []
    assert client.get("/api/v1/public/letters/?unit=abc").status_code == 400
    request = Request(RequestFactory().get("/api/v1/public/letters/", HTTP_HOST="127.0.0.1"))
    from mailbox.selectors import public_letters_cache_key

    here = Request(RequestFactory().get("/api/v1/public/letters/"))
    assert public_letters_cache_key(request) != public_letters_cache_key(here)


def test_a_kept_count_answers_the_same_question_by_the_same_person(settings, city, make_case, street_staff, api):
    from tests.factories import UserFactory

    settings.EXACT_COUNT = 1
    client = api(street_staff)
    for _ in range(3):
        make_case()
    assert client.get("/api/v1/cases/?page_size=2").json()["count"] == 3
    make_case()
    assert client.get("/api/v1/cases/?page_size=2").json()["count"] == 3  # kept …
    assert client.get("/api/v1/cases/?page_size=2&page=2").json()["count"] == 3  # … for every page of it
    assert client.get("/api/v1/cases/?page_size=2&state=reported").json()["count"] == 4  # another question
    colleague = UserFactory(username="colleague")
    services.position_grant(by=None, user=colleague, role=Role.STREET_STAFF, unit=city.s1)
    assert api(colleague).get("/api/v1/cases/?page_size=2").json()["count"] == 4  # another person
    services.position_grant(by=None, user=street_staff, role=Role.STREET_STAFF, unit=city.s2)
    again = api(User.objects.get(pk=street_staff.pk))  # as the next request would: the user read afresh
    assert again.get("/api/v1/cases/?page_size=2").json()["count"] == 4  # another scope


def test_filters_the_query_does_not_name_change_nothing(city, resident_record, community_staff, api):
    from tests.factories import HouseholdFactory, ResidentFactory

    moved = ResidentFactory(household=HouseholdFactory(building=city.b1), name="王五")
    Resident.objects.filter(pk=moved.pk).update(moved_out_on="2026-01-01")
    client = api(community_staff)
    names = lambda query: sorted(r["name"] for r in client.get(f"/api/v1/residents/{query}").json()["results"])  # noqa: E731
    assert names("") == ["张三明"]  # not named, `archived` still hides those who moved out
    assert names("?archived=true") == ["王五"]
    assert names(f"?unit={city.g1.pk}&q=张") == ["张三明"]
    assert names("?colour=blue") == ["张三明"]  # what is no filter is no filter
    response = client.get("/api/v1/residents/?unit=999999")
    assert response.status_code == 400 and "unit" in response.json()["errors"]
    response = api(community_staff).get("/api/v1/cases/?state=bogus&created_after=yesterday")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"state", "created_after"}


def test_a_unit_filter_naming_the_whole_scope_is_left_to_the_scope(city, make_case, street_staff, outsider, api):
    """Staff listing their own unit: the street condition is the scope's and is not repeated (it made PostgreSQL
    misjudge a street's cases); the answer is the same."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from grids import services as case_services
    from tests.factories import UserFactory

    worker_g4, staff_c3 = UserFactory(username="worker_g4"), UserFactory(username="staff_c3")
    services.position_grant(by=None, user=worker_g4, role=Role.GRID_WORKER, unit=city.g4)
    services.position_grant(by=None, user=staff_c3, role=Role.COMMUNITY_STAFF, unit=city.c3)
    mine = {make_case().pk}
    elsewhere = make_case(by=worker_g4, grid=city.g4)  # S2's case, sent to 城管局
    elsewhere = case_services.case_escalate(case=elsewhere, by=staff_c3, note="需城管执法")
    case_services.case_dispatch(case=elsewhere, by=outsider, department=city.department)
    client = api(street_staff)
    ids = lambda query, c=client: {r["id"] for r in c.get(f"/api/v1/cases/{query}").json()["results"]}  # noqa: E731
    with CaptureQueriesContext(connection) as queries:
        assert ids(f"?unit={city.s1.pk}") == ids("") == mine
    page = [q["sql"] for q in queries if "grids_case" in q["sql"] and "LIMIT 21" in q["sql"]][0]
    page_ids = page[page.index('"grids_case"."id" IN (') :]  # the page's ids (its count is a subquery of its own)
    assert page_ids.count('"street_id" = ') == 1, page

    # More than the one subtree in scope (a department as well): the filter stays, and narrows.
    services.position_grant(by=None, user=street_staff, role=Role.DEPARTMENT_STAFF, department=city.department)
    both = api(User.objects.get(pk=street_staff.pk))
    assert ids("", both) == mine | {elsewhere.pk}
    assert ids(f"?unit={city.s1.pk}", both) == mine
    assert ids(f"?unit={city.s2.pk}", both) == {elsewhere.pk}  # out of the street, but dispatched to their department


@pytest.mark.parametrize("path", ["/api/v1/cases/", "/api/v1/letters/", "/api/v1/residents/", "/api/v1/points/boards/"])
def test_naming_the_unit_of_ones_own_position_costs_no_query_and_answers_the_same(
    path, city, community_staff, api, django_assert_num_queries
):
    """The lists' most frequent filter: the staff's own community. Its unit is known from the scope; another
    unit of the subtree is looked up (and one outside it is still a 400, and a unit id that is not a number)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api(User.objects.get(pk=community_staff.pk))
    with CaptureQueriesContext(connection) as own:
        assert client.get(path, {"unit": city.c1.pk}).status_code == 200
    with CaptureQueriesContext(connection) as below:
        assert client.get(path, {"unit": city.g1.pk}).status_code == 200

    def unit_lookups(queries):
        return [q["sql"] for q in queries if q["sql"].startswith('SELECT "governance_unit"."id"')]

    assert len(unit_lookups(below)) == 1 and not unit_lookups(own), unit_lookups(own)
    for outside in (city.c2.pk, city.s2.pk, "1.0", "c1"):
        assert client.get(path, {"unit": outside}).status_code == 400, outside


def test_the_own_unit_of_the_scope_filters_as_the_unit_looked_up_does(city, make_case, grid_worker, api):
    from governance.selectors import scope_of

    mine = make_case()
    worker = User.objects.get(pk=grid_worker.pk)
    assert scope_of(worker).own_units == {city.g1.pk: city.g1.path}
    rows = api(worker).get("/api/v1/cases/", {"unit": city.g1.pk}).json()["results"]
    assert [r["id"] for r in rows] == [mine.pk]
    assert api(worker).get("/api/v1/cases/", {"unit": city.b1.pk}).json()["count"] == 0  # a building: its own cases
    Position.objects.filter(user=worker).delete()  # taken away (the admin): counts from the next request
    assert api(User.objects.get(pk=grid_worker.pk)).get("/api/v1/cases/", {"unit": city.g1.pk}).status_code == 400


def built_lists(monkeypatch, viewset):
    """How many times `viewset` builds its list's queryset (a kept plan builds none)."""
    built = []
    original = viewset.get_queryset

    def counting(self):
        built.append(self.action)
        return original(self)

    monkeypatch.setattr(viewset, "get_queryset", counting)
    return built


def test_a_kept_plan_reads_the_rows_and_the_count_anew(monkeypatch, make_case, street_staff, api):
    from grids.api import CaseViewSet

    built = built_lists(monkeypatch, CaseViewSet)
    client = api(street_staff)
    first = make_case()
    body = client.get("/api/v1/cases/?state=reported").json()
    assert body["count"] == 1 and [r["id"] for r in body["results"]] == [first.pk]
    newest = make_case(title="井盖松动")
    body = client.get("/api/v1/cases/?state=reported").json()
    assert len(built) == 1, "the second request runs the kept SQL"
    assert body["count"] == 2 and [r["id"] for r in body["results"]] == [newest.pk, first.pk]
    assert body["results"][0]["title"] == "井盖松动"
    Case.objects.filter(pk=first.pk).update(title="已改标题")  # a change outside the workflow shows too
    assert client.get("/api/v1/cases/?state=reported").json()["results"][1]["title"] == "已改标题"
    client.get("/api/v1/cases/?state=reported&page_size=1&page=2")  # another page of the same question
    assert len(built) == 1
    assert client.get("/api/v1/cases/?state=escalated").json()["count"] == 0  # another question
    assert len(built) == 2


def test_a_plan_is_kept_for_a_while_only(settings, monkeypatch, make_case, street_staff, api):
    import time_machine

    from grids.api import CaseViewSet

    built = built_lists(monkeypatch, CaseViewSet)
    client = api(street_staff)
    with time_machine.travel("2026-06-01 10:00 +0800", tick=False) as traveller:
        client.get("/api/v1/cases/")
        traveller.shift(settings.LIST_PLAN_SECONDS - 1)
        client.get("/api/v1/cases/")
        assert len(built) == 1
        traveller.shift(2)
        client.get("/api/v1/cases/")
        assert len(built) == 2
    settings.LIST_PLAN_SECONDS = 0  # none kept
    client.get("/api/v1/cases/")
    client.get("/api/v1/cases/")
    assert len(built) == 4


@pytest.mark.parametrize("path", ["/api/v1/cases/?overdue=true", "/api/v1/letters/?overdue=true"])
def test_a_list_filtered_by_the_clock_is_never_kept(path, monkeypatch, make_case, make_letter, secretary, api):
    """`overdue=` compares deadlines with now: a plan built before a deadline passed would never list the late."""
    import time_machine

    from grids.api import CaseViewSet
    from mailbox.api import LetterViewSet

    late = make_case("in_progress") if "cases" in path else make_letter("submitted")
    deadline = late.handle_deadline if "cases" in path else late.accept_deadline
    built = built_lists(monkeypatch, CaseViewSet if "cases" in path else LetterViewSet)
    client = api(secretary)
    with time_machine.travel(deadline - timezone.timedelta(seconds=10), tick=False) as traveller:
        assert client.get(path).json()["count"] == 0
        traveller.shift(20)  # well within the time a plan is kept
        assert [r["id"] for r in client.get(path).json()["results"]] == [late.pk]
    assert len(built) == 2


def test_each_caller_and_scope_has_a_plan_of_its_own(city, make_case, grid_worker, grid_worker_2, api):
    mine, theirs = make_case(), make_case(by=grid_worker_2, grid=city.g3)
    assert [r["id"] for r in api(grid_worker).get("/api/v1/cases/").json()["results"]] == [mine.pk]
    assert [r["id"] for r in api(grid_worker_2).get("/api/v1/cases/").json()["results"]] == [theirs.pk]
    worker = User.objects.get(pk=grid_worker.pk)
    assert api(worker).get("/api/v1/cases/", {"unit": city.g1.pk}).json()["count"] == 1
    Position.objects.filter(user=worker).update(unit=city.g3)  # moved to the other grid (the admin)
    moved = api(User.objects.get(pk=grid_worker.pk))
    assert [r["id"] for r in moved.get("/api/v1/cases/").json()["results"]] == [theirs.pk]
    assert moved.get("/api/v1/cases/", {"unit": city.g1.pk}).status_code == 400  # the old grid is no longer theirs


def test_a_kept_plan_answers_what_a_fresh_one_does(settings, make_case, make_letter, street_staff, secretary, api):
    """Every filter, page and size, answered by a plan built just now and by the same plan kept."""
    from governance.api_base import forget_list_plans

    for state in ("reported", "escalated", "in_progress", "closed"):
        make_case(state)
    for state in ("submitted", "assigned", "closed"):
        make_letter(state, subject=f"来信（{state}）")
    queries = [
        (street_staff, "/api/v1/cases/?page_size=2&page=2"),
        (street_staff, "/api/v1/cases/?state=reported&state=closed"),
        (street_staff, "/api/v1/cases/?open=true&q=楼道"),
        (street_staff, "/api/v1/cases/?mine=true"),
        (street_staff, "/api/v1/cases/?category=1&department=1"),
        (secretary, "/api/v1/letters/?open=false"),
        (secretary, "/api/v1/letters/?page_size=1"),
    ]
    for user, path in queries:
        forget_list_plans()
        fresh = api(user).get(path)
        kept = api(user).get(path)
        assert fresh.status_code == kept.status_code == 200, path
        assert fresh.json() == kept.json(), path


def kept_plan_lists() -> list:
    """(path, viewset) of every list whose SQL is kept (`LightListMixin`), from the URL conf."""
    from django.urls import URLResolver, get_resolver

    from governance.api_base import LightListMixin

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    found = []
    for route, view in walk(get_resolver().url_patterns):
        cls = getattr(view, "cls", None)
        if cls and issubclass(cls, LightListMixin) and getattr(view, "actions", {}).get("get") == "list":
            if route.endswith("/$") and "(?P<format>" not in route:
                found.append(("/" + route.replace("^", "").replace("$", ""), cls))
    return found


def test_every_filter_whose_sql_reads_the_clock_is_declared(settings, city, street_staff, admin_user, api):
    """Each filter of each list whose SQL is kept, run through the API at two moments a day apart: a filter whose
    SQL moved must be among the filter set's `clock_filters` (its lists are then never kept), and a declared one
    must move. A new filter that compares with now fails here until it is declared."""
    import django_filters
    import time_machine
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.api_base import FilterBackend

    settings.LIST_PLAN_SECONDS = 0
    lists = kept_plan_lists()
    assert {cls.__name__ for _path, cls in lists} >= {
        "CaseViewSet",
        "LetterViewSet",
        "ResidentViewSet",
        "BoardViewSet",
        "CaseCategoryViewSet",
    }

    def sample(f):
        kind = type(f).__name__
        if kind == "MonthFilter":
            return "2026-05"
        if kind == "SchemeFilter":
            return "resident"
        if isinstance(f, django_filters.BooleanFilter):
            return "true"
        if isinstance(f, django_filters.DateFilter):
            return "2026-06-01"
        if isinstance(f, django_filters.ModelChoiceFilter):
            return str(city.s1.pk) if f.field_name == "unit" else "1"
        if isinstance(f, (django_filters.ChoiceFilter, django_filters.MultipleChoiceFilter)):
            return str(f.extra["choices"][0][0])
        if isinstance(f, django_filters.NumberFilter):
            return "1"
        return "楼道"

    def sql(path, query, table):
        """The list's own queries (not those filling a cache that the day's travel emptied)."""
        with CaptureQueriesContext(connection) as queries:
            response = api(admin_user).get(path, query)
        assert response.status_code in (200, 400), (path, query, response.content[:300])
        return [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"]]

    for path, cls in lists:
        view = cls()
        # A filter set of its own, or one generated from `filterset_fields`.
        own = getattr(cls, "filterset_class", None)
        model = own._meta.model if own else cls.serializer_class.Meta.model
        filterset_class = FilterBackend().get_filterset_class(view, model.objects.all())
        table = model._meta.db_table
        declared = set(getattr(filterset_class, "clock_filters", ()))
        moved = set()
        for name, f in filterset_class.base_filters.items():
            query = {name: sample(f)}
            with time_machine.travel("2026-06-01 10:00 +0800", tick=False):
                before = sql(path, query, table)
            with time_machine.travel("2026-06-02 10:00 +0800", tick=False):
                after = sql(path, query, table)
            assert before, (path, query)
            if before != after:
                moved.add(name)
        assert moved == declared, (path, moved, declared)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC"])
def test_datetimes_are_written_as_drf_writes_them(zone):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from governance.api_base import iso_datetime

    values = [
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Shanghai")),
        dt.datetime(2026, 3, 1, 8, 0),  # naive: DRF's own path
    ]
    with timezone.override(ZoneInfo(zone)):
        for value in values:
            assert iso_datetime(value) == serializers.DateTimeField().to_representation(value)
    with timezone.override(ZoneInfo("UTC")):
        assert iso_datetime(values[0]) == "2026-01-01T00:00:00Z"


def test_light_rows_are_named_like_model_attributes():
    from governance.api_base import light_rows

    [row] = light_rows(
        [(7, "E-1", 3, "一网格", "旌阳街道")], ["id", "number", "grid_id", "grid__name", "grid__street__name"]
    )
    assert (row.pk, row.id, row.number, row.grid_id, row.grid.name, row.grid.street.name) == (
        7,
        7,
        "E-1",
        3,
        "一网格",
        "旌阳街道",
    )
    for columns in (["id", "grid", "grid__name"], ["id", "id"], ["id", "grid__na me"]):
        with pytest.raises(ValueError):
            light_rows([], columns)


def test_among_ids_answers_what_in_answers(city):
    """`AmongIds` (PostgreSQL: `= ANY(ARRAY(subquery))`) is `IN (subquery)`, also in an OR and for no ids."""
    from django.db.models import Q

    from governance.models import Unit
    from governance.selectors import AmongIds

    c1 = Unit.objects.filter(path__startswith=city.c1.path)
    s2 = Unit.objects.filter(path__startswith=city.s2.path)
    assert set(Unit.objects.filter(AmongIds("id", c1.values("id")))) == set(c1) != set()
    either = Unit.objects.filter(Q(AmongIds("id", c1.values("id"))) | Q(AmongIds("id", s2.values("id"))))
    assert set(either) == set(c1) | set(s2) and set(s2) - set(c1)
    assert not Unit.objects.filter(AmongIds("id", Unit.objects.none().values("id"))).exists()
    assert set(Unit.objects.filter(Q(AmongIds("id", Unit.objects.none().values("id"))) | Q(pk=city.g1.pk))) == {city.g1}


def test_page_links_are_drfs(make_case, street_staff, api):
    """The links to the next and previous pages (kept per URL and page, `api_base._page_link`) are those DRF writes:
    the caller's query kept, sorted, `page` replaced, and the first page named without it."""
    from rest_framework.utils.urls import remove_query_param, replace_query_param

    for _ in range(5):
        make_case()
    client = api(street_staff)
    base = "http://testserver/api/v1/cases/"
    for query, previous, following in (
        ("?page_size=2&state=reported", None, 2),
        ("?state=reported&page=2&page_size=2", 1, 3),
        ("?page=3&page_size=2&state=reported&zz=%E4%B8%AD", 2, None),
    ):
        for _ in range(2):  # the second time from the kept links
            body = client.get("/api/v1/cases/" + query).json()
            url = base + query
            assert body["next"] == (following and replace_query_param(url, "page", following))
            expected_previous = {None: None, 1: remove_query_param(url, "page")}.get(previous)
            if previous and previous > 1:
                expected_previous = replace_query_param(url, "page", previous)
            assert body["previous"] == expected_previous
    assert body["previous"] == base + "?page=2&page_size=2&state=reported&zz=%E4%B8%AD"


def test_a_list_counted_small_is_counted_by_the_walk_of_its_page(settings, make_case, street_staff, api):
    """Once a list has been counted within EXACT_COUNT, its page's ids come with `COUNT(*) OVER ()` in one WITH
    query (`ListPlan._windowed`): one walk of the list, the same counts, pages and refusals; a list that grows past
    EXACT_COUNT meanwhile has its whole count, then is counted as large lists are."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.EXACT_COUNT = 10
    client = api(street_staff)
    made = [make_case() for _ in range(5)]
    newest = [case.pk for case in reversed(made)]

    def page(query):
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/cases/" + query)
        statements = [q["sql"] for q in queries if 'FROM "grids_case"' in q["sql"]]
        return response, statements

    first, statements = page("?page_size=2")
    assert "OVER ()" not in statements[0]  # not yet known to be small: the bounded count
    for number, ids in ((1, newest[:2]), (2, newest[2:4]), (3, newest[4:])):
        response, statements = page(f"?page_size=2&page={number}")
        body = response.json()
        assert len(statements) == 1 and "OVER ()" in statements[0], statements
        assert body["count"] == 5 and [row["id"] for row in body["results"]] == ids
        assert (body["next"] is None) == (number == 3)
    last = page("?page_size=2&page=last")[0].json()  # counted first to know which page is last
    assert last["count"] == 5 and [row["id"] for row in last["results"]] == newest[4:]
    assert page("?page_size=2&page=4")[0].status_code == 404
    assert page("?page_size=2&state=closed")[0].json()["count"] == 0

    for _ in range(7):  # 12 cases: past EXACT_COUNT
        make_case()
    grown, statements = page("?page_size=2")  # its whole count, kept: not counted a second time
    assert len(statements) == 1 and "OVER ()" in statements[0], statements
    assert grown.json()["count"] == 12 and len(grown.json()["results"]) == 2
    again, statements = page("?page_size=2&page=6")  # counted as a large list now: the kept count
    assert again.json()["count"] == 12 and again.json()["next"] is None
    assert all("OVER ()" not in sql for sql in statements)
