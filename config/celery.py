"""The Celery application.

With no CELERY_BROKER_URL set, settings make every task run eagerly in the calling process, so a laptop
needs no broker. In production a worker (`celery -A config worker`) and beat (`celery -A config beat`) run
beside the web nodes.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
