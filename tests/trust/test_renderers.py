"""The API's JSON is written by orjson (governance.renderers): the same bytes DRF's renderer writes.

The permission matrix compares the two on every API answer it gets; here the values a serializer can hand over."""

import datetime as dt
import decimal
import uuid
import zoneinfo

from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer

from governance.renderers import JSONRenderer

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_the_values_serializers_give_are_written_as_drf_writes_them():
    data = {
        "title": '楼道堆放杂物 "纸箱" \\ \n\t',
        "separators": "行\u2028段\u2029落",  # escaped, so the text stays a JavaScript literal
        "emoji": "👍",
        "label": gettext_lazy("处置中"),
        "utc": dt.datetime(2026, 12, 4, 1, 2, 3, 456789, tzinfo=dt.UTC),
        "local": dt.datetime(2026, 12, 4, 9, 2, 3, tzinfo=SHANGHAI),
        "naive": dt.datetime(2026, 12, 4, 9, 2, 3),
        "day": dt.date(2026, 12, 4),
        "at": dt.time(9, 30),
        "amount": decimal.Decimal("12.50"),
        "key": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "numbers": [0, -1, 2**63 - 1, 1.5, True, False, None],
        "nested": ({"a": [{}], 7: "int key"},),
        "empty": [],
    }
    ours = JSONRenderer().render(data)
    assert ours == DRFJSONRenderer().render(data)
    assert "楼道".encode() in ours and b"\\u2028" in ours and b'"2026-12-04T01:02:03.456789Z"' in ours


def test_what_orjson_refuses_is_written_by_drf():
    huge = {"n": 2**70, "deep": [[[[1]]]]}
    assert (
        JSONRenderer().render(huge)
        == DRFJSONRenderer().render(huge)
        == b'{"n":1180591620717411303424,"deep":[[[[1]]]]}'
    )


def test_indented_and_empty_answers_are_drfs():
    data = {"名称": ["一", 2]}
    ours = JSONRenderer().render(data, "application/json; indent=4")
    assert ours == DRFJSONRenderer().render(data, "application/json; indent=4") and b"\n    " in ours
    assert JSONRenderer().render(None) == b""


def test_the_api_answers_with_it(api, street_staff):
    response = api(street_staff).get("/api/v1/cases/")
    assert response.status_code == 200
    assert isinstance(response.accepted_renderer, JSONRenderer)
    assert response.content == DRFJSONRenderer().render(response.data)


def test_the_renderer_is_chosen_as_drf_chooses_it():
    """`ContentNegotiation` answers the common requests (anything, or JSON) itself; every answer is DRF's."""
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.renderers import BrowsableAPIRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from governance.renderers import ContentNegotiation

    def chosen(negotiation, renderers, suffix, path, **headers):
        request = Request(APIRequestFactory().get(path, **headers))
        try:
            renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
        except Exception as error:  # noqa: BLE001 - the refusal is compared too
            return type(error).__name__
        return type(renderer), media_type

    lists = [[JSONRenderer(), BrowsableAPIRenderer()], [BrowsableAPIRenderer(), JSONRenderer()], [JSONRenderer()]]
    accepts = [None, "*/*", "application/json", "text/html", "application/json; indent=4", "text/csv", "", "*/*;q=0.8"]
    for renderers in lists:
        for accept in accepts:
            for suffix, path in [(None, "/x/"), (None, "/x/?format=api"), (None, "/x/?format=json"), ("json", "/x/")]:
                headers = {} if accept is None else {"HTTP_ACCEPT": accept}
                ours = chosen(ContentNegotiation(), renderers, suffix, path, **headers)
                assert ours == chosen(DefaultContentNegotiation(), renderers, suffix, path, **headers), (accept, path)


def test_the_datetimes_a_list_hands_over_are_written_as_drfs_field_writes_them():
    """The list serializers hand the renderer datetimes, not text (`RowWriter.datetime`): what reaches the client
    is what DRF's DateTimeField writes, in every time zone, for UTC (`Z`), whole seconds, and the local mean time
    of old dates (an offset with seconds, which orjson would round)."""
    from django.utils import timezone
    from rest_framework import serializers

    from governance.api_base import RowWriter

    values = [
        dt.datetime(2026, 12, 4, 1, 2, 3, 456789, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 4, 1, 2, 3, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=SHANGHAI),
        dt.datetime(1890, 1, 1, 12, tzinfo=dt.UTC),  # Shanghai's local mean time then: +08:05:43
        dt.datetime(1950, 7, 1, tzinfo=dt.UTC),  # Monrovia: -00:44:30
        dt.datetime(2026, 3, 1, 8, 0),  # naive
        None,
    ]
    for zone in ("Asia/Shanghai", "UTC", "America/St_Johns", "Africa/Monrovia"):
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            written = [RowWriter().datetime(value) for value in values]
            expected = [None if v is None else serializers.DateTimeField().to_representation(v) for v in values]
            assert JSONRenderer().render(written) == DRFJSONRenderer().render(expected), zone
            assert any(isinstance(value, dt.datetime) for value in written)
