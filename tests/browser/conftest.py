"""The browser: Debian's Chromium (`/usr/bin/chromium`) driven by Playwright, headless, never downloaded by
Playwright. Without Chromium these tests skip — unless REQUIRE_BROWSER is set (CI), which makes that a failure.
Screenshots go to `test-artifacts/` (ignored by git)."""

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        message = f"needs Chromium at {CHROMIUM} (apt install chromium)"
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(message + " but REQUIRE_BROWSER is set")
        pytest.skip(message)  # only without chromium, and never in CI (REQUIRE_BROWSER)
    # Playwright's synchronous API runs an event loop in this thread; the test's own database calls are not
    # async code, and Django must be told so.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


# The rows the data migrations write (resident tags, case categories, points schemes, letter categories): a
# transactional test (the live server's) empties every table after it, so each test puts them back.
DATA_MIGRATIONS = [
    ("governance.ResidentTag", "governance.migrations.0002_default_resident_tags", "add_tags"),
    ("grids.CaseCategory", "grids.migrations.0002_default_categories", "load"),
    ("points.Scheme", "points.migrations.0002_default_schemes", "load"),
    ("mailbox.LetterCategory", "mailbox.migrations.0002_default_categories", "load"),
]


@pytest.fixture
def migration_data(transactional_db):
    from importlib import import_module

    from django.apps import apps

    for model, module, function in DATA_MIGRATIONS:
        if not apps.get_model(model).objects.exists():
            getattr(import_module(module), function)(apps, None)


@pytest.fixture
def new_page(browser):
    """`new_page(viewport=…)`: a page in a context of its own (its own cookies: its own login)."""
    contexts = []

    def make(viewport=None):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield make
    for context in contexts:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass


@pytest.fixture
def shoot(request):
    """`shoot(page, name)`: a full-page screenshot under test-artifacts/<test>/<name>.png."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "现场照片.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (180, 120, 60)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path
