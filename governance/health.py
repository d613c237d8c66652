"""`/healthz` for load balancers and monitoring: the database answers, every migration is applied, and the broker
(when one is configured) accepts a connection. 200 with the checks when all pass, 503 naming the one that failed.
No login, no personal data, nothing but yes or no per check; cheap enough to poll every few seconds."""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database() -> bool:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0] == 1


def _migrations() -> bool:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


def _broker() -> bool | None:
    """None when tasks run inline (no broker configured)."""
    if not settings.CELERY_BROKER_URL:
        return None
    from config.celery import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return True


@never_cache
@require_GET
def healthz(request):
    checks = {}
    for name, check in (("database", _database), ("migrations", _migrations), ("broker", _broker)):
        try:
            checks[name] = check()
        except Exception:  # noqa: BLE001 - any failure of a dependency is "not healthy", never a 500
            checks[name] = False
    healthy = all(value is not False for value in checks.values())
    status = {True: "ok", False: "failing", None: "inline"}
    return JsonResponse(
        {"status": "ok" if healthy else "failing", "checks": {k: status[v] for k, v in checks.items()}},
        status=200 if healthy else 503,
    )
