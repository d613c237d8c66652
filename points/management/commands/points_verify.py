from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from points.selectors import balance_drift, first_entry_drift


class Command(BaseCommand):
    help = _("核对每个积分账户的余额是否等于其全部流水之和；有差异时逐个列出并以状态 1 退出。")

    def handle(self, *args, **options):
        drift = balance_drift()
        first = first_entry_drift()
        if not drift and not first:
            self.stdout.write(_("所有积分账户的余额与流水一致。"))
            return
        for account_id, kept, ledger in drift:
            self.stdout.write(
                _("账户 %(account)d：余额 %(kept)d，流水合计 %(ledger)d，相差 %(diff)+d。")
                % {"account": account_id, "kept": kept, "ledger": ledger, "diff": kept - ledger}
            )
        for account_id, kept, ledger in first:
            self.stdout.write(
                _("账户 %(account)d：首笔记录日期记为 %(kept)s，流水中最早为 %(ledger)s。")
                % {"account": account_id, "kept": kept or "—", "ledger": ledger or "—"}
            )
        raise CommandError(_("%(count)d 个积分账户的余额与流水不一致。") % {"count": len(drift) + len(first)})
