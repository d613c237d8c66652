from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from mailbox.services import letter_sweep


class Command(BaseCommand):
    help = _("来信催办：受理、答复时限前提醒，超期标记并告知书记，关闭超期未评价的来信（可重复运行，不会重复提醒）。")

    def handle(self, *args, **options):
        done = letter_sweep()
        self.stdout.write(
            _(
                "受理催办 %(accept_reminded)d 封，受理超期 %(accept_overdue)d 封，答复催办 %(reply_reminded)d 封，"
                "答复超期 %(reply_overdue)d 封，转办事件已办结待答复 %(case_done)d 封，超期未评价办结 %(auto_closed)d 封。"
            )
            % done
        )
