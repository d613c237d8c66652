"""What the pages of every app share: the refusal page, and putting a service's refusal next to its field."""

from django.shortcuts import render

from .errors import DomainError


def forbidden(request, message, *, back=None):
    """The 403 page: what was refused and why, a way back."""
    return render(request, "forbidden.html", {"message": message, "back": back}, status=403)


def show_error(form, error: DomainError, aliases=None) -> int:
    """Put a service's refusal next to its field (or above the form); the status code to answer with."""
    field = getattr(error, "field", None)
    field = (aliases or {}).get(field, field)
    form.add_error(field if field in form.fields else None, str(error.message))
    return error.status_code


def error_summary(form) -> list[str]:
    """The form's errors as "label: message" lines, for the box at the top of the page."""
    lines = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        lines += [f"{label}：{e}" if label else str(e) for e in errors]
    return lines
