# The two commands of the README:
#   make demo   installs everything, builds the demo city and serves it at http://127.0.0.1:8000
#   make test   installs everything and runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEMO_PASSWORD ?= grid-demo-2026
HOST ?= 127.0.0.1:8000
MESSAGES_IGNORE := --ignore=.venv --ignore=var --ignore=tests --ignore=bench

.PHONY: demo test check fuzz lint format messages install install-dev bench-city

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(VENV)/bin/activate
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/bin/activate
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo --password "$(DEMO_PASSWORD)"
	$(PY) manage.py runserver $(HOST)

test: install-dev
	$(VENV)/bin/pytest

check: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	DJANGO_ENV=production DJANGO_SECRET_KEY=ci-only-$$(date +%s)-a-long-random-string-for-the-deploy-check \
	  DJANGO_ALLOWED_HOSTS=grid.example.gov.cn $(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	@# Every translatable string in the code has an English translation (the catalogue is left as it was).
	cp locale/en/LC_MESSAGES/django.po $(VENV)/django.po.bak
	$(PY) manage.py makemessages -l en $(MESSAGES_IGNORE) >/dev/null
	msgfmt --statistics -o /dev/null locale/en/LC_MESSAGES/django.po 2>&1 | tee $(VENV)/messages.txt
	mv $(VENV)/django.po.bak locale/en/LC_MESSAGES/django.po
	! grep -Eq "untranslated|fuzzy" $(VENV)/messages.txt || { echo "new strings: run make messages and translate them"; exit 1; }

# Schemathesis against the running app (gunicorn, a scratch PostgreSQL database), as several personas.
fuzz: install-dev
	PY=$(PY) PATH=$(VENV)/bin:$$PATH bash .ci/schemathesis

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

messages: install
	$(PY) manage.py makemessages -l en -l zh_Hans $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages --ignore=.venv
