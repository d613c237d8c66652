"""Security headers on every response, and no inline script anywhere (the Content-Security-Policy forbids it)."""

import re
from pathlib import Path

from django.test import Client

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_pages_carry_the_security_headers(db, city, street_staff):
    client = Client()
    client.force_login(street_staff)
    for url in ("/", "/cases/", "/login/", "/public/letters/", "/api/v1/me/", "/healthz"):
        response = client.get(url)
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], url
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert "camera=(self)" in response["Permissions-Policy"]


def test_no_template_has_an_inline_script_or_event_handler():
    found = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=", text):
            found.append(f"{path.relative_to(TEMPLATES)}: {match.group(0)}")
    assert not found, found


def test_swagger_ui_runs_under_the_policy(db, city, street_staff):
    client = Client()
    client.force_login(street_staff)
    html = client.get("/api/docs/").content.decode()
    inline = [
        s for s in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S) if "src=" not in s[0] and s[1].strip()
    ]
    assert not inline, inline
    script = re.search(r'<script[^>]*src="([^"]*script[^"]*)"', html).group(1)
    assert client.get(script.replace("&amp;", "&")).status_code == 200
