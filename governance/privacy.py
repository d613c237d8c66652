"""The log of personal data seen whole or exported (who, when, what). ID numbers and phones leave the system
masked (governance.masking) unless the viewer's role needs them whole and asks for them; each such view, and
each export of personal data, writes one `PersonalDataAccess` row naming the records, never the values."""

from .models import PersonalDataAccess

UNMASK_PARAM = "unmask"


def wants_whole(request) -> bool:
    """The caller asked for whole values (`?unmask=true`): masked is the default, even for those allowed."""
    if request is None:
        return False
    value = (getattr(request, "query_params", None) or request.GET).get(UNMASK_PARAM, "")
    return value.lower() in {"1", "true", "yes"}


def log_access(user, *, what: str, object_ids, fields, via: str, request=None) -> PersonalDataAccess | None:
    ids = sorted({int(pk) for pk in object_ids})
    if not ids and via != "export":  # every export is logged, even one of figures only
        return None
    from .security import client_ip

    return PersonalDataAccess.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        what=what,
        object_ids=ids,
        fields=list(fields),
        via=via,
        path=(request.get_full_path()[:300] if request is not None else ""),
        ip=client_ip(request),
    )
