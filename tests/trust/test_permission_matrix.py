"""The permission matrix: every API operation of the OpenAPI schema and every page of the URL conf, asked by
every persona, against the expected status in `matrix.txt`.

The rows are generated from the schema and the URL conf, so a new endpoint or page without a row fails here.
After a deliberate change, `MATRIX_WRITE=1 pytest tests/trust/test_permission_matrix.py` rewrites the file;
review its diff like code. Beside the table, rules that hold for every row are checked on their own:
nothing answers 5xx, the anonymous visitor gets 401 (API) or the login page (pages) except on the public
addresses, a 4xx from the API says why, and a list never shows what its detail address hides."""

import json
import os
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer

MATRIX = Path(__file__).with_name("matrix.txt")

PERSONAS = [
    "anonymous",
    "admin",
    "street_staff",
    "community_staff",
    "secretary",
    "grid_worker",
    "grid_worker_2",
    "department_staff",
    "other_department_staff",
    "outsider",
    "resident",
    "resident_2",
]

# Which object of the world a path parameter names: the first pattern that matches the path.
API_OBJECTS = [
    (r"/cases/\{id\}/photos/", {"id": "case", "photo_pk": "case_photo"}),
    (r"/letters/\{id\}/attachments/", {"id": "letter", "attachment_pk": "attachment"}),
    (r"/public/letters/", {"id": "published_letter"}),
    (r"/units/", {"id": "unit"}),
    (r"/party-orgs/", {"id": "party_org"}),
    (r"/households/", {"id": "household"}),
    (r"/residents/", {"id": "resident"}),
    (r"/departments/", {"id": "department"}),
    (r"/resident-tags/", {"id": "resident_tag"}),
    (r"/case-categories/", {"id": "case_category"}),
    (r"/letter-categories/", {"id": "letter_category"}),
    (r"/cases/", {"id": "case"}),
    (r"/points/rules/", {"id": "rule"}),
    (r"/points/entries/", {"id": "entry"}),
    (r"/points/accounts/", {"resident_id": "resident"}),
    (r"/points/rewards/", {"id": "reward"}),
    (r"/points/redemptions/", {"id": "redemption"}),
    (r"/points/objections/", {"id": "objection"}),
    (r"/points/boards/", {"id": "board"}),
    (r"/points/tallies/", {"id": "tally"}),
    (r"/points/tally-runs/", {"id": "tally_run"}),
    (r"/letters/", {"id": "letter"}),
    (r"/notifications/", {"id": "notification"}),
]

PAGE_OBJECTS = {
    "case-detail": ["case"],
    "case-photo": ["case", "case_photo"],
    "points-resident": ["resident"],
    "points-evidence": ["entry"],
    "points-reward-photo": ["reward"],
    "letter-detail": ["letter"],
    "letter-attachment": ["letter", "attachment"],
    "public-letter-detail": ["published_letter"],
    "notification-open": ["notification"],
}

# Pages whose parameters are not ids: the address to ask, from the world.
PAGE_URLS = {
    "open311-discovery": lambda w: "/open311/discovery.json",
    "open311-services": lambda w: "/open311/v2/services.json?jurisdiction_id=S1",
    "open311-service": lambda w: f"/open311/v2/services/{w['case'].category.code}.json?jurisdiction_id=S1",
    "open311-requests": lambda w: "/open311/v2/requests.json?jurisdiction_id=S1",
    "open311-request": lambda w: f"/open311/v2/requests/{w['case'].number}.json?jurisdiction_id=S1",
}

# Addresses anyone may open without logging in.
PUBLIC = {
    "POST /api/v1/auth/token/",
    "GET /api/v1/public/letters/",
    "GET /api/v1/public/letters/{id}/",
    "GET /healthz",
    "GET /login/",
    "GET /public/letters/",
    "GET /public/letters/{pk}/",
    "GET /i18n/setlang/",
    "GET /logout/",
    "GET /preferences/elder/",
    # Open311 is for other systems: reading is public (redacted, public categories), filing takes an api_key.
    "GET /open311/discovery.{fmt}",
    "GET /open311/v2/services.{fmt}",
    "GET /open311/v2/services/{service_code}.{fmt}",
    "GET /open311/v2/requests.{fmt}",
    "GET /open311/v2/requests/{service_request_id}.{fmt}",
}


def api_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def page_routes() -> list[tuple[str, str]]:
    """(route, name) of every page: the URL conf outside the API and the admin."""
    routes = []
    for route, name in _walk(get_resolver().url_patterns):
        if route.startswith(("api/", "admin/", "static/", "media/")) or not name:
            continue
        routes.append(("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), name))
    return sorted(routes)


def admin_pages() -> list[str]:
    """The admin's index and the list of every model registered in it."""
    pages = ["/admin/"]
    for model in admin.site._registry:
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    return sorted(pages)


def api_url(path: str, world) -> str:
    for pattern, params in API_OBJECTS:
        if re.search(pattern, path):
            return re.sub(r"\{(\w+)\}", lambda m, params=params: str(world[params[m.group(1)]].pk), path)
    assert "{" not in path, f"no object for the parameters of {path}: add it to API_OBJECTS"
    return path


def page_url(route: str, name: str, world) -> str:
    if name in PAGE_URLS:
        return PAGE_URLS[name](world)
    if "{" not in route:
        return route
    assert name in PAGE_OBJECTS, f"no object for the parameters of page {name} ({route}): add it to PAGE_OBJECTS"
    return reverse(name, args=[world[key].pk for key in PAGE_OBJECTS[name]])


def ask(client: Client, method: str, url: str):
    """One request, its writes rolled back, so that every persona meets the same world."""
    from django.core.cache import cache

    cache.clear()
    with transaction.atomic():
        if method == "GET":
            response = client.get(url)
        else:
            response = client.generic(method, url, data=json.dumps({}), content_type="application/json")
        transaction.set_rollback(True)
    return response


def read_matrix() -> dict[str, list[str]]:
    rows = {}
    if not MATRIX.exists():
        return rows
    for line in MATRIX.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        rows[" ".join(words[:2])] = words[2:]
    return rows


def write_matrix(observed: dict[str, list[str]]):
    width = max(len(key) for key in observed) + 2
    lines = [
        "# The expected status of every API operation and page, for every persona (tests/trust/test_permission_matrix.py).",
        "# Columns: " + " ".join(f"{i + 1}={p}" for i, p in enumerate(PERSONAS)),
        "# 2xx allowed · 302 sent elsewhere (the login page for the anonymous) · 400/409 allowed, but the empty request",
        "# or the object's state is refused · 401 not logged in · 403 in scope, not allowed · 404 outside scope.",
        "",
        "#" + " " * (width - 1) + " ".join(f"{i + 1:>3}" for i in range(len(PERSONAS))),
    ]
    for key, codes in observed.items():
        lines.append(key.ljust(width) + " ".join(f"{c:>3}" for c in codes))
    MATRIX.write_text("\n".join(lines) + "\n")


@pytest.fixture
def clients(personas, other_department_staff):
    people = dict(personas, other_department_staff=other_department_staff)
    result = {}
    for name in PERSONAS:
        client = Client(raise_request_exception=False)
        if name != "anonymous":
            client.force_login(people[name])
        result[name] = client
    return result


def test_every_operation_and_page_meets_the_matrix(world, clients):
    observed: dict[str, list[str]] = {}
    bodies = {}
    for method, path in api_operations():
        url = api_url(path, world)
        for name in PERSONAS:
            response = ask(clients[name], method, url)
            observed.setdefault(f"{method} {path}", []).append(str(response.status_code))
            bodies[(f"{method} {path}", name)] = response
    for route, name in page_routes():
        url = page_url(route, name, world)
        for persona in PERSONAS:
            response = ask(clients[persona], "GET", url)
            observed.setdefault(f"GET {route}", []).append(str(response.status_code))
            bodies[(f"GET {route}", persona)] = response
    for url in admin_pages():
        for persona in PERSONAS:
            response = ask(clients[persona], "GET", url)
            observed.setdefault(f"GET {url}", []).append(str(response.status_code))
            bodies[(f"GET {url}", persona)] = response

    if os.environ.get("MATRIX_WRITE"):
        write_matrix(observed)

    # Rules that hold for every row, whatever the table says.
    problems = []
    for (key, persona), response in bodies.items():
        status = response.status_code
        if status >= 500:
            problems.append(f"{key} as {persona}: {status}")
        if persona == "anonymous" and key not in PUBLIC:
            if key.split()[1].startswith("/api/"):
                if status != 401:
                    problems.append(f"{key} answers {status} to the anonymous visitor, not 401")
            elif status != 302 or "login" not in response.get("Location", ""):
                problems.append(f"{key} answers {status} to the anonymous visitor, not the login page")
        # Every JSON answer is what DRF's own renderer writes of the same data (the API's is orjson's).
        data = getattr(response, "data", None)
        if data is not None and response.get("Content-Type", "").startswith("application/json"):
            if response.content != DRFJSONRenderer().render(data):
                problems.append(f"{key} as {persona}: its JSON differs from DRF's renderer's")
        if key.split()[1].startswith("/api/") and 400 <= status < 500 and status != 405:
            body = response.json()
            if not (body.get("detail") or body.get("errors") or body):
                problems.append(f"{key} as {persona}: {status} without a message")
    # A list shows nothing that its detail address answers 404 for.
    for key in observed:
        method, path = key.split()
        detail = f"GET {path}{{id}}/"
        if method != "GET" or not path.startswith("/api/") or detail not in observed:
            continue
        pk = int(re.search(r"/(\d+)/$", api_url(detail.split()[1], world)).group(1))
        for persona in PERSONAS:
            if bodies[(detail, persona)].status_code != 404 or bodies[(key, persona)].status_code != 200:
                continue
            body = bodies[(key, persona)].json()
            listed = {row.get("id") for row in (body["results"] if isinstance(body, dict) else body)}
            if pk in listed:
                problems.append(f"{key} lists #{pk} to {persona}, whose {detail} is 404")
    assert not problems, "\n".join(problems)

    expected = read_matrix()
    missing = sorted(set(observed) - set(expected))
    gone = sorted(set(expected) - set(observed))
    differ = [
        f"{key}: {persona} expected {want}, got {got}"
        for key, codes in observed.items()
        if key in expected
        for persona, want, got in zip(PERSONAS, expected[key], codes, strict=True)
        if want != got
    ]
    assert not missing, "operations or pages without a row in matrix.txt:\n" + "\n".join(missing)
    assert not gone, "rows in matrix.txt for operations or pages that no longer exist:\n" + "\n".join(gone)
    assert not differ, "\n".join(differ)


# Every route that serves an uploaded file, and what it serves.
FILE_ROUTES = [
    ("/api/v1/cases/{case}/photos/{case_photo}/", "image/jpeg"),
    ("/cases/{case}/photos/{case_photo}/", "image/jpeg"),
    ("/api/v1/points/entries/{entry}/evidence/", "image/jpeg"),
    ("/points/entries/{entry}/evidence/", "image/jpeg"),
    ("/api/v1/points/rewards/{reward}/photo/", "image/jpeg"),
    ("/points/rewards/{reward}/photo/", "image/jpeg"),
    ("/api/v1/letters/{letter}/attachments/{attachment}/", "application/pdf"),
    ("/mailbox/{letter}/attachments/{attachment}/", "application/pdf"),
]


def test_uploaded_files_are_served_by_content_with_safe_headers(world, clients):
    """Photos inline with their real type, PDFs as downloads, never sniffed, sandboxed, cached privately."""
    served = {
        route for route, _name in page_routes() if "photo" in route or "evidence" in route or "attachment" in route
    }
    served |= {
        path for _method, path in api_operations() if "photo" in path or "evidence" in path or "attachment" in path
    }
    assert len(served) == len(FILE_ROUTES), "a route serving files is missing from FILE_ROUTES"
    for route, kind in FILE_ROUTES:
        url = re.sub(r"\{(\w+)\}", lambda m: str(world[m.group(1)].pk), route)
        response = clients["resident"].get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == kind, url
        assert response["X-Content-Type-Options"] == "nosniff"
        assert (
            "sandbox" in response["Content-Security-Policy"]
            and "default-src 'none'" in response["Content-Security-Policy"]
        )
        assert response["Cache-Control"] == "private, max-age=86400"
        disposition = response["Content-Disposition"]
        assert disposition.startswith("attachment") if kind == "application/pdf" else disposition == "inline", url
