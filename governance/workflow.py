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

from django.db import models
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

    def record(self, obj, name: str, *, by, from_state: str, note: str = "", data: dict | None = None):
        """Write the event row of one step. Call inside the transaction that changed `obj`."""
        return obj.events.create(
            actor=by, action=name, from_state=from_state, to_state=obj.state, note=note, data=data or {}
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
