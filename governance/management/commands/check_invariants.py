"""`python manage.py check_invariants`: after a restore (or whenever in doubt), check the ledger's and the
workflow logs' invariants (governance/invariants.py). Exits 1 and names the offending rows if any fails."""

from django.core.management.base import BaseCommand, CommandError

from governance import invariants


class Command(BaseCommand):
    help = "Check the points ledger's and the case and letter logs' invariants; exit 1 if any fails."

    def handle(self, *args, **options):
        findings = invariants.run()
        for finding in findings:
            if finding.ok:
                self.stdout.write(f"ok    {finding.check}: {finding.description}")
            else:
                more = "…" if len(finding.ids) > invariants.SAMPLE else ""
                ids = ", ".join(str(i) for i in finding.ids[: invariants.SAMPLE]) + more
                self.stdout.write(f"FAIL  {finding.check}: {finding.description} — ids {ids}")
        failed = [f.check for f in findings if not f.ok]
        if failed:
            raise CommandError(f"{len(failed)} invariant(s) failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS(f"all {len(findings)} invariants hold"))
