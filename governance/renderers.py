"""The API's JSON, written by orjson.

DRF's `JSONRenderer` writes with the standard library's `json.dumps` through a Python encoder class; orjson
writes the same document four times faster (a page of 20 cases: 0.05 ms instead of 0.23 ms on the machines of
docs/PERFORMANCE.md). What it writes is what DRF writes, byte for byte for what the API's serializers give
(strings, numbers, booleans, nulls, lists and objects; the permission matrix compares the two on every API
answer): compact, UTF-8 unescaped (`UNICODE_JSON`), U+2028 and U+2029 escaped so the text stays a JavaScript
literal. Dates and datetimes are written by orjson in DRF's form (ISO 8601, `Z` for UTC): the list serializers
hand over aware datetimes in the current time zone (`api_base.RowWriter.datetime`), as text only where orjson
would write them otherwise (an offset with seconds in it). Anything else goes through DRF's own encoder
(`default`): lazy translations, decimals, UUIDs. A document orjson refuses (an integer beyond 64 bits, a
nesting deeper than 254) and every indented one (`Accept: application/json; indent=4`, the browsable API)
is written by DRF's renderer as before. (A float NaN, which no serializer here gives, would be written `null`
where DRF's strict JSON fails.)"""

import orjson
from rest_framework import negotiation, renderers

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if (
            self.ensure_ascii
            or not self.compact
            or self.get_indent(accepted_media_type, renderer_context or {}) is not None
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            text = orjson.dumps(data, default=self.encoder_class().default, option=_OPTIONS)
        except (orjson.JSONEncodeError, TypeError, ValueError):
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in text or b"\xe2\x80\xa9" in text:
            text = text.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return text


class ContentNegotiation(negotiation.DefaultContentNegotiation):
    """DRF's negotiation, with its most frequent answer known ahead: a request that accepts anything (no
    `Accept`, or `*/*`) or exactly `application/json`, and names no format, gets the view's first renderer when
    that is JSON, as DRF would give it, without DRF parsing the header and ranking the renderers for it."""

    ANY = frozenset({"*/*", "application/json"})

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        if (
            first is not None
            and first.media_type == "application/json"
            and format_suffix is None
            and request.META.get("HTTP_ACCEPT", "*/*") in self.ANY
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
