"""The API's URLs are resolved by first segment (governance.routing): the same match as Django's own resolver.

Every operation of the OpenAPI schema, with its format-suffix and near-miss variants, is resolved both ways."""

import re

import pytest
from django.urls import Resolver404, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from drf_spectacular.generators import SchemaGenerator

from governance.routing import IndexedResolver, literal_prefix


def api_resolvers():
    [indexed] = [p for p in get_resolver().url_patterns if isinstance(p, IndexedResolver)]
    plain = URLResolver(indexed.pattern, indexed.url_patterns, indexed.default_kwargs)
    return indexed, plain


def sample_paths() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = []
    for template in schema["paths"]:
        for value in ("1", "42", "abc"):
            path = re.sub(r"\{[^}]+\}", value, template).lstrip("/")
            paths += [path, path.rstrip("/") + ".json", path + "x/", path.rstrip("/"), path + "1/"]
    return paths + ["api/v1/", "api/v1/.json", "api/v1/nothing/", "api/v1/cases", "api/v1/cases-x/", "api/v1/?"]


def outcome(resolver, path):
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return "404"
    return (match.func, match.args, match.kwargs, match.route, match.url_name, match.app_names, match.namespaces)


def test_every_api_path_resolves_as_djangos_resolver_does():
    indexed, plain = api_resolvers()
    paths = sample_paths()
    assert len(paths) > 500
    differ = [path for path in paths if outcome(indexed, path) != outcome(plain, path)]
    assert not differ, differ
    found = [outcome(indexed, path) for path in paths]
    assert sum(1 for o in found if o != "404") > 300  # most of them are real operations
    assert outcome(indexed, "api/v1/letters/") != "404" and outcome(indexed, "api/v1/points/boards/") != "404"


def test_the_index_keeps_every_pattern_for_reversing_and_the_schema():
    indexed, _plain = api_resolvers()
    assert len(indexed.url_patterns) > 150
    # A path of the letters is tried against the letters' own patterns (and the unreadable), not all those before.
    letters = indexed._resolver_of("letters").url_patterns
    assert all(literal_prefix(p.pattern).startswith("letters") or not literal_prefix(p.pattern) for p in letters)
    assert len(letters) < len(indexed.url_patterns) / 4


@pytest.mark.parametrize(
    "pattern, prefix",
    [
        (RoutePattern("cases/<int:pk>/"), "cases/"),
        (RoutePattern("points/boards/"), "points/boards/"),
        (RegexPattern(r"^cases/(?P<pk>[^/.]+)/$"), "cases/"),
        (RegexPattern(r"^cases\.(?P<format>[a-z0-9]+)/?$"), "cases"),
        (RegexPattern(r"^cases?/$"), "case"),  # the `s` may be missing
        (RegexPattern(r"^ca{2}/$"), "c"),
        (RegexPattern(r"^(?P<pk>\d+)/$"), ""),
        (RegexPattern(r"^a/|^b/"), ""),
        (RegexPattern(r"cases/$"), ""),  # searched anywhere
        (RegexPattern(r"^$"), ""),
    ],
)
def test_literal_prefix(pattern, prefix):
    assert literal_prefix(pattern) == prefix
