"""The small catalogues every list names (case categories, letter categories, departments), kept in the cache.

A list of 20 cases names 20 categories and departments out of a few dozen. Joining those tables in the page's
query costs PostgreSQL more to plan than to run (a street's case list: 3.3 ms of planning with them, 0.4 ms
without), so lists read them from here instead: `row(Model, pk)`. An edit in the admin (any save or delete of a
catalogue row) drops the cached copy at once; a copy is kept at most CATALOGUE_CACHE_SECONDS otherwise, and a
row missing from the copy (added by a bulk load) reads the catalogue again. Each process reads the cache's copy
at most once a second (a list of 20 rows asks 20 times).
"""

import time

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save

_BUILDERS = {}
# This process's copy, read from the cache at most once a second (a list names its catalogue once per row).
_LOCAL: dict = {}
LOCAL_SECONDS = 1.0


def _key(model) -> str:
    return f"catalogue:{model._meta.label_lower}"


def register(model, build):
    """`build()` returns {pk: the row as lists show it}. Called once per model from its app's `ready()`."""
    _BUILDERS[model] = build

    def forget(**kwargs):
        _LOCAL.pop(model, None)
        cache.delete(_key(model))

    post_save.connect(forget, sender=model, weak=False, dispatch_uid=f"catalogue-{_key(model)}-save")
    post_delete.connect(forget, sender=model, weak=False, dispatch_uid=f"catalogue-{_key(model)}-delete")


def rows(model, *, fresh=False) -> dict:
    now = time.monotonic()
    local = _LOCAL.get(model)
    if local is not None and not fresh and now - local[0] < LOCAL_SECONDS:
        return local[1]
    found = None if fresh else cache.get(_key(model))
    if found is None:
        found = _BUILDERS[model]()
        cache.set(_key(model), found, settings.CATALOGUE_CACHE_SECONDS)
    _LOCAL[model] = (now, found)
    return found


def row(model, pk):
    """The catalogue row `pk` as lists show it, or None for None."""
    if pk is None:
        return None
    found = rows(model).get(pk)
    return found if found is not None else rows(model, fresh=True).get(pk)
