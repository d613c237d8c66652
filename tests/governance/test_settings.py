"""The settings module: laptop defaults, production posture, and loud failures on bad environment values."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_language_and_time_zone():
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert [code for code, _ in settings.LANGUAGES] == ["zh-hans", "en"]
    assert settings.TIME_ZONE == "Asia/Shanghai"
    assert settings.USE_TZ is True


def test_with_nothing_set_the_app_runs_on_sqlite_with_eager_tasks():
    """The laptop default: a fresh process with no environment uses SQLite under var/ and runs tasks inline."""
    code = (
        "from django.conf import settings; from governance.tasks import broker_health; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, settings.DEBUG, "
        "broker_health.delay('pong').get())"
    )
    result = run_manage("shell", "-c", code, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["django.db.backends.sqlite3", "True", "True", "pong"]


def test_database_url_selects_the_database():
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'])"
    result = run_manage("shell", "-c", code, env={"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/somewhere"})
    assert result.stdout.strip().splitlines()[-1].split() == [
        "governance.pg",
        "somewhere",
    ]  # Django's PostgreSQL backend, its health check first polling the socket


def test_production_refuses_to_start_without_its_secrets():
    result = run_manage("check", env={"DJANGO_ENV": "production"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_requires_allowed_hosts():
    result = run_manage("check", env={"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "x" * 60})
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_a_bad_boolean_is_refused_loudly():
    result = run_manage("check", env={"DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_an_unknown_environment_name_is_refused():
    result = run_manage("check", env={"DJANGO_ENV": "prod"})
    assert result.returncode != 0
    assert "DJANGO_ENV" in result.stderr


def test_production_passes_the_deploy_check():
    env = {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-for-the-deploy-check-0123456789",
        "DJANGO_ALLOWED_HOSTS": "grid.example.gov.cn",
    }
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_administrators_must_use_two_factor_in_production_and_may_skip_it_on_a_laptop():
    code = "from django.conf import settings; print(settings.TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS)"
    production = {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "grid.example.gov.cn",
    }
    assert run_manage("shell", "-c", code, env=production).stdout.strip().splitlines()[-1] == "True"
    assert run_manage("shell", "-c", code, env={}).stdout.strip().splitlines()[-1] == "False"
