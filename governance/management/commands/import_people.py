"""`python manage.py import_people KIND FILE`: import an .xlsx or .csv of the hierarchy, residents, party
members or grid workers (governance/imports.py). Every bad row is reported and nothing is loaded unless all
rows are good; `--template` writes the kind's template instead."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance import imports


class Command(BaseCommand):
    help = "Import the hierarchy, residents, party members or grid workers from .xlsx or .csv (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=sorted(imports.KINDS))
        parser.add_argument("file")
        parser.add_argument("--template", action="store_true", help="write the kind's template to FILE")

    def handle(self, *args, kind, file, template, **options):
        path = Path(file)
        if template:
            path.write_bytes(imports.template(kind))
            self.stdout.write(f"模板已写入 {path}")
            return
        try:
            report = imports.run_import(kind, path.read_bytes(), path.name)
        except (OSError, imports.FileProblem) as error:
            raise CommandError(str(error)) from None
        if not report.ok:
            for e in report.errors:
                self.stdout.write(f"第 {e.row} 行 [{e.column}]：{e.message}")
            raise CommandError(f"{len(report.errors)} 处错误，未导入任何数据。")
        self.stdout.write(
            self.style.SUCCESS(f"共 {report.rows} 行：新增 {report.created}，已存在 {report.unchanged}。")
        )
