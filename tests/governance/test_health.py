"""`/healthz` for the load balancer: 200 when the database, the migrations and the broker are fine, 503 else."""

from unittest import mock

from django.test import Client


def test_healthy(db, settings):
    settings.CELERY_BROKER_URL = None
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "broker": "inline"}}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_an_unapplied_migration_is_503(db, settings):
    settings.CELERY_BROKER_URL = None
    with mock.patch("governance.health.MigrationExecutor") as executor:
        executor.return_value.migration_plan.return_value = [("points", "0099_new")]
        response = Client().get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["migrations"] == "failing"


def test_a_broker_that_does_not_answer_is_503(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with mock.patch("config.celery.app.connection_for_write", side_effect=OSError("refused")):
        response = Client().get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["broker"] == "failing"


def test_the_database_down_is_503_not_500(db, settings):
    settings.CELERY_BROKER_URL = None
    with mock.patch("governance.health._database", side_effect=RuntimeError("connection refused")):
        response = Client().get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["database"] == "failing"
