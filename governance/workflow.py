"""The workflow mechanism that cases and letters share.

A workflow is a set of actions. Each action names the states it may start from and the state it leads to
(or None when the service decides, or nothing changes). A service that performs an action:

    obj = lock(Case, case.pk)                      # SELECT … FOR UPDATE
    CASE_FLOW.check(obj, "escalate", allowed=…)    # 403 for the wrong role, then 409 for the wrong state
    … change fields …
    CASE_FLOW.record(obj, "escalate", by=user, from_state=…, note=…)   # one event row per step

Deadlines come from `governance.workdays`, reminders go through `governance.notifications`, and the
1–5 star rating is the abstract `Rated` model; the event tables derive from `WorkflowEvent`.
"""

from dataclasses import dataclass

from django.db import models, transaction
from django.utils.translation import gettext as _

from .errors import DomainError, InvalidInput, NotAllowed


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    sources: tuple  # states the action may start from; empty means any state
    target: str | None = None  # the state it leads to; None: unchanged or decided by the service


class Workflow:
    def __init__(self, state_choices: type[models.TextChoices], actions: list[Action], events: dict | None = None):
        self.states = state_choices
        self.actions = {a.name: a for a in actions}
        # Labels of event rows that are not actions a person takes (filing, automatic closing …).
        self.event_labels = events or {}

    def label(self, name: str) -> str:
        if name in self.actions:
            return str(self.actions[name].label)
        return str(self.event_labels.get(name, name))

    def state_allows(self, state: str, name: str) -> bool:
        sources = self.actions[name].sources
        return not sources or state in sources

    def check(self, obj, name: str, *, allowed: bool, why: str | None = None) -> Action:
        """Refuse with 403 when the role may not take the action here, then 409 when the state does not
        allow it. `allowed` is the caller's role check; `why` an optional readable reason for a refusal."""
        action = self.actions[name]
        if not allowed:
            raise NotAllowed(why or _("您的角色不能对此执行「%(action)s」。") % {"action": action.label})
        if not self.state_allows(obj.state, name):
            raise DomainError(
                _("当前状态为「%(state)s」，不能执行「%(action)s」。")
                % {"state": self.states(obj.state).label, "action": action.label},
                code="invalid_state",
            )
        return action

    def record(self, obj, name: str, *, by, from_state: str, note: str = "", data: dict | None = None, at=None):
        """Write the event row of one step (dated `at`, default now). Call inside the transaction that changed
        `obj`."""
        extra = {"created_at": at} if at is not None else {}
        return obj.events.create(
            actor=by, action=name, from_state=from_state, to_state=obj.state, note=note, data=data or {}, **extra
        )


def lock(model, pk):
    """The row, locked until the end of the transaction (a no-op lock on SQLite, which serialises writes)."""
    return model.objects.select_for_update().get(pk=pk)


def check_stars(stars) -> int:
    if not isinstance(stars, int) or isinstance(stars, bool) or not 1 <= stars <= 5:
        raise InvalidInput(_("评价星级须为 1 到 5 的整数。"), field="stars")
    return stars


def require_note(note: str, field: str = "note", message: str | None = None) -> str:
    note = (note or "").strip()
    if not note:
        raise InvalidInput(message or _("请填写说明。"), field=field)
    return note


# --- What the deadline sweeps of cases and letters share ---------------------------------------------------


def mark_overdue(queryset, *, flag: str, action: str, on_marked=None) -> int:
    """Set the boolean `flag` on every row of `queryset` that does not have it yet, with one event row (`action`,
    the state unchanged) per row marked, and call `on_marked(obj)` for each (to notify). Safe to run any number
    of times and from two sweeps at once: a conditional UPDATE decides which run marks a row. Returns how many
    rows this run marked."""
    marked = 0
    for obj in queryset.filter(**{flag: False}):
        with transaction.atomic():
            if not type(obj).objects.filter(pk=obj.pk, **{flag: False}).update(**{flag: True}):
                continue  # another run got there first
            obj.events.create(action=action, from_state=obj.state, to_state=obj.state)
            if on_marked is not None:
                on_marked(obj)
            marked += 1
    return marked


def close_unrated(queryset, *, waiting: str, closed: str, reason: str, now, action: str = "auto-close") -> int:
    """Close every row of `queryset` still in state `waiting` (left unrated for too long) as `closed` with
    `closed_reason=reason` and `closed_at=now`, writing one event row each. Unrated is not satisfied: the
    statistics count it apart. Safe to repeat: only a row still waiting is closed. Returns how many."""
    closed_now = 0
    for obj in queryset.filter(state=waiting):
        with transaction.atomic():
            changed = (
                type(obj)
                .objects.filter(pk=obj.pk, state=waiting)
                .update(state=closed, closed_reason=reason, closed_at=now)
            )
            if changed:
                obj.events.create(action=action, from_state=waiting, to_state=closed, created_at=now)
                closed_now += 1
    return closed_now
