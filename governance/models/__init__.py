from governance.models.access import ApiToken, Role, RoleGrant
from governance.models.audit import AuditEntry
from governance.models.budgets import Budget, BudgetPeriodKind, BudgetScope
from governance.models.organization import Customer, Team
from governance.models.virtual_keys import VirtualKey, VirtualKeyStatus

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Budget",
    "BudgetPeriodKind",
    "BudgetScope",
    "Customer",
    "Role",
    "RoleGrant",
    "Team",
    "VirtualKey",
    "VirtualKeyStatus",
]
