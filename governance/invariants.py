"""What must hold in the data, whatever wrote it: checked after a restore from backup (`manage.py
check_invariants`), and by anyone who doubts the database. Each check is one set-based SQL statement that
returns the offending rows' ids; an empty answer is a pass.

The ledger: every account's kept balance is the sum of its entries; each entry's `balance_after` is the running
sum up to it; no balance below zero; a reversal undoes exactly the entry it names, on the same account. The
workflow logs (cases and letters, one mechanism): every object has a first event; its state is the state its last
event left it in; each event starts from the state the previous one ended in. Stock never below zero."""

from dataclasses import dataclass

from django.apps import apps
from django.db import connection


@dataclass
class Finding:
    check: str
    description: str
    ids: list[int]

    @property
    def ok(self) -> bool:
        return not self.ids


SAMPLE = 20


def _ids(sql: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM ({sql}) AS bad ORDER BY id LIMIT {SAMPLE + 1}")
        return [row[0] for row in cursor.fetchall()]


def ledger_checks() -> list[tuple[str, str, str]]:
    account = apps.get_model("points", "Account")._meta.db_table
    entry = apps.get_model("points", "Entry")._meta.db_table
    reward = apps.get_model("points", "Reward")._meta.db_table
    return [
        (
            "ledger.balance",
            "账户余额等于其全部记录之和",
            f"""SELECT a.id FROM {account} a
                LEFT JOIN (SELECT account_id, SUM(points) AS total FROM {entry} GROUP BY account_id) e
                  ON e.account_id = a.id
                WHERE a.balance <> COALESCE(e.total, 0)""",
        ),
        (
            "ledger.running_balance",
            "每条记录的记后余额等于截至该条的累计",
            f"""SELECT id FROM (
                  SELECT id, balance_after,
                         SUM(points) OVER (PARTITION BY account_id ORDER BY id ROWS UNBOUNDED PRECEDING) AS running
                  FROM {entry}) r
                WHERE balance_after <> running""",
        ),
        ("ledger.not_negative", "余额从不为负", f"SELECT id FROM {entry} WHERE balance_after < 0"),
        (
            "ledger.reversal",
            "冲正记录与原记录同一账户、分值相反",
            f"""SELECT r.id FROM {entry} r JOIN {entry} o ON o.id = r.reverses_id
                WHERE r.account_id <> o.account_id OR r.points <> -o.points""",
        ),
        ("shop.stock", "库存从不为负", f"SELECT id FROM {reward} WHERE stock < 0"),
    ]


def workflow_checks(label: str, model_name: str, event_name: str, fk: str) -> list[tuple[str, str, str]]:
    table = apps.get_model(label, model_name)._meta.db_table
    events = apps.get_model(label, event_name)._meta.db_table
    return [
        (
            f"{label}.first_event",
            "每一件都有第一条记录",
            f"SELECT o.id FROM {table} o WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.{fk} = o.id)",
        ),
        (
            f"{label}.state",
            "当前状态等于最后一条记录的新状态",
            f"""SELECT o.id FROM {table} o
                JOIN {events} e ON e.{fk} = o.id
                  AND e.id = (SELECT MAX(id) FROM {events} WHERE {fk} = o.id)
                WHERE e.to_state <> o.state""",
        ),
        (
            f"{label}.chain",
            "每条记录的原状态等于上一条的新状态",
            f"""SELECT id FROM (
                  SELECT id, from_state, LAG(to_state) OVER (PARTITION BY {fk} ORDER BY id) AS before
                  FROM {events}) c
                WHERE before IS NOT NULL AND from_state <> before""",
        ),
    ]


def letter_unit_checks() -> list[tuple[str, str, str]]:
    """Letters are written to streets and communities and assigned to those or to grids: who sees a letter is
    read from the units down to that depth only (mailbox.selectors.letters_visible_to)."""
    from mailbox.selectors import ASSIGNEE_DEPTH, LETTER_UNIT_DEPTH

    letter = apps.get_model("mailbox", "Letter")._meta.db_table
    unit = apps.get_model("governance", "Unit")._meta.db_table
    return [
        (
            "mailbox.units",
            "来信只写给街道或社区、只交办到网格为止",
            f"""SELECT l.id FROM {letter} l
                JOIN {unit} u ON u.id = l.unit_id LEFT JOIN {unit} a ON a.id = l.assignee_unit_id
                WHERE u.depth > {LETTER_UNIT_DEPTH} OR a.depth > {ASSIGNEE_DEPTH}""",
        ),
    ]


def case_unit_checks() -> list[tuple[str, str, str]]:
    """A case keeps its grid's community and street (grids.models.Case.community): who sees it is read from them."""
    case = apps.get_model("grids", "Case")._meta.db_table
    unit = apps.get_model("governance", "Unit")._meta.db_table
    step = apps.get_model("governance", "Unit").steplen
    return [
        (
            "grids.units",
            "事件所记的社区、街道与其网格的一致",
            f"""SELECT c.id FROM {case} c
                JOIN {unit} g ON g.id = c.grid_id
                JOIN {unit} cu ON cu.id = c.community_id
                JOIN {unit} su ON su.id = c.street_id
                WHERE cu.path <> SUBSTR(g.path, 1, {2 * step}) OR su.path <> SUBSTR(g.path, 1, {step})""",
        ),
    ]


def all_checks() -> list[tuple[str, str, str]]:
    return [
        *ledger_checks(),
        *workflow_checks("grids", "Case", "CaseEvent", "case_id"),
        *workflow_checks("mailbox", "Letter", "LetterEvent", "letter_id"),
        *letter_unit_checks(),
        *case_unit_checks(),
    ]


def run() -> list[Finding]:
    return [Finding(name, description, _ids(sql)) for name, description, sql in all_checks()]
