from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from governance.errors import DomainError
from grids.stats import parse_month
from points import tally


class Command(BaseCommand):
    help = _("统计某月的居民积分（默认上个月）：获得、扣除、兑换、净得、月末余额及网格、社区排名；可重复运行。")

    def add_arguments(self, parser):
        parser.add_argument("--month", help=_("统计的月份，格式 YYYY-MM；默认上个月。"))
        parser.add_argument("--publish", action="store_true", help=_("统计后公示各网格、社区的积分榜。"))

    def handle(self, *args, month=None, publish=False, **options):
        try:
            day = parse_month(month) if month else tally.previous_month()
            run = tally.tally_month(month=day)
            boards = tally.boards_publish_all(month=day) if publish else None
        except DomainError as error:
            raise CommandError(str(error.message)) from None
        self.stdout.write(
            _("%(month)s 月度积分统计完成：%(rows)d 行，用时 %(ms)d 毫秒。")
            % {"month": f"{day:%Y-%m}", "rows": run.rows, "ms": run.duration_ms}
        )
        if boards is not None:
            self.stdout.write(_("新公示积分榜 %(boards)d 张。") % {"boards": boards})
