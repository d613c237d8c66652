"""What every API module shares: pagination, the error format, and the scoped viewset base."""

import datetime as dt
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from types import SimpleNamespace

import django_filters
import django_filters.rest_framework
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import DataError, connections
from django.db.models import Count, F, IntegerField, ProtectedError, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import ISO_8601, exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError, InvalidInput, NotAllowed
from .selectors import scope_of


def _hashed_count_key(key: str) -> str:
    return "count:" + hashlib.sha256(key.encode()).hexdigest()


class CountedPage(Page):
    more = False

    def has_next(self):
        return self.more


class CountingPaginator(Paginator):
    """Django's paginator, with a count that stays cheap on a street's 95,000 cases.

    A count is counted with a bounded query first (`LIMIT EXACT_COUNT + 1`), which costs no more than walking
    that many index entries, and is exact when it stays within `EXACT_COUNT`. A larger one is the full
    `COUNT(*)`, kept in the cache for `COUNT_CACHE_SECONDS` and looked up before anything is counted, so that
    paging a street's cases does not count them for every page: for that long the count is the one counted
    then, even if the rows have since grown or shrunk. It is kept under `count_key` when the caller gives one
    (the API's: the endpoint, the caller and their scope, the query but for the page; see `Pagination`), which
    costs nothing to make, and otherwise under the query's SQL. Whether there is a next page never depends on
    the count: each page reads one row more than it shows."""

    def __init__(self, *args, count_key=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.count_key = count_key

    @cached_property
    def count(self):
        qs = self.object_list
        if isinstance(qs, ListPlan):
            if qs.empty:
                return 0
            bounded_count, full_count = qs.count_bounded, qs.count_all
        elif not hasattr(qs, "query"):
            return len(qs)
        elif qs.query.is_empty():  # a scope that can match nothing (`.none()`)
            return 0
        else:

            def bounded_count():
                return qs.order_by()[: settings.EXACT_COUNT + 1].count()

            full_count = qs.count
        if self.count_key is not None:
            key = self._kept_count_key()
        else:
            try:
                key = _hashed_count_key(repr(qs.order_by().query.sql_with_params()))
            except EmptyResultSet:  # a filter that can match nothing (`pk IN ()`)
                return 0
        kept = cache.get(key)
        if kept is not None:
            return kept
        return self._counted(bounded_count(), full_count, key)

    def _kept_count_key(self):
        return _hashed_count_key(self.count_key)

    @staticmethod
    def _counted(bounded, full_count, key):
        """The count, from the bounded one when it stayed within EXACT_COUNT, else counted in full and kept."""
        if bounded <= settings.EXACT_COUNT:
            return bounded
        found = full_count()
        cache.set(key, found, settings.COUNT_CACHE_SECONDS)
        return found

    def page(self, number):
        plan = self.object_list
        if isinstance(plan, ListPlan) and self.count_key is not None and "count" not in self.__dict__:
            page = self._page_counted(plan, number)
            if page is not None:
                return page
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page + 1
        if isinstance(plan, ListPlan):  # the plan reads its rows itself
            rows = plan.fetch(bottom, top)
        else:
            rows = list(plan[bottom:top])
        return self._page_of(rows, number)

    def _page_counted(self, plan, number):
        """A page of a list with no kept count, read with its bounded count in one query (`fetch_counted`); None
        when the page must be read as usual (a page number to refuse, a page beyond what a bounded count can
        reach, a kept count, an empty page but the first)."""
        try:
            number = int(number)
        except (TypeError, ValueError):
            return None  # validate_number refuses it in its own words
        bottom = (number - 1) * self.per_page
        if number < 1 or bottom > settings.EXACT_COUNT or plan.empty:
            return None  # past any list counted within EXACT_COUNT: counted first, as Django's paginator does
        key = self._kept_count_key()
        kept = cache.get(key)
        if kept is not None:
            self.__dict__["count"] = kept  # looked up once
            return None
        rows, bounded, whole = plan.fetch_counted(bottom, bottom + self.per_page + 1)
        if bounded is None:
            if number > 1:
                return None  # past the end: counted as usual, and refused by validate_number
            bounded = 0  # no first page in the same snapshot as the count: nothing to list
        self.__dict__["count"] = self._counted(bounded, (lambda: bounded) if whole else plan.count_all, key)
        return self._page_of(rows, self.validate_number(number))

    def _page_of(self, rows, number):
        page = self._get_page(rows[: self.per_page], number, self)
        page.more = len(rows) > self.per_page
        return page

    def validate_number(self, number):
        try:
            return super().validate_number(number)
        except EmptyPage:
            # A count kept from a minute ago may be a little short of the rows there are now.
            number = int(number)
            if self.count > settings.EXACT_COUNT and 1 <= number <= self.num_pages + 1:
                return number
            raise

    def _get_page(self, *args, **kwargs):
        return CountedPage(*args, **kwargs)


class Pagination(PageNumberPagination):
    """Pages of 20 (up to 200 with `page_size=`), counted by `CountingPaginator`. A large count is kept under
    what the request asked for: the endpoint and action, the caller and the scope their positions give, and
    the query without its page; the same question by the same person within `COUNT_CACHE_SECONDS` gets the
    same count, without its SQL being built to name it (0.4 ms of every list)."""

    django_paginator_class = CountingPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_next_link(self):
        if not self.page.has_next():
            return None
        return _page_link(self.request.build_absolute_uri(), self.page_query_param, self.page.next_page_number())

    def get_previous_link(self):
        if not self.page.has_previous():
            return None
        return _page_link(self.request.build_absolute_uri(), self.page_query_param, self.page.previous_page_number())

    def paginate_queryset(self, queryset, request, view=None):
        if view is not None:
            self.django_paginator_class = functools.partial(CountingPaginator, count_key=request_key(view, request))
        return super().paginate_queryset(queryset, request, view)


@functools.lru_cache(maxsize=1024)
def _page_link(url: str, name: str, number: int) -> str:
    """The link to page `number` of the list at `url`, as DRF writes it (the first page without `page=`)."""
    if number == 1:
        return remove_query_param(url, name)
    return replace_query_param(url, name, number)


def request_key(view, request) -> str:
    """What a list request asks, but for its page: the endpoint and action, the caller and the scope their
    positions give (with their units' paths), and the query without `page` and `page_size`. The same key names
    the kept count (`Pagination`) and the kept plan (`LightListMixin`); it is made once per request."""
    key = getattr(request, "_list_key", None)
    if key is None:
        skip = (Pagination.page_query_param, Pagination.page_size_query_param)
        query = sorted((name, tuple(values)) for name, values in request.query_params.lists() if name not in skip)
        user = request.user
        key = repr(
            (
                type(view).__module__,
                type(view).__qualname__,
                getattr(view, "action", None),
                view.kwargs,
                user.pk,
                scope_of(user),
                query,
            )
        )
        request._list_key = key
    return key


@functools.cache
def _choice_labels(model, field_name, language):
    return {value: str(label) for value, label in model._meta.get_field(field_name).flatchoices}


def choice_labels(model, *field_names) -> dict:
    """{field name: {value: label}} of choices fields, in the request's language."""
    language = get_language()
    return {name: _choice_labels(model, name, language) for name in field_names}


_DATETIME = serializers.DateTimeField()
_DATETIME_ISO = getattr(_DATETIME, "format", api_settings.DATETIME_FORMAT) == ISO_8601


def iso_datetime(value, zone=None):
    """A datetime as the API writes it (DRF's DateTimeField: ISO 8601 in the current time zone, or `zone` when
    the caller looked it up already). An aware one, as the database gives them, is written here directly: what
    DRF writes, at a quarter of its cost (a list of 20 cases writes 60)."""
    if value is None:
        return None
    if _DATETIME_ISO and timezone.is_aware(value):
        text = value.astimezone(zone or timezone.get_current_timezone()).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return _DATETIME.to_representation(value)


class RowWriter:
    """For list serializers that write their rows directly: what is the same for every row of one answer, the
    labels of `label_fields` in the request's language and the current time zone, looked up once per answer
    (each is a lookup in a context-local, 80 of them for a page of 20 cases)."""

    label_fields: tuple = ()

    @cached_property
    def labels(self) -> dict:
        return choice_labels(self.Meta.model, *self.label_fields)

    @cached_property
    def zone(self):
        return timezone.get_current_timezone()

    def datetime(self, value):
        """An aware datetime in the current time zone, for the renderer to write: orjson writes it as DRF's
        DateTimeField does (`Z` for UTC) in a fraction of `isoformat`'s time (60 of them in a page of 20 cases).
        As DRF's text where orjson would write it otherwise: a naive one, and an offset with seconds in it (the
        local mean time of years before 1901, which orjson rounds to the minute)."""
        if value is None or value.tzinfo is None:
            return iso_datetime(value, self.zone)
        local = value.astimezone(self.zone)
        if local.utcoffset().seconds % 60:
            return iso_datetime(value, self.zone)
        return local


class FilterSet(django_filters.rest_framework.FilterSet):
    """django-filter's FilterSet for DRF, building only the filters that the request's query names, and refusing a
    yes-or-no filter given anything but true, false, 1 or 0 (any case): every API filter set is one, those
    generated from a view's `filterset_fields` too (`FilterBackend`).

    django-filter copies every filter of the set and builds a form field for each on every request, though a
    filter that is not named does nothing (its value is empty); for a list with nine filters and one named
    that is 1 ms of its 8. A filter counts as named when a parameter is its name or starts with its name and
    `_` (the range filters' `_min`, `_after`). Sets whose `filter_queryset` reads an unnamed filter's value
    read it with `cleaned_data.get`. The schema is built from the class, which keeps them all."""

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            names = tuple(data.keys())
            self.base_filters = {
                name: f
                for name, f in type(self).base_filters.items()
                if any(n == name or n.startswith(name + "_") for n in names)
            }
        super().__init__(data, *args, **kwargs)

    def is_valid(self):
        """A yes-or-no filter given anything else is an error, not a filter left out (which would answer every
        row, as if `?overdue=ture` had not been asked). DRF's boolean widget reads the four words."""
        valid = super().is_valid()
        for name, f in self.filters.items():
            raw = self.form.data.get(name)
            if isinstance(f, django_filters.BooleanFilter) and raw not in (None, "") and name not in self.form.errors:
                if not isinstance(f.field.widget, django_filters.widgets.BooleanWidget):  # pragma: no cover
                    raise TypeError(f"{type(self).__name__}.{name}: use django_filters.rest_framework.BooleanFilter")
                if str(raw).lower() not in ("true", "false", "1", "0"):
                    self.form.add_error(name, _("只能填 true 或 false。"))
            valid = valid and name not in self.form.errors
        return valid


class FilterBackend(django_filters.rest_framework.DjangoFilterBackend):
    """django-filter's backend, with the filter sets it makes of `filterset_fields` built on `FilterSet`."""

    filterset_base = FilterSet


def light_rows(rows, columns) -> list:
    """`values_list(*columns)` rows as plain objects named like the model's attributes: `number` is
    `row.number`, `grid__name` is `row.grid.name`, and `id` is also `row.pk`. A list serializer that writes
    its rows itself reads them as it would read model objects, for a third less than building those (20
    cases: 1.8 ms instead of 2.7 ms). Each row is made by one expression built once for the columns
    (`_row_maker`), not attribute by attribute."""
    make = _row_maker(tuple(columns))
    return [make(values) for values in rows]


@functools.cache
def _row_maker(columns: tuple):
    """`lambda v: N(id=v[0], pk=v[0], grid=N(name=v[5]), …)` for `columns`, N being SimpleNamespace."""
    tree: dict = {}
    for i, column in enumerate(columns):
        *parents, name = column.split("__")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(f"{column}: {parent} is a column and a relation")
        if name in node or not all(part.isidentifier() for part in (*parents, name)):
            raise ValueError(f"{column}: not a column name, or named twice")
        node[name] = i

    def arguments(node) -> str:
        return ", ".join(f"{k}=N({arguments(v)})" if isinstance(v, dict) else f"{k}=v[{v}]" for k, v in node.items())

    return eval(f"lambda v: N({arguments(tree)}, pk=v[{tree['id']}])", {"N": SimpleNamespace})  # noqa: S307


class LightListMixin:
    """A list that reads its page in two steps and hands the serializer `light_rows`, for list serializers
    whose `to_representation` reads `list_columns` and no other attributes (the tests compare them with the
    declared fields on model objects).

    First the ids of the page, from the scoped and filtered query; then `list_columns` of those ids only,
    with their joins, as values rather than model objects. In one query: `WHERE id IN (SELECT id … LIMIT
    21)`. PostgreSQL otherwise joins every row it must sort before it keeps a page of them: on the city a
    community's page of cases took 25 ms, of which half went on joining the holder unit of each of its
    4,000 cases; now 3 ms, the ids coming from the grid-time-id index alone. A street's page, found by
    walking the newest cases, stays at 0.4 ms. The SQL of both, and of the count, is a `ListPlan`, kept for
    the same request asked again soon after."""

    list_columns: list = []
    # Expressions read as columns of the page's rows, each named in `list_columns` (a correlated subquery, say).
    list_annotations: dict = {}
    # A list counted within EXACT_COUNT sorts its rows for a page rather than walk an index in the list's order
    # (`ListPlan`): for lists whose scope PostgreSQL cannot size, and so walks the whole table's newest rows.
    sort_small_lists: bool = False

    def complete_rows(self, rows: list) -> list:
        """What the serializer reads beyond `list_columns` (related rows, say), set on the page's light rows."""
        return rows

    def list(self, request, *args, **kwargs):
        if self.paginator is None:  # every row, unpaginated (a catalogue)
            rows = self.complete_rows(light_rows(self.list_plan(request).fetch(0, None), self.list_columns))
            return Response(self.write_rows(rows))
        page = self.paginate_queryset(self.list_plan(request))
        rows = self.complete_rows(light_rows(page, self.list_columns))
        return self.get_paginated_response(self.write_rows(rows))

    def write_rows(self, rows) -> list:
        """The page's rows as the list serializer writes them: one serializer writes them all (its
        `to_representation` writes a row directly), without DRF's list serializer around it."""
        write = self.get_serializer().to_representation
        return [write(row) for row in rows]

    def list_plan(self, request) -> "ListPlan":
        """The SQL of this request's count and pages: kept from the same request made in the last
        `LIST_PLAN_SECONDS` in this process and thread, or built from the scoped and filtered queryset (and kept)."""
        key = request_key(self, request)
        plans = _plans()
        now = time.time()
        kept = plans.get(key)
        if kept is not None and now - kept.built < settings.LIST_PLAN_SECONDS:
            plans.move_to_end(key)
            return kept
        plan = ListPlan(
            self.filter_queryset(self.get_queryset()),
            self.list_columns,
            annotations=self.list_annotations,
            sort_small=self.sort_small_lists,
            built=now,
        )
        clock = getattr(getattr(self, "filterset_class", None), "clock_filters", ())
        if not any(name in request.query_params for name in clock):
            plans[key] = plan
            plans.move_to_end(key)
            while len(plans) > MAX_PLANS:
                plans.popitem(last=False)
        return plan


MAX_PLANS = 500
_LOCAL_PLANS = threading.local()


def _plans() -> OrderedDict:
    """This thread's kept list plans, least recently used first (`forget_list_plans` empties them)."""
    plans = getattr(_LOCAL_PLANS, "plans", None)
    if plans is None:
        plans = _LOCAL_PLANS.plans = OrderedDict()
    return plans


def forget_list_plans():
    _plans().clear()


class ListPlan:
    """The SQL of a list's count and of its pages, compiled once from the scoped and filtered queryset.

    Building a list's queryset (the scope, django-filter's form and filters, the ORM's joins) and compiling its
    count and page queries is most of what the API's list costs in Python: 2 ms of a case list's 5. The plan keeps
    the compiled SQL, and a request that asks the same as one made a moment ago (`request_key`: the endpoint, the
    caller, their scope with its units' paths, the query but for the page) runs it again. The rows and the count
    are read anew every time (a plan is never a copy of an answer: a case filed a moment ago is on the next page
    read). What the plan fixes for up to `LIST_PLAN_SECONDS` is what the SQL was built from beyond the key: the
    path of a unit named by `unit=` that is not one of the caller's own (a unit moved by an administrator) and
    the rows a filter checked its value against (a category deleted).

    A plan is not kept when the query names one of the filter set's `clock_filters`, filters that read the
    clock (`overdue=`: the cases late *now*), since a plan built a minute ago would answer for then; a test
    runs every filter of these lists at two moments and fails for one whose SQL moved and is not declared."""

    def __init__(self, queryset, columns, *, annotations=None, sort_small=False, built=0.0):
        self.built = built
        self.columns = columns
        self.annotations = annotations or {}
        self.sort_small = sort_small
        self.small = False  # counted within EXACT_COUNT the last time it was counted
        self.empty = queryset.query.is_empty()  # a scope that can match nothing (`.none()`)
        self.pages = {}
        if self.empty:
            return
        self.db = queryset.db
        self.ordering = queryset.query.order_by or queryset.model._meta.ordering
        self.queryset = queryset
        try:
            ids_sql, ids_params = queryset.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing (`pk IN ()`)
            self.empty = True
            return
        bounded_sql = f"SELECT COUNT(*) FROM ({ids_sql} LIMIT {int(settings.EXACT_COUNT) + 1}) subquery"
        self._bounded_raw = (bounded_sql, tuple(ids_params))
        self._bounded = written_out(self.db, bounded_sql, ids_params)
        self._all = written_out(self.db, f"SELECT COUNT(*) FROM ({ids_sql}) subquery", ids_params)
        self.counted_pages = {}

    def _run(self, sql, params) -> list:
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def count_bounded(self) -> int:
        found = self._run(*self._bounded)[0][0]
        self.small = found <= settings.EXACT_COUNT
        return found

    def count_all(self) -> int:
        return self._run(*self._all)[0][0]

    def fetch(self, low, high) -> list:
        """The rows low..high of `list_columns`: the page's ids first, then their rows (`LightListMixin`)."""
        if self.empty:
            return []
        return self._compiled(self.pages, low, high, counted=False).rows()

    def fetch_counted(self, low, high) -> tuple[list, int | None, bool]:
        """The rows low..high and, in the same query, the bounded count (`count_bounded`), or the whole count for
        a list counted small last time (`_windowed`; the third value says which): one round trip and one
        statement where the count and the page were two (a grid's residents, a community's letters or boards:
        lists counted exactly on every request). The count comes with the rows, so a page with no rows gives
        none (None)."""
        if self.empty:
            return [], 0, True
        compiled = self._compiled(self.counted_pages, low, high, counted=True)
        found = compiled.rows()
        if not found:
            return [], None, False
        self.small = found[0][-1] <= settings.EXACT_COUNT
        return [row[:-1] for row in found], found[0][-1], compiled.whole_count

    def _compiled(self, kept, low, high, *, counted) -> "CompiledRows":
        sort = self.sort_small and self.small
        # A list counted small last time is counted by the walk that finds its page (`_windowed`).
        windowed = counted and self.small and not self.queryset.query.distinct and self.queryset.query.group_by is None
        compiled = kept.get((low, high, sort, windowed))
        if compiled is None:
            ordered = self.queryset.order_by(*(self._sorted_ordering() if sort else self.ordering))
            if windowed:
                compiled = self._windowed(ordered, low, high)
            else:
                rows = self._rows(self.queryset.model._base_manager.filter(pk__in=ordered.values("pk")[low:high]))
                columns = self.columns
                if counted:
                    # An uncorrelated scalar subquery: PostgreSQL and SQLite run it once for the statement.
                    rows = rows.annotate(listed_count=RawSQL(*self._bounded_raw, output_field=IntegerField()))
                    columns = [*columns, "listed_count"]
                compiled = CompiledRows(rows.values_list(*columns))
            if len(kept) < 10:
                kept[(low, high, sort, windowed)] = compiled
        return compiled

    def _rows(self, rows):
        """The page's rows of `list_columns`, in the list's order, with the list's annotations."""
        rows = rows.order_by(*self.ordering)
        return rows.annotate(**self.annotations) if self.annotations else rows

    def _windowed(self, ordered, low, high) -> "CompiledRows":
        """The page and the whole list's count from one walk: the page's ids with `COUNT(*) OVER ()` (the count of
        every row the scope and filters let through, taken before the LIMIT) as a WITH query, and the rows of those
        ids. Where the bounded count walked the list a second time beside the page's walk (a grid's 284
        residents: two walks of 112 households' residents), it is walked once. For lists counted within
        EXACT_COUNT the last time: the count is the whole list's (a list grown past EXACT_COUNT meanwhile has its
        whole count kept, as `_counted` keeps a count beyond EXACT_COUNT). The count is of the rows the ordered
        query gives: the lists order by their own columns and those of to-one relations, which add no rows."""
        page = ordered.annotate(listed_total=Window(Count("pk"))).values("pk", "listed_total")[low:high]
        page_sql, page_params = page.query.sql_with_params()
        rows = self._rows(
            self.queryset.model._base_manager.filter(pk__in=RawSQL("SELECT listed_page.pk FROM listed_page", ()))
        ).annotate(listed_count=RawSQL("SELECT listed_page.listed_total FROM listed_page LIMIT 1", (), IntegerField()))
        compiled = CompiledRows(
            rows.values_list(*self.columns, "listed_count"), before=(f"WITH listed_page AS ({page_sql}) ", page_params)
        )
        compiled.whole_count = True
        return compiled

    def _sorted_ordering(self) -> list:
        """The list's order, its columns but the primary key written so that no index gives it (`COALESCE(x,
        x)`): PostgreSQL reads the list's rows by its scope and sorts them, where it would walk the index of the
        order through rows of every scope. The same order (a column equal to itself), the same rows."""
        meta = self.queryset.model._meta
        terms = []
        for term in self.ordering:
            name = term.lstrip("-") if isinstance(term, str) else None
            try:
                field = meta.get_field(name) if name and "__" not in name and name != "pk" else None
            except FieldDoesNotExist:  # an annotation, say: left as it is
                field = None
            if field is None or field.primary_key or field.is_relation:  # a relation orders by its model's order
                terms.append(term)
                continue
            expression = Coalesce(F(name), F(name))
            terms.append(expression.desc() if term.startswith("-") else expression.asc())
        return terms


def written_out(alias, sql, params):
    """On PostgreSQL the text psycopg2 would send, its parameters written in once, here (what
    `governance.prepared` would otherwise do on every run); elsewhere the SQL and its parameters."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            return cursor.cursor.mogrify(sql, params).decode(), None
    return sql, params


class CompiledRows:
    """A `values_list` queryset compiled once, run again and again: its SQL (`written_out`) and the converters of
    its values, without the ORM's building and compiling on each run (for a query of twenty subqueries, such as
    a page of boards' first rows, that is most of a request). `rows()` reads the rows anew each time."""

    whole_count = False  # a list's page with the whole list's count in its last column (`ListPlan._windowed`)

    def __init__(self, queryset, *, before=("", ())):
        """`before`: SQL and its parameters written before the query's own (a WITH clause it reads)."""
        self.db = queryset.db
        compiler = queryset.query.get_compiler(using=self.db)
        sql, params = compiler.as_sql()
        self.converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        self.compiler = compiler if self.converters else None  # kept only to convert (it holds the whole query)
        self.sql, self.params = written_out(self.db, before[0] + sql, (*before[1], *params))

    def rows(self) -> list:
        with connections[self.db].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            found = cursor.fetchall()
        if self.converters:
            found = [tuple(row) for row in self.compiler.apply_converters(found, self.converters)]
        return found


def iso_date(value):
    """A date as the API writes it (DRF's DateField: `YYYY-MM-DD`)."""
    return None if value is None else value.isoformat()


class DisplayField(serializers.CharField):
    """The label of a choices field in the request's language (`state` → "处置中"): what `get_state_display`
    gives, without its cost per row (Django rebuilds and hashes the whole choices mapping on every call)."""

    def __init__(self, field_name, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(source=field_name, **kwargs)

    def to_representation(self, value):
        labels = _choice_labels(self.parent.Meta.model, self.source, get_language())
        return labels.get(value, str(value))


def _first_message(errors):
    """The first human-readable message in a DRF error structure, for the top-level `detail`."""
    if isinstance(errors, dict):
        for value in errors.values():
            found = _first_message(value)
            if found:
                return found
    elif isinstance(errors, list):
        for value in errors:
            found = _first_message(value)
            if found:
                return found
    elif errors:
        return str(errors)
    return None


def exception_handler(exc, context):
    """Every error body is `{"detail": <readable message>, "code": <machine code>}`, plus `"errors"` with the
    field errors for a 400. Messages follow the request's language (zh-hans by default)."""
    if isinstance(exc, InvalidInput):
        errors = {exc.field or "non_field_errors": [str(exc.message)]}
        return Response(
            {"detail": str(exc.message), "code": exc.code, "errors": errors}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, DomainError):
        return Response({"detail": str(exc.message), "code": exc.code}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(errors)
    if isinstance(exc, ProtectedError):
        return Response(
            {"detail": _("该记录仍被其他记录引用，不能删除。"), "code": "protected"}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, (OverflowError, DataError)):
        # A number or date beyond what the database or the calendar can hold: the input is wrong, not the server.
        return Response(
            {"detail": _("输入的数值或日期超出范围。"), "code": "out_of_range"}, status=status.HTTP_400_BAD_REQUEST
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        response.data = {
            "detail": _("输入有误：%(message)s") % {"message": _first_message(errors) or ""},
            "code": "invalid",
            "errors": errors,
        }
    elif isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        response.data = {"detail": str(detail), "code": getattr(detail, "code", None) or exc.default_code}
    return response


class ScopedMixin:
    """Viewsets whose queryset starts from a `*_visible_to(user)` accessor, so a row outside the caller's
    scope is a 404 like a missing one. `write_check(user)` runs before any write action so that a role that
    may not write gets its 403 before its input is even read; `object_write_check(user, obj)` does the same
    for a visible object."""

    write_actions = ("create", "update", "partial_update", "destroy")

    def write_check(self, user):
        pass

    def object_write_check(self, user, obj):
        pass

    def filter_queryset(self, queryset):
        # List filters (including defaults such as "not archived") narrow lists, never detail lookups.
        return queryset if self.detail else super().filter_queryset(queryset)

    def check_permissions(self, request):
        super().check_permissions(request)
        # On a detail route the object is looked up first, so that "not yours" stays a 404.
        if self.action in self.write_actions and (self.lookup_url_kwarg or self.lookup_field) not in self.kwargs:
            self.write_check(request.user)

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if self.action in self.write_actions:
            self.write_check(request.user)
            self.object_write_check(request.user, obj)


def error_response(message, *, code, http_status):
    return Response({"detail": str(message), "code": code}, status=http_status)


class TransitionsMixin:
    """The steps of a workflow (`governance.workflow`) as `POST /<objects>/{id}/<step>/`, for cases and letters
    alike. A subclass sets `flow` (the Workflow), `transitions` ({step: (input serializer, service, adapt)},
    where `adapt(request, data)` may turn validated input into the service's arguments), `object_kwarg` (the
    service's keyword for the object: "case", "letter"), and implements `may_take(user, obj, step)` (the role
    check) and `step_response(request, obj)`; then `add_transition_routes(TheViewSet, operation_prefix=…)`."""

    flow = None
    transitions: dict = {}
    object_kwarg = "obj"

    def may_take(self, user, obj, step) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def step_response(self, request, obj):  # pragma: no cover - interface
        raise NotImplementedError

    def take_step(self, request, step):
        obj = self.get_object()
        if not self.may_take(request.user, obj, step):
            # The role decides first: one who may not take the step gets the 403, not their input's errors.
            raise NotAllowed(_("您的角色不能对此执行「%(action)s」。") % {"action": self.flow.label(step)})
        input_serializer, service, adapt = self.transitions[step]
        serializer = input_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if adapt:
            data = adapt(request, data)
        service(**{self.object_kwarg: obj}, by=request.user, **data)
        return self.step_response(request, self.get_queryset().get(pk=obj.pk))


def add_transition_routes(viewset, *, operation_prefix: str, response_serializer):
    """One `@action` per step of `viewset.transitions`, named `step_<step>` (a step named like a view method,
    `dispatch`!, must not replace it), documented with its input and `response_serializer`."""

    def make(step):
        input_serializer = viewset.transitions[step][0]

        def view(self, request, pk=None):
            return self.take_step(request, step)

        view.__name__ = "step_" + step.replace("-", "_")
        view.__doc__ = str(viewset.flow.actions[step].label)
        operation_id = f"{operation_prefix}_{step.replace('-', '_')}"
        view = extend_schema(request=input_serializer, responses=response_serializer, operation_id=operation_id)(view)
        return action(detail=True, methods=["post"], url_path=step)(view)

    for step in viewset.transitions:
        setattr(viewset, "step_" + step.replace("-", "_"), make(step))


class DeadlineField(serializers.DateTimeField):
    """A deadline: a datetime with offset, or a bare date meaning the close of office hours that day (as the
    page's date picker means it), not its midnight."""

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value.strip()) == 10:
            day = serializers.DateField().to_internal_value(value.strip())
            (close_hour, close_minute) = settings.WORKING_HOURS[1]
            moment = dt.datetime.combine(day, dt.time(close_hour, close_minute))
            return timezone.make_aware(moment, timezone.get_default_timezone())
        return super().to_internal_value(value)


class WorkflowEventSerializer(serializers.ModelSerializer):
    """One row of an object's event log (`governance.workflow`), for cases and letters alike. Subclasses set
    `flow` and `Meta.model`. The context's `named` (a set of user ids, or None for everyone) says whose names
    the caller may read; anyone else appears as "a resident"."""

    flow = None
    actor = serializers.SerializerMethodField()
    action_display = serializers.SerializerMethodField()
    from_state_display = serializers.SerializerMethodField()
    to_state_display = serializers.SerializerMethodField()

    class Meta:
        fields = [
            "id",
            "action",
            "action_display",
            "actor",
            "created_at",
            "from_state",
            "from_state_display",
            "to_state",
            "to_state_display",
            "note",
            "data",
        ]

    def get_actor(self, event) -> dict | None:
        if not event.actor_id:
            return None
        named = self.context.get("named")
        if named is not None and event.actor_id not in named:
            return {"id": None, "name": _("居民")}
        return {"id": event.actor_id, "name": event.actor.display_name}

    def get_action_display(self, event) -> str:
        return self.flow.label(event.action)

    def _state(self, value) -> str:
        return self.flow.states(value).label if value in self.flow.states.values else ""

    def get_from_state_display(self, event) -> str:
        return self._state(event.from_state)

    def get_to_state_display(self, event) -> str:
        return self._state(event.to_state)


# --- The errors in the schema ---------------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a readable message in the request's language, a machine code, field errors on 400.",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        # Field name → its messages (a list of files or of items: position → messages).
        "errors": {"type": "object"},
    },
    "required": ["detail", "code"],
}
ERROR_STATUSES = {
    "400": "输入有误（字段错误见 errors）",
    "401": "未登录",
    "403": "可见但无权操作",
    "404": "不存在或不在本人范围内",
    "405": "不支持的请求方法",
    "409": "当前状态不允许该操作",
    "415": "不支持的请求格式",
    "429": "请求过于频繁",
}


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the error answers the exception handler
    gives (one `Error` schema), so that clients and Schemathesis know them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status_code, description in ERROR_STATUSES.items():
                if status_code == "401" and not operation.get("security", [{}]):
                    continue
                responses.setdefault(
                    status_code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result
