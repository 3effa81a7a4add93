from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.audit_chain import verify_audit_chain


class Command(BaseCommand):
    help = "Check the audit log's hash chain and report the first broken entry."

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_audit_chain()
        if result.first_broken_id is not None:
            raise CommandError(
                f"audit chain broken at entry {result.first_broken_id} ({result.reason}); "
                f"{result.checked} entries checked"
            )
        self.stdout.write(f"audit chain intact: {result.checked} entries")
