"""The API's URL resolution, by first segment.

Django's resolver tries a path against every pattern of a URL conf in turn until one matches. The API's routers
give about 190 patterns under `/api/v1/`, most of them regular expressions, and the mailbox's come last: resolving
`/api/v1/letters/` tried 150 of them, 0.28 ms of every request for the letters (0.33 ms for a page of boards), on
the machines of docs/PERFORMANCE.md, against 0.04 ms for the first router's units.

`IndexedResolver` is Django's `URLResolver` with one change: for a path it tries only the patterns that can match
it, in their order. Each pattern starts with a literal text (`cases/`, `points/boards/`; what is known of a
regular expression before its first special character, and nothing for one it cannot read), and no path that
starts otherwise can match it. The patterns whose literal text fits the path's first segment are found once per
segment. Everything else is Django's: the patterns and their order (reversing URLs and the OpenAPI schema read
the whole list, as before), the match, its route and arguments. The tests resolve every operation of the schema
and paths that match nothing both ways and compare."""

from django.urls import URLResolver
from django.urls.resolvers import RegexPattern, RoutePattern

_SPECIAL = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS = frozenset("*+?{")


def literal_prefix(pattern) -> str:
    """The text that every path `pattern` matches starts with ('' when it is not known)."""
    if isinstance(pattern, RoutePattern):
        return str(pattern).split("<", 1)[0]  # a route's text before its first converter is matched as it is
    if isinstance(pattern, RegexPattern):
        regex = str(pattern)
        if not regex.startswith("^") or "|" in regex:  # searched anywhere, or alternatives
            return ""
        text = []
        for char in regex[1:]:
            if char in _SPECIAL:
                if char in _QUANTIFIERS and text:  # the character before `?` or `*` may be missing
                    text.pop()
                break
            text.append(char)
        return "".join(text)
    return ""


def _fits(prefix: str, segment: str) -> bool:
    """Whether a pattern whose paths start with `prefix` can match a path whose first segment is `segment`."""
    if "/" in prefix:
        return prefix.split("/", 1)[0] == segment
    return segment.startswith(prefix)


class IndexedResolver(URLResolver):
    """Django's URL resolver, trying for each path only the patterns that can match it (see the module)."""

    def _prefixes(self) -> list:
        prefixes = self.__dict__.get("_indexed_prefixes")
        if prefixes is None:
            prefixes = self.__dict__["_indexed_prefixes"] = [(p, literal_prefix(p.pattern)) for p in self.url_patterns]
        return prefixes

    def _resolver_of(self, segment: str) -> URLResolver:
        """A resolver of this one's pattern and of the patterns that fit `segment`; kept for the segments that
        some pattern names, built each time for any other (a path that only the unreadable patterns can match)."""
        views = self.__dict__.get("_indexed_views")
        if views is None:
            views = self.__dict__["_indexed_views"] = {}
            known = {prefix.split("/", 1)[0] for _p, prefix in self._prefixes()}
            for name in known:
                views[name] = self._resolver_for(name)
        found = views.get(segment)
        return found if found is not None else self._resolver_for(segment)

    def _resolver_for(self, segment: str) -> URLResolver:
        patterns = [p for p, prefix in self._prefixes() if _fits(prefix, segment)]
        return URLResolver(self.pattern, patterns, self.default_kwargs, self.app_name, self.namespace)

    def resolve(self, path):
        path = str(path)
        match = self.pattern.match(path)
        if not match:
            return super().resolve(path)
        rest = match[0]
        return self._resolver_of(rest.split("/", 1)[0]).resolve(path)


def indexed(route: str, *url_confs) -> IndexedResolver:
    """`path(route, include(...))` of the URL confs' patterns one after the other, resolved by `IndexedResolver`."""
    from importlib import import_module

    patterns = [p for name in url_confs for p in import_module(name).urlpatterns]
    return IndexedResolver(RoutePattern(route, is_endpoint=False), patterns)
