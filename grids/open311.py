"""Open311 GeoReport v2: the open standard FixMyStreet and 311 systems speak, so that a 12345 hotline bridge or a
reporting app can read our case categories and send cases in.

    GET  /open311/v2/services.{json|xml}                      the categories (service_code = category code)
    GET  /open311/v2/services/{service_code}.{json|xml}       a category's extra attributes
    GET  /open311/v2/requests.{json|xml}                      cases (public categories), newest first
    POST /open311/v2/requests.{json|xml}                      file a case (form-encoded, api_key required)
    GET  /open311/v2/requests/{service_request_id}.{json|xml} one case

`jurisdiction_id` is a street's code and is required: it scopes everything. A case is `open` until it is
closed; `status_notes` says where it stands in our own words. Datetimes are W3C with the +08:00 offset;
`expected_datetime` is the handling deadline (or, before one is set, the signing deadline). Errors are an
array of `{code, description}` with the HTTP status 400, 403 (a bad `api_key`), 404 or 429. What is shown of a
case is redacted: no names, phones, ID numbers or house numbers, and only cases of public categories."""

import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from governance import services as governance_services
from governance.errors import DomainError
from governance.models import Level, Unit
from governance.redaction import redact

from . import services
from .models import OPEN_STATES, Case, CaseCategory, CaseState, Source

DEFAULT_DAYS = 90
MAX_REQUESTS = 1000
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = str(description)


# --- Rendering ---------------------------------------------------------------------------------------------


def _xml_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xml(parent, tag: str, value):
    node = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, inner in value.items():
            _xml(node, key, inner)
    elif isinstance(value, list):
        singular = {"attributes": "attribute", "values": "value"}.get(tag, "item")
        for inner in value:
            _xml(node, singular, inner)
    else:
        node.text = _xml_value(value)
    return node


def render(data, fmt: str, *, root: str, item: str | None = None, status: int = 200) -> HttpResponse:
    """JSON as the spec's examples give it; XML with the spec's element names (a list as `root` of `item`s)."""
    if fmt == "json":
        return JsonResponse(data, safe=False, status=status, json_dumps_params={"ensure_ascii": False})
    top = ET.Element(root)
    if item is None:
        for key, value in data.items():
            _xml(top, key, value)
    else:
        for row in data:
            _xml(top, item, row)
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return HttpResponse(body, status=status, content_type=CONTENT_TYPES["xml"])


def _error_response(error: Open311Error, fmt: str) -> HttpResponse:
    rows = [{"code": error.status, "description": error.description}]
    return render(rows, fmt if fmt in CONTENT_TYPES else "json", root="errors", item="error", status=error.status)


def endpoint(view):
    """The format from the suffix, the errors as the spec says (never a 500 for bad input)."""

    @csrf_exempt
    def wrapped(request, *args, fmt, **kwargs):
        try:
            if fmt not in CONTENT_TYPES:
                raise Open311Error(404, _("不支持的格式：请用 .json 或 .xml。"))
            return view(request, *args, fmt=fmt, **kwargs)
        except Open311Error as error:
            return _error_response(error, fmt)
        except DomainError as error:
            return _error_response(Open311Error(min(error.status_code, 400), error.message), fmt)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def w3c(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return timezone.localtime(moment).replace(microsecond=0).isoformat()


# --- Parameters ------------------------------------------------------------------------------------------


def _param(request, name: str) -> str:
    source = request.POST if request.method == "POST" else request.GET
    return (source.get(name) or "").strip()


def _street(request) -> Unit:
    code = _param(request, "jurisdiction_id")
    if not code:
        raise Open311Error(400, _("缺少 jurisdiction_id（街道编码）。"))
    street = Unit.objects.filter(code=code, level=Level.STREET).first()
    if street is None:
        raise Open311Error(404, _("没有编码为 %(code)s 的街道。") % {"code": code})
    return street


def _moment(request, name: str) -> dt.datetime | None:
    text = _param(request, name).replace(" ", "+")  # a "+08:00" that was not URL-encoded arrives as a space
    if not text:
        return None
    try:
        moment = parse_datetime(text) if "T" in text else None
        if moment is None and parse_date(text) is not None:
            moment = dt.datetime.combine(parse_date(text), dt.time())
    except ValueError:
        moment = None
    if moment is None:
        raise Open311Error(400, _("%(name)s 须为 W3C 日期时间，如 2026-11-22T09:30:00+08:00。") % {"name": name})
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _coordinate(request, name: str, low: int, high: int):
    text = _param(request, name)
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Open311Error(400, _("%(name)s 须为数字。") % {"name": name}) from None
    if not value.is_finite() or not low <= value <= high:
        raise Open311Error(400, _("%(name)s 超出范围。") % {"name": name})
    return value.quantize(Decimal("0.000001"))


# --- Services ----------------------------------------------------------------------------------------------


def _categories():
    return CaseCategory.objects.filter(active=True, parent__isnull=False, parent__active=True).select_related("parent")


def _service(category: CaseCategory) -> dict:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description or category.name,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": "",
        "group": category.parent.name,
    }


@endpoint
def services_list(request, *, fmt):
    _street(request)
    return render(
        [_service(c) for c in _categories().order_by("parent__order", "order", "code")],
        fmt,
        root="services",
        item="service",
    )


@endpoint
def service_definition(request, service_code, *, fmt):
    _street(request)
    category = _categories().filter(code=service_code).first()
    if category is None:
        raise Open311Error(404, _("没有编码为 %(code)s 的服务。") % {"code": service_code})
    attributes = [
        {
            "variable": True,
            "code": a["code"],
            "datatype": a.get("datatype", "string"),
            "required": bool(a.get("required")),
            "datatype_description": a.get("datatype_description", ""),
            "order": order,
            "description": a.get("description", a["code"]),
            **({"values": [{"key": v["key"], "name": v["name"]} for v in a["values"]]} if a.get("values") else {}),
        }
        for order, a in enumerate(category.attributes, start=1)
    ]
    return render({"service_code": category.code, "attributes": attributes}, fmt, root="service_definition")


# --- Requests ----------------------------------------------------------------------------------------------


def _requests_of(street: Unit):
    return (
        Case.objects.filter(street=street, category__is_public=True)
        .select_related("category", "grid", "holder_unit", "holder_department")
        .annotate(updated=Max("events__created_at"))
    )


def _status_notes(case: Case) -> str:
    if case.state == CaseState.CLOSED:
        return (
            f"{case.get_state_display()}（{case.get_closed_reason_display()}）"
            if case.closed_reason
            else case.get_state_display()
        )
    return case.get_state_display()


def _request_row(case: Case) -> dict:
    holder = case.holder_department or case.holder_unit
    return {
        "service_request_id": case.number,
        "status": "open" if case.state in OPEN_STATES else "closed",
        "status_notes": _status_notes(case),
        "service_name": case.category.name,
        "service_code": case.category.code,
        "description": redact(case.description)[0],
        "agency_responsible": holder.name if holder else "",
        "service_notice": "",
        "requested_datetime": w3c(case.created_at),
        "updated_datetime": w3c(case.updated or case.created_at),
        "expected_datetime": w3c(case.handle_deadline or case.sign_deadline),
        "address": redact(case.address)[0] if case.address else case.grid.name,
        "address_id": case.grid.code,
        "zipcode": "",
        "lat": float(case.latitude) if case.latitude is not None else None,
        "long": float(case.longitude) if case.longitude is not None else None,
        "media_url": "",
    }


@endpoint
def requests(request, *, fmt):
    if request.method == "POST":
        return _post_request(request, fmt)
    if request.method != "GET":
        raise Open311Error(400, _("只支持 GET 和 POST。"))
    street = _street(request)
    found = _requests_of(street)
    ids = [i.strip() for i in _param(request, "service_request_id").split(",") if i.strip()]
    if ids:
        found = found.filter(number__in=ids[:MAX_REQUESTS])  # the other filters do not apply (the spec)
    else:
        codes = [c.strip() for c in _param(request, "service_code").split(",") if c.strip()]
        if codes:
            found = found.filter(category__code__in=codes)
        statuses = {s.strip() for s in _param(request, "status").split(",") if s.strip()}
        if statuses - {"open", "closed"}:
            raise Open311Error(400, _("status 只能是 open 或 closed。"))
        if statuses == {"open"}:
            found = found.filter(state__in=OPEN_STATES)
        elif statuses == {"closed"}:
            found = found.exclude(state__in=OPEN_STATES)
        start, end = _moment(request, "start_date"), _moment(request, "end_date")
        if start and end and start > end:
            raise Open311Error(400, _("start_date 不能晚于 end_date。"))
        if start is None and end is None:
            start = timezone.now() - dt.timedelta(days=DEFAULT_DAYS)
        if start is not None:
            found = found.filter(created_at__gte=start)
        if end is not None:
            found = found.filter(created_at__lte=end)
    rows = [_request_row(c) for c in found.order_by("-created_at", "-id")[:MAX_REQUESTS]]
    return render(rows, fmt, root="service_requests", item="request")


@endpoint
def request_detail(request, service_request_id, *, fmt):
    street = _street(request)
    case = _requests_of(street).filter(number=service_request_id).first()
    if case is None:
        raise Open311Error(404, _("没有编号为 %(id)s 的事件。") % {"id": service_request_id})
    return render([_request_row(case)], fmt, root="service_requests", item="request")


def _rate_limited(key) -> bool:
    limit = getattr(settings, "OPEN311_RATE_PER_MINUTE", 60)
    bucket = f"open311:{key.pk}:{int(timezone.now().timestamp() // 60)}"
    cache.add(bucket, 0, timeout=120)
    try:
        return cache.incr(bucket) > limit
    except ValueError:
        return False


def _attributes(request, category: CaseCategory) -> list[str]:
    """attribute[code]=value pairs checked against the category's definition: lines for the description."""
    lines = []
    for a in category.attributes:
        source = request.POST
        values = [v.strip() for v in source.getlist(f"attribute[{a['code']}]") if v.strip()]
        if not values:
            if a.get("required"):
                raise Open311Error(400, _("缺少必填信息 attribute[%(code)s]。") % {"code": a["code"]})
            continue
        allowed = {v["key"]: v["name"] for v in a.get("values", [])}
        if a.get("datatype") in ("singlevaluelist", "multivaluelist"):
            if a["datatype"] == "singlevaluelist" and len(values) > 1:
                raise Open311Error(400, _("attribute[%(code)s] 只能有一个值。") % {"code": a["code"]})
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise Open311Error(
                    400, _("attribute[%(code)s] 的取值无效：%(v)s。") % {"code": a["code"], "v": unknown[0]}
                )
            values = [allowed[v] for v in values]
        elif a.get("datatype") == "number":
            try:
                Decimal(values[0])
            except InvalidOperation:
                raise Open311Error(400, _("attribute[%(code)s] 须为数字。") % {"code": a["code"]}) from None
        lines.append(f"{a.get('description', a['code'])}：{'、'.join(values)}")
    return lines


def _post_request(request, fmt):
    key = governance_services.api_key_for(_param(request, "api_key"))
    if key is None:
        raise Open311Error(403, _("api_key 无效或已吊销。"))
    if _rate_limited(key):
        raise Open311Error(429, _("请求过于频繁，请稍后再试。"))
    street = _street(request)
    code = _param(request, "service_code")
    if not code:
        raise Open311Error(400, _("缺少 service_code。"))
    category = _categories().filter(code=code).first()
    if category is None:
        raise Open311Error(404, _("没有编码为 %(code)s 的服务。") % {"code": code})
    lat, long = _coordinate(request, "lat", -90, 90), _coordinate(request, "long", -180, 180)
    if (lat is None) != (long is None):
        raise Open311Error(400, _("lat 和 long 须同时提供。"))
    address, address_id = _param(request, "address_string"), _param(request, "address_id")
    if lat is None and not address and not address_id:
        raise Open311Error(400, _("须提供位置：lat 和 long，或 address_string，或 address_id。"))
    lines = _attributes(request, category)
    grid, building, matched = services.open311_place(
        street=street, lat=lat, long=long, address=address, address_id=address_id
    )
    description = _param(request, "description")[:1500] or category.name
    contact = " ".join(p for p in (_param(request, "last_name"), _param(request, "first_name")) if p)
    extra = [*lines]
    if contact or _param(request, "phone") or _param(request, "email"):
        extra.append(
            _("联系人：%(who)s")
            % {"who": " ".join(p for p in (contact, _param(request, "phone"), _param(request, "email")) if p)}
        )
    if _param(request, "media_url"):
        extra.append(_("图片链接：%(url)s") % {"url": _param(request, "media_url")[:300]})
    if not matched:
        extra.append(
            _("位置未能自动匹配到网格（%(where)s），请社区分流时核实。") % {"where": address or f"{lat},{long}"}
        )
    text = description + ("\n" + "\n".join(extra) if extra else "")
    case = services.case_file(
        by=key.user,
        title=f"{category.name}（{key.name}）"[:100],
        description=text[:2000],
        category=category,
        grid=grid,
        building=building,
        address=address[:200],
        latitude=lat,
        longitude=long,
        source=Source.OPEN311,
        from_outside=True,
    )
    notice = _("已受理，编号 %(number)s，将由%(unit)s分流办理。") % {
        "number": case.number,
        "unit": case.holder_unit.name,
    }
    rows = [{"service_request_id": case.number, "service_notice": notice, "account_id": None}]
    return render(rows, fmt, root="service_requests", item="request", status=201)


@endpoint
def discovery(request, *, fmt):
    """Service discovery: where the GeoReport v2 endpoint is and what it speaks."""
    base = request.build_absolute_uri("/open311/v2/")
    data = {
        "changeset": "2026-12-01T00:00:00+08:00",
        "contact": _("请联系平台管理员。"),
        "key_service": _("接口密钥由平台管理员用 create_open311_key 命令生成。"),
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": "2026-12-01T00:00:00+08:00",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    if fmt == "json":
        return render(data, fmt, root="discovery")
    top = ET.Element("discovery")
    for key in ("changeset", "contact", "key_service"):
        ET.SubElement(top, key).text = data[key]
    endpoints = ET.SubElement(top, "endpoints")
    for e in data["endpoints"]:
        node = ET.SubElement(endpoints, "endpoint")
        for key in ("specification", "url", "changeset", "type"):
            ET.SubElement(node, key).text = e[key]
        formats = ET.SubElement(node, "formats")
        for f in e["formats"]:
            ET.SubElement(formats, "format").text = f
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8")
    return HttpResponse(body, content_type=CONTENT_TYPES["xml"])
