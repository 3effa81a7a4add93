from governance.models.access import SCOPED_ROLES, ApiToken, Invitation, Role, RoleGrant
from governance.models.alerts import (
    Alert,
    AlertChannel,
    AlertChannelKind,
    AlertDelivery,
    AlertDeliveryAttempt,
    AlertKind,
    DeliveryState,
)
from governance.models.audit import AuditEntry, AuditVia
from governance.models.budgets import Budget, BudgetPeriod, BudgetPeriodKind, BudgetScope
from governance.models.config import ConfigPushAttempt, ConfigRenderMark, ConfigRevision
from governance.models.nodes import GatewayNode, GatewayNodeKind
from governance.models.organization import Customer, Team
from governance.models.virtual_keys import VirtualKey, VirtualKeyStatus

__all__ = [
    "SCOPED_ROLES",
    "Alert",
    "AlertChannel",
    "AlertChannelKind",
    "AlertDelivery",
    "AlertDeliveryAttempt",
    "AlertKind",
    "ApiToken",
    "AuditEntry",
    "AuditVia",
    "Budget",
    "BudgetPeriod",
    "BudgetPeriodKind",
    "BudgetScope",
    "ConfigPushAttempt",
    "ConfigRenderMark",
    "ConfigRevision",
    "Customer",
    "DeliveryState",
    "GatewayNode",
    "GatewayNodeKind",
    "Invitation",
    "Role",
    "RoleGrant",
    "Team",
    "VirtualKey",
    "VirtualKeyStatus",
]
