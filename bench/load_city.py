"""Load: gunicorn + PostgreSQL on the city, driven by wrk from the same machine.

Needs the city of `seed_demo --scale city` (1,000,000 residents) with the cases of `bench/cases_city.py`
(1,000,000), the letters of `bench/letters_city.py` (150,000; without them the two mailbox lists are empty),
and, for the boards, the points of `bench/points_city.py` if they were built:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/grid_bench .venv/bin/python bench/load_city.py

It starts gunicorn (BENCH_WORKERS sync workers, default 4; persistent database connections, DEBUG off, tasks
eager: the write path is the one a resident or worker waits for), makes API tokens for the personas it
needs, and measures with wrk (`--latency`), one after another in the same run:

1. the ceiling: a plain Django view (`/bench/plain`, served only when DJANGO_BENCH_PLAIN_VIEW=1) at 32
   connections; the issue's reference, a straightforward DRF list of 20 rows (`/bench/drf-list`, the same
   switch: a model serializer of every field of the case categories, page-number pagination, anonymous);
   the floor of a fresh list behind a login (`/bench/floor`, the same switch: the API's token query and the SQL
   of the street's page of cases as the API runs it, written with json.dumps, no DRF and no ORM per request);
   and the simplest list behind a login (the case categories: no pagination, 33 rows);
2. each main list endpoint at 32 connections, as the persona that uses it: the cases of a street (street
   staff), the letters of a street (its secretary: the first secretary, 15,000 letters), the residents of a
   grid (its grid worker), a community's points board (a resident), the public mailbox (anonymous);
3. the mix, 60 s at 50 connections: grid workers filing cases (10%), staff listing cases (25%) and
   opening and commenting on one (10%), residents reading their board (20%) and the public mailbox (25%),
   residents reading their own letters (10%); each connection plays one persona of its own.

Each list's share of the ceiling is of the plain view measured again just before and just after it
(BENCH_CEILING_SECONDS, default 5 s each, their mean: "ceiling beside it"), since these machines change speed by
half from one minute to the next and a ceiling measured minutes earlier says little about the list's minute.

Beside wrk's requests per second and latencies, each figure has the CPU time one request cost gunicorn's
processes and PostgreSQL's (from /proc: every PostgreSQL process of this machine, so the database must be here
and nothing else using it meanwhile): on machines whose speed moves by a third from one hour to the next, that is
the steadier measure of a change.

Every figure is printed; the run fails (exit 1) if any request errs (socket errors or non-2xx answers).
"""

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from governance.models import Position, Role, Unit  # noqa: E402
from grids.models import Case, CaseCategory  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8766"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
LIST_SECONDS = int(os.environ.get("BENCH_LIST_SECONDS", "20"))
MIX_SECONDS = int(os.environ.get("BENCH_MIX_SECONDS", "60"))
# The plain view is measured again for this long just before and just after each list, and the list's share of
# the ceiling is of the mean of the two: these machines change speed by half from one minute to the next.
CEILING_SECONDS = int(os.environ.get("BENCH_CEILING_SECONDS", "5"))
BASE = f"http://127.0.0.1:{PORT}"


def token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def personas() -> dict:
    """Tokens and the ids each persona's requests name, for the wrk scripts."""
    street = Unit.objects.filter(depth=1).order_by("path").first()
    street_staff = Position.objects.filter(role=Role.STREET_STAFF, unit=street).select_related("user").first().user
    secretaries = list(Position.objects.filter(role=Role.SECRETARY).select_related("user", "unit")[:50])
    community_staff = list(Position.objects.filter(role=Role.COMMUNITY_STAFF).select_related("user", "unit")[:50])
    workers = list(Position.objects.filter(role=Role.GRID_WORKER).select_related("user", "unit")[:50])
    residents = list(
        Position.objects.filter(role=Role.RESIDENT).select_related("user", "resident__household__building")[:2]
    )
    category = (
        CaseCategory.objects.filter(parent__isnull=False, active=True, on_site_allowed=False).order_by("pk").first()
    )
    open_case = {}
    for p in community_staff:
        case = (
            Case.objects.filter(holder_unit=p.unit, state="in_progress")
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if case:
            open_case[p.user_id] = case
    month = (timezone.localdate().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    resident_rows = []
    for p in residents:
        community = Unit.objects.get(path=p.resident.household.building.path[:8])
        resident_rows.append({"token": token(p.user), "community": community.pk})
    return {
        "street": street.pk,
        "street_token": token(street_staff),
        "secretaries": [{"token": token(p.user), "unit": p.unit_id} for p in secretaries],
        "staff": [
            {"token": token(p.user), "unit": p.unit_id, "case": open_case[p.user_id]}
            for p in community_staff
            if p.user_id in open_case
        ],
        "workers": [{"token": token(p.user), "grid": p.unit_id} for p in workers],
        "residents": resident_rows,
        "category": category.pk,
        "month": month,
    }


def lua_table(value) -> str:
    """A Python value (dicts, lists, strings, numbers) as a Lua table constructor."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_table(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua_table(v) for v in value) + "}"
    return json.dumps(value, ensure_ascii=False)


SINGLE = """
local token = "%(token)s"
request = function()
  local headers = {}
  if token ~= "" then headers["Authorization"] = "Token " .. token end
  return wrk.format("GET", "%(path)s", headers)
end
"""

# Each connection (thread-local `counter`) plays one persona; the request kind is drawn with the mix's weights.
MIX = """
local data = %(data)s
local n = 0
setup = function(thread) n = n + 1; thread:set("id", n) end
init = function(args) math.randomseed(id * 7919); counter = 0 end
local function auth(t) return {["Authorization"] = "Token " .. t, ["Content-Type"] = "application/json"} end
request = function()
  counter = counter + 1
  local r = math.random(100)
  local i = (id * 1000 + counter)
  if r <= 10 then
    local w = data.workers[(i %% #data.workers) + 1]
    local body = '{"title":"楼道堆放杂物","description":"压测：楼道堆满纸箱。","category":' .. data.category .. ',"grid":' .. w.grid .. '}'
    return wrk.format("POST", "/api/v1/cases/", auth(w.token), body)
  elseif r <= 35 then
    local s = data.staff[(i %% #data.staff) + 1]
    return wrk.format("GET", "/api/v1/cases/?unit=" .. s.unit, auth(s.token))
  elseif r <= 40 then
    local s = data.staff[(i %% #data.staff) + 1]
    return wrk.format("GET", "/api/v1/cases/" .. s.case .. "/", auth(s.token))
  elseif r <= 45 then
    local s = data.staff[(i %% #data.staff) + 1]
    return wrk.format("POST", "/api/v1/cases/" .. s.case .. "/comment/", auth(s.token), '{"note":"压测：已联系物业。"}')
  elseif r <= 65 then
    local p = data.residents[(i %% #data.residents) + 1]
    return wrk.format("GET", "/api/v1/points/boards/?month=" .. data.month .. "&unit=" .. p.community .. "&scheme=resident", auth(p.token))
  elseif r <= 90 then
    return wrk.format("GET", "/api/v1/public/letters/", {})
  else
    local p = data.residents[(i %% #data.residents) + 1]
    return wrk.format("GET", "/api/v1/letters/", auth(p.token))
  end
end
"""


def wait_for_server():
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def cpu_ticks(pids) -> int:
    """User and system CPU time of the processes, in clock ticks (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a PostgreSQL backend that ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def postgres_pids() -> list:
    """PostgreSQL's processes on this machine (the server is local here, as the benchmark assumes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wrk(script: str, connections: int, seconds: int, path="/", server=None) -> dict:
    """wrk's figures; with `server` (the gunicorn process), also the CPU time each request cost gunicorn's
    processes and PostgreSQL's, which these noisy machines move far less than the requests per second."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    app = (
        [server.pid, *map(int, Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split())]
        if server
        else []
    )
    before = cpu_ticks(app), cpu_ticks(postgres_pids())
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", f.name, BASE + path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = cpu_ticks(app), cpu_ticks(postgres_pids())
    os.unlink(f.name)

    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(x) for x in m.groups()) if m else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK") / max(requests, 1)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": errors,
        "app_cpu": (after[0] - before[0]) * tick_ms,
        "pg_cpu": (after[1] - before[1]) * tick_ms,
    }


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    data = personas()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_BENCH_PLAIN_VIEW": "1",
        "DJANGO_CONN_MAX_AGE": os.environ.get("DJANGO_CONN_MAX_AGE", "600"),
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    env.pop("CELERY_BROKER_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            str(WORKERS),
            "--log-level",
            "error",
        ],
        cwd=ROOT,
        env=env,
    )
    results = {}
    try:
        wait_for_server()
        lists = {
            "plain Django view (ceiling)": ("/bench/plain", ""),
            # The yardstick: a straightforward DRF list of 20 rows, anonymous, no scope, no filters.
            "straightforward DRF list, 20 rows (reference)": ("/bench/drf-list", ""),
            # The floor of a fresh list behind a login: the token query and the SQL of the street's page of cases,
            # written with json.dumps, no framework (`/bench/floor`, served with the same switch).
            "the floor: cases of a street as SQL and json.dumps (street staff)": ("/bench/floor", data["street_token"]),
            # The simplest list behind a login: the token, the caller's positions, one query of 33 rows.
            "case categories (street staff)": ("/api/v1/case-categories/", data["street_token"]),
            "cases of a street (street staff)": (f"/api/v1/cases/?unit={data['street']}", data["street_token"]),
            "letters of a street (its secretary)": (
                f"/api/v1/letters/?unit={data['secretaries'][0]['unit']}",
                data["secretaries"][0]["token"],
            ),
            "residents of a grid (grid worker)": (
                f"/api/v1/residents/?unit={data['workers'][0]['grid']}",
                data["workers"][0]["token"],
            ),
            "points board of a community (resident)": (
                f"/api/v1/points/boards/?month={data['month']}&unit={data['residents'][0]['community']}&scheme=resident",
                data["residents"][0]["token"],
            ),
            "public mailbox (anonymous)": ("/api/v1/public/letters/", ""),
        }
        plain = SINGLE % {"token": "", "path": "/bench/plain"}
        for name, (path, tok) in lists.items():
            wrk(SINGLE % {"token": tok, "path": path}, 32, 3)  # warm up every worker's connection and caches
            before = wrk(plain, 32, CEILING_SECONDS)["rps"]
            results[name] = wrk(SINGLE % {"token": tok, "path": path}, 32, LIST_SECONDS, server=server)
            results[name]["ceiling"] = (before + wrk(plain, 32, CEILING_SECONDS)["rps"]) / 2
            print(f"{name:48} {results[name]}", flush=True)
        mix = MIX % {"data": lua_table(data)}
        before = wrk(plain, 32, CEILING_SECONDS)["rps"]
        results["mix, 50 connections"] = wrk(mix, 50, MIX_SECONDS, server=server)
        results["mix, 50 connections"]["ceiling"] = (before + wrk(plain, 32, CEILING_SECONDS)["rps"]) / 2
        print(f"{'mix, 50 connections':48} {results['mix, 50 connections']}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    print()
    print(
        f"| measured with {WORKERS} gunicorn workers | req/s | ceiling beside it | × ceiling | p50 ms | p99 ms "
        "| errors | CPU ms/request: gunicorn | PostgreSQL |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['rps']:.0f} | {r['ceiling']:.0f} | {r['rps'] / r['ceiling']:.2f} | {r['p50']:.1f} "
            f"| {r['p99']:.1f} | {r['errors']} | {r['app_cpu']:.2f} | {r['pg_cpu']:.2f} |"
        )
    if any(r["errors"] for r in results.values()):
        sys.exit("some requests failed")


if __name__ == "__main__":
    main()
