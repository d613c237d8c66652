from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from grids.services import case_sweep


class Command(BaseCommand):
    help = _("标记超时事件、发送催办提醒、关闭超期未评价的事件（可重复运行，不会重复提醒）。")

    def handle(self, *args, **options):
        done = case_sweep()
        self.stdout.write(
            _(
                "签收催办 %(sign_reminded)d 件，签收超时 %(sign_overdue)d 件，办理催办 %(handle_reminded)d 件，"
                "办理超期 %(handle_overdue)d 件，超期未评价结案 %(auto_closed)d 件。"
            )
            % done
        )
