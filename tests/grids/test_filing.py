"""Filing a case: who may file where, what the case looks like when it lands, the photos it may carry, and the
possible duplicates offered while filing."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from governance import services as governance_services
from governance.errors import DomainError, InvalidInput
from governance.models import Notification
from grids import selectors, services
from grids.models import Case, CasePhoto, CaseState, Source, Urgency

from .conftest import photo

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 3, 9, 10, 0, tzinfo=SHANGHAI)


def refused(status, call, *args, **kwargs):
    with pytest.raises(DomainError) as info:
        call(*args, **kwargs)
    assert info.value.status_code == status, info.value.message
    return info.value


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def file(by, category, **fields):
    fields.setdefault("title", "楼道堆放杂物")
    fields.setdefault("description", "1栋2单元楼道堆满纸箱，影响通行。")
    return services.case_file(by=by, category=category, **fields)


# --- Who files where -----------------------------------------------------------------------------------------


def test_a_grid_worker_files_in_their_grid_and_the_case_lands_at_the_community(
    city, categories, grid_worker, community_staff, secretary, street_staff
):
    case = file(
        grid_worker,
        categories.clutter,
        grid=city.g1,
        address="幸福路1号",
        urgency=Urgency.URGENT,
        source=Source.RESIDENT,
        now=NOW,
    )
    case.refresh_from_db()
    assert re.fullmatch(r"SJ-2026-\d{6}", case.number)
    assert case.number == f"SJ-2026-{case.pk:06d}"
    assert (case.state, case.grid, case.reporter) == (CaseState.REPORTED, city.g1, grid_worker)
    assert (case.holder_unit, case.holder_department) == (city.c1, None)
    assert (case.urgency, case.source, case.address) == (Urgency.URGENT, Source.RESIDENT, "幸福路1号")
    assert case.created_at == NOW
    event = case.events.get()
    assert (event.action, event.actor, event.from_state, event.to_state, event.created_at) == (
        "file",
        grid_worker,
        "",
        "reported",
        NOW,
    )
    # The community's staff are told a new case waits for triage; nobody else is.
    new = Notification.objects.get(user=community_staff, kind="case_new")
    assert case.number in new.title
    assert new.url == case.get_absolute_url()
    assert Notification.objects.filter(user=secretary, kind="case_new").count() == 1
    assert not Notification.objects.filter(user__in=[grid_worker, street_staff]).exists()


def test_the_number_carries_the_year_of_filing(city, categories, grid_worker):
    first = file(grid_worker, categories.clutter, grid=city.g1, now=NOW)
    second = file(grid_worker, categories.clutter, grid=city.g1, now=dt.datetime(2027, 1, 2, 9, tzinfo=SHANGHAI))
    assert first.number.startswith("SJ-2026-")
    assert second.number.startswith("SJ-2027-")
    assert first.number[-6:] != second.number[-6:]


def test_new_year_is_counted_in_beijing_time(city, categories, grid_worker):
    """00:30 on 1 January in Beijing is still 31 December in UTC: the number says the local year."""
    case = file(grid_worker, categories.clutter, grid=city.g1, now=dt.datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI))
    assert case.number.startswith("SJ-2027-")


@pytest.mark.parametrize("grid", ["g2", "g3", "g4"])
def test_a_grid_worker_cannot_file_outside_their_grid(grid, city, categories, grid_worker):
    refused(400, file, grid_worker, categories.clutter, grid=getattr(city, grid))
    assert not Case.objects.exists()


def test_community_staff_file_in_any_grid_of_their_community(city, categories, community_staff):
    case = file(community_staff, categories.clutter, grid=city.g2)
    assert (case.grid, case.holder_unit, case.reporter) == (city.g2, city.c1, community_staff)
    refused(400, file, community_staff, categories.clutter, grid=city.g3)
    assert Case.objects.count() == 1


@pytest.mark.parametrize("name", ["street_staff", "department_staff", "resident", "outsider", "admin_user"])
def test_others_cannot_file_in_a_grid(name, request, city, categories):
    user = request.getfixturevalue(name)
    error = refused(400 if name == "outsider" else 403, file, user, categories.clutter, grid=city.g1)
    assert str(error.message)
    assert not Case.objects.exists()


def test_a_building_puts_the_case_in_its_grid(city, categories, grid_worker, community_staff):
    case = file(grid_worker, categories.clutter, building=city.b1)
    assert (case.grid, case.building) == (city.g1, city.b1)
    # A grid sent with it must be the building's own: a mismatch is an error, not a silent choice.
    case = file(community_staff, categories.clutter, grid=city.g1, building=city.b1)
    assert case.grid == city.g1
    assert refused(400, file, community_staff, categories.clutter, grid=city.g2, building=city.b1).field == "building"


def test_a_building_outside_ones_grid_or_a_unit_that_is_not_a_building_is_refused(city, categories, grid_worker):
    assert refused(400, file, grid_worker, categories.clutter, building=city.b2).field == "building"
    assert refused(400, file, grid_worker, categories.clutter, building=city.g1).field == "building"
    assert refused(400, file, grid_worker, categories.clutter).field == "grid"
    assert refused(400, file, grid_worker, categories.clutter, grid=city.c1).field == "grid"
    assert not Case.objects.exists()


def test_a_top_level_or_disabled_category_is_refused(city, categories, grid_worker):
    assert refused(400, file, grid_worker, categories.group, grid=city.g1).field == "category"
    categories.clutter.active = False
    categories.clutter.save()
    assert refused(400, file, grid_worker, categories.clutter, grid=city.g1).field == "category"
    assert not Case.objects.exists()


def test_the_affected_resident_must_live_in_the_grid(
    city, categories, grid_worker, community_staff, resident_record, resident_2_record
):
    case = file(grid_worker, categories.neighbours, grid=city.g1, affected_resident=resident_record)
    assert case.affected_resident == resident_record
    error = refused(400, file, grid_worker, categories.neighbours, grid=city.g1, affected_resident=resident_2_record)
    assert error.field == "affected_resident"
    # Community staff see resident_record, but the case is in G2.
    error = refused(400, file, community_staff, categories.neighbours, grid=city.g2, affected_resident=resident_record)
    assert error.field == "affected_resident"
    assert Case.objects.count() == 1


def test_title_and_description_are_required(city, categories, grid_worker):
    assert refused(400, file, grid_worker, categories.clutter, grid=city.g1, title=" ").field == "title"
    assert refused(400, file, grid_worker, categories.clutter, grid=city.g1, description="").field == "description"
    assert not Case.objects.exists()


# --- Photos --------------------------------------------------------------------------------------------------


def test_photos_are_stored_with_the_filing_event(city, categories, grid_worker):
    case = file(grid_worker, categories.clutter, grid=city.g1, photos=[photo(), photo("b.png", fmt="PNG")])
    assert CasePhoto.objects.filter(case=case, event__action="file", uploaded_by=grid_worker).count() == 2


def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(city, categories, grid_worker):
    fake = SimpleUploadedFile("现场.jpg", b"%PDF-1.4 not a picture at all", content_type="image/jpeg")
    error = refused(400, file, grid_worker, categories.clutter, grid=city.g1, photos=[photo(), fake])
    assert error.field == "photos"
    assert "现场.jpg" in str(error.message)
    assert not Case.objects.exists()
    assert not CasePhoto.objects.exists()


def test_an_oversize_photo_is_refused(city, categories, grid_worker, settings):
    settings.CASE_PHOTO_MAX_BYTES = 2 * 1024 * 1024
    big = photo("big.png", size=(1200, 1200), fmt="PNG")
    big.size = 2 * 1024 * 1024 + 1
    error = refused(400, file, grid_worker, categories.clutter, grid=city.g1, photos=[big])
    assert "big.png" in str(error.message)
    assert "2 MB" in str(error.message)
    assert not Case.objects.exists()


def test_a_photo_at_the_size_limit_is_accepted(city, categories, grid_worker, settings):
    small = photo()
    settings.CASE_PHOTO_MAX_BYTES = small.size
    case = file(grid_worker, categories.clutter, grid=city.g1, photos=[small])
    assert case.photos.count() == 1


def test_at_most_nine_photos(city, categories, grid_worker):
    error = refused(400, file, grid_worker, categories.clutter, grid=city.g1, photos=[photo() for _ in range(10)])
    assert "9" in str(error.message)
    assert not Case.objects.exists()
    case = file(grid_worker, categories.clutter, grid=city.g1, photos=[photo() for _ in range(9)])
    assert case.photos.count() == 9


def test_the_photo_rules_hold_for_every_step_that_takes_photos(make_case, grid_worker):
    case = make_case()
    fake = SimpleUploadedFile("x.jpg", b"GIF? no", content_type="image/jpeg")
    refused(400, services.case_comment, case=case, by=grid_worker, note="补充", photos=[fake])
    refused(400, services.case_resolve_on_site, case=case, by=grid_worker, note="已清理", photos=[fake])
    assert not case.events.filter(action="comment").exists()
    assert Case.objects.get(pk=case.pk).state == CaseState.REPORTED


# --- Possible duplicates ---------------------------------------------------------------------------------------


def test_open_cases_of_the_same_category_and_grid_within_30_days_are_offered_as_duplicates(
    make_case, city, categories, community_staff, grid_worker
):
    recent = make_case(now=NOW - dt.timedelta(days=3), title="三天前")
    at_the_edge = make_case(now=NOW - dt.timedelta(days=30), title="正好三十天")
    dispatched = make_case("dispatched", now=NOW - dt.timedelta(days=1), title="已派单")
    make_case(now=NOW - dt.timedelta(days=31), title="太久以前")
    make_case(category=categories.lift, now=NOW - dt.timedelta(days=1), title="别的分类")
    make_case(by=community_staff, grid=city.g2, now=NOW - dt.timedelta(days=1), title="别的网格")
    make_case("handled", now=NOW - dt.timedelta(days=1), title="已办结")
    make_case("closed", now=NOW - dt.timedelta(days=1), title="已结案")
    closed_invalid = make_case(now=NOW - dt.timedelta(days=1), title="作废")
    services.case_close(case=closed_invalid, by=community_staff, reason="invalid", note="无效")

    offered = list(selectors.possible_duplicates(grid=city.g1, category=categories.clutter, now=NOW))
    assert offered == [dispatched, recent, at_the_edge]  # newest first


def test_a_building_outside_the_chosen_grid_is_refused(grid_worker, community_staff, city, categories):
    with pytest.raises(InvalidInput) as refused:
        services.case_file(
            by=community_staff, title="t", description="d", category=categories.clutter, grid=city.g1, building=city.b2
        )
    assert refused.value.field == "building"


def test_a_moved_out_resident_cannot_be_named(grid_worker, resident_record, community_staff, city, categories):
    governance_services.resident_move_out(by=community_staff, resident=resident_record)
    with pytest.raises(InvalidInput) as refused:
        services.case_file(
            by=grid_worker,
            title="t",
            description="d",
            category=categories.clutter,
            grid=city.g1,
            affected_resident=resident_record,
        )
    assert refused.value.field == "affected_resident"


def test_photos_are_scaled_down_and_lose_their_exif(settings, tmp_path):
    import io

    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make; GPS tags travel the same way
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(buffer, "JPEG", exif=exif)
    upload = SimpleUploadedFile("IMG_0001.jpg", buffer.getvalue(), content_type="image/jpeg")
    [prepared] = services.check_photos([upload])
    with Image.open(prepared) as stored:
        assert max(stored.size) == services.PHOTO_MAX_SIDE
        assert not stored.getexif()
    assert prepared.name.endswith(".jpg") and "IMG_0001" not in prepared.name


def test_a_decompression_bomb_is_refused_not_a_crash():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    upload = SimpleUploadedFile("bomb.png", buffer.getvalue(), content_type="image/png")
    with pytest.raises(InvalidInput) as refused:
        services.check_photos([upload])
    assert refused.value.field == "photos"


def test_a_case_fixed_on_the_spot_is_filed_and_resolved_in_one_step(grid_worker, community_staff, city, categories):
    Notification.objects.all().delete()
    case = services.case_file(
        by=grid_worker,
        title="楼道纸箱",
        description="楼道堆放纸箱",
        category=categories.clutter,
        grid=city.g1,
        photos=[photo()],
        resolved_on_site="已现场清理完毕",
    )
    assert case.state == CaseState.VERIFIED
    assert [e.action for e in case.events.order_by("id")] == ["file", "resolve-on-site"]
    assert not Notification.objects.filter(user=community_staff, kind="case_new").exists()  # nothing to triage


def test_a_case_fixed_on_the_spot_needs_a_photo_and_an_on_site_category(grid_worker, city, categories):
    for category, photos in ((categories.clutter, []), (categories.lift, [photo()])):
        with pytest.raises((InvalidInput, DomainError)):
            services.case_file(
                by=grid_worker,
                title="t",
                description="d",
                category=category,
                grid=city.g1,
                photos=photos,
                resolved_on_site="已处置",
            )
    assert not Case.objects.exists()  # all or nothing


# --- The grid's community and street, kept on the case ---------------------------------------------------


def _worker_of(grid, username):
    from tests.factories import UserFactory

    worker = UserFactory(username=username)
    governance_services.position_grant(by=None, user=worker, role="grid_worker", unit=grid)
    return worker


def test_a_case_filed_with_a_grid_read_before_the_grid_moved_lands_in_its_new_community(city, admin_user, categories):
    """The filer's grid object can be older than a move (read when the request was checked): the case takes the
    community and street the grid has when the case is filed."""
    worker = _worker_of(city.g2, "worker_g2")
    stale = type(city.g2).objects.get(pk=city.g2.pk)
    governance_services.unit_move(by=admin_user, unit=city.g2, parent=city.c3)
    case = services.case_file(
        by=worker, title="井盖缺失", description="路口井盖缺失。", category=categories.clutter, grid=stale
    )
    assert (case.community_id, case.street_id, case.holder_unit_id) == (city.c3.pk, city.s2.pk, city.c3.pk)


def _together(*steps):
    """Each step in a thread of its own, with its own database connection; what they gave, and what they raised."""
    import threading

    from django.db import connection

    results, errors = {}, []

    def run(step):
        try:
            results[step] = step()
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def _filed_from_outside(by, categories, grid):
    """Another system's report matched to `grid` (a worker's scope would be read before a move, and their filing
    refused while it lasts: they file again)."""
    return services.case_file(
        by=by, title="井盖缺失", description="路口井盖缺失。", category=categories.clutter, grid=grid, from_outside=True
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_case_filed_while_its_grid_moves_lands_where_the_grid_went(city, admin_user, categories):
    """A move not yet committed when the case is filed: the filing waits for it (`cases_hold_for_move`), so the
    case has the grid's new community and street, not the old ones the move's UPDATE of its cases could not see."""
    import threading
    import time

    from django.db import transaction

    from governance import invariants

    moved = threading.Event()

    def move():
        try:
            with transaction.atomic():
                governance_services.unit_move(by=admin_user, unit=city.g2, parent=city.c3)
                moved.set()
                time.sleep(0.5)  # the filing starts meanwhile
        finally:
            moved.set()

    def file():
        moved.wait(5)
        return _filed_from_outside(admin_user, categories, city.g2)

    results, errors = _together(move, file)
    assert errors == []
    case = Case.objects.get(pk=results[file].pk)
    assert (case.community_id, case.street_id) == (city.c3.pk, city.s2.pk)
    assert all(finding.ok for finding in invariants.run())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_community_moved_while_a_case_is_being_filed_in_it_waits_and_takes_the_case_along(
    city, admin_user, categories, monkeypatch
):
    """The filing is under way (its grid read, its photos being checked) when an administrator moves the grid's
    community to the other street: the move waits for the filing, no deadlock between the two, and the case
    ends with the community's new street."""
    import threading
    import time

    from governance import invariants

    checking = threading.Event()
    check_photos = services.check_photos

    def slow_check(photos):
        checking.set()
        time.sleep(0.5)  # the move starts meanwhile
        return check_photos(photos)

    monkeypatch.setattr(services, "check_photos", slow_check)

    def file():
        try:
            return _filed_from_outside(admin_user, categories, city.g1)
        finally:
            checking.set()

    def move():
        checking.wait(5)
        governance_services.unit_move(by=admin_user, unit=city.c1, parent=city.s2)

    results, errors = _together(file, move)
    assert errors == []
    case = Case.objects.get(pk=results[file].pk)
    assert (case.community_id, case.street_id) == (city.c1.pk, city.s2.pk)
    assert all(finding.ok for finding in invariants.run())
