"""Celery against the real broker (Redis in CI): a task goes through the broker to a worker and back."""

import os
import uuid

import pytest


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_the_real_broker():
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from governance.tasks import broker_health

    app.conf.update(
        task_always_eager=False,
        broker_url=os.environ["CELERY_BROKER_URL"],
        result_backend=os.environ.get("CELERY_RESULT_BACKEND") or os.environ["CELERY_BROKER_URL"],
    )
    # The app caches its result backend on first use (another test may have used it without one).
    app._local.__dict__.pop("backend", None)
    app.control.purge()  # messages other runs left in the queue must not reach this worker first
    try:
        token = uuid.uuid4().hex
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            assert broker_health.delay(token).get(timeout=20) == token
    finally:
        app.conf.task_always_eager = True
        app._local.__dict__.pop("backend", None)
