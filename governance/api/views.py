"""REST endpoints for governance: validate → call a service or selector → serialize."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from bursar.api import CSVRenderer
from bursar.errors import InvalidInput, NotFound
from governance import permissions, selectors
from governance.actors import Actor, actor_from_request
from governance.api import serializers as s
from governance.api.authentication import GatewayNodeAuthentication
from governance.api.permissions import IsGatewayNode, RoleRule, request_access
from governance.api.renderers import ScopedBrowsableAPIRenderer
from governance.models import (
    Alert,
    AlertChannel,
    ApiToken,
    AuditEntry,
    Budget,
    Customer,
    GatewayNode,
    Invitation,
    Team,
    VirtualKey,
    VirtualKeyStatus,
)
from governance.services import alerts, api_tokens, budgets, config, nodes, organization, users, virtual_keys


class ServiceViewSet(viewsets.GenericViewSet[Any]):
    """Lists and reads through a selector; every write goes to a service.

    Subclasses name their selector, serializers and the service calls.
    """

    permission_classes = [RoleRule]
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    read_serializer: type[BaseSerializer[Any]]
    write_serializer: type[BaseSerializer[Any]]
    read_rule = staticmethod(permissions.can_view_organization)
    write_rule = staticmethod(permissions.can_manage_governance)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action in ("create", "partial_update"):
            return self.write_serializer
        return self.read_serializer

    def actor(self) -> Actor:
        return actor_from_request(self.request, via="api")

    @property
    def access(self) -> permissions.Access:
        return request_access(self.request)

    def validated(self, *, partial: bool = False) -> BaseSerializer[Any]:
        serializer = self.write_serializer(data=self.request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer

    def respond(
        self, instance: Any, *, code: int = status.HTTP_200_OK, serializer: type[BaseSerializer[Any]] | None = None
    ) -> Response:
        return Response((serializer or self.read_serializer)(instance).data, status=code)


class CustomerFilter(django_filters.FilterSet):
    class Meta:
        model = Customer
        fields = ["external_id", "currency"]


@extend_schema_view(
    create=extend_schema(request=s.CustomerWriteSerializer, responses={201: s.CustomerSerializer}),
    partial_update=extend_schema(request=s.CustomerWriteSerializer, responses=s.CustomerSerializer),
)
class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.CustomerSerializer
    write_serializer = s.CustomerWriteSerializer
    filterset_class = CustomerFilter
    search_fields = ["external_id", "name"]
    ordering_fields = ["name", "external_id", "created_at"]

    def get_queryset(self) -> QuerySet[Customer]:
        return selectors.list_customers(self.access.spend)

    def create(self, request: Request) -> Response:
        customer = organization.create_customer(actor=self.actor(), **self.validated().validated_data)
        return self.respond(customer, code=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        changes = self.validated(partial=True).validated_data
        customer = organization.update_customer(actor=self.actor(), customer=self.get_object(), changes=changes)
        return self.respond(customer)

    def destroy(self, request: Request, pk: str) -> Response:
        organization.delete_customer(actor=self.actor(), customer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(field_name="customer_id")

    class Meta:
        model = Team
        fields = ["slug"]


@extend_schema_view(
    create=extend_schema(request=s.TeamWriteSerializer, responses={201: s.TeamSerializer}),
    partial_update=extend_schema(request=s.TeamWriteSerializer, responses=s.TeamSerializer),
)
class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.TeamSerializer
    write_serializer = s.TeamWriteSerializer
    filterset_class = TeamFilter
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name", "created_at"]

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.list_teams(self.access.spend)

    def create(self, request: Request) -> Response:
        team = organization.create_team(actor=self.actor(), **self.validated().validated_data)
        return self.respond(team, code=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        changes = self.validated(partial=True).validated_data
        return self.respond(organization.update_team(actor=self.actor(), team=self.get_object(), changes=changes))

    def destroy(self, request: Request, pk: str) -> Response:
        organization.delete_team(actor=self.actor(), team=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# Related ids filter as plain numbers: a choice filter would answer 400 for an id that does
# not exist and 200 for one outside the caller's scope, telling the two apart.
class VirtualKeyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=VirtualKeyStatus.choices, method="filter_status")
    team = django_filters.NumberFilter(field_name="team_id")
    customer = django_filters.NumberFilter(field_name="customer_id")

    class Meta:
        model = VirtualKey
        fields = ["public_id"]

    def filter_status(self, queryset: QuerySet[VirtualKey], name: str, value: str) -> QuerySet[VirtualKey]:
        """By the status a client reads: a key past its expiry is expired before the sweep."""
        return selectors.filter_virtual_keys_by_status(queryset, status=value, now=timezone.now())


@extend_schema_view(
    create=extend_schema(request=s.VirtualKeyWriteSerializer, responses={201: s.IssuedVirtualKeySerializer}),
    partial_update=extend_schema(request=s.VirtualKeyWriteSerializer, responses=s.VirtualKeySerializer),
    rotate=extend_schema(request=s.RotateSerializer, responses=s.IssuedVirtualKeySerializer),
    revoke=extend_schema(request=None, responses=s.VirtualKeySerializer),
)
class VirtualKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.VirtualKeySerializer
    write_serializer = s.VirtualKeyWriteSerializer
    read_rule = staticmethod(permissions.can_view_virtual_keys)
    write_rule = staticmethod(permissions.can_manage_virtual_keys)
    filterset_class = VirtualKeyFilter
    search_fields = ["name", "public_id", "secret_prefix"]
    ordering_fields = ["name", "created_at", "expires_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[VirtualKey]:
        return selectors.list_virtual_keys(self.access.keys)

    def managed_key(self) -> VirtualKey:
        """The key named in the URL, if this caller may change it (404 if it cannot see it)."""
        key: VirtualKey = self.get_object()
        if not permissions.can_manage_key(self.access, key):
            raise PermissionDenied("you can change keys only in teams you lead")
        return key

    def check_owner(self, *, team: Team | None, customer: Customer | None) -> None:
        refusal = permissions.key_owner_refusal(self.access, team=team, customer_id=customer.pk if customer else None)
        if refusal:
            raise PermissionDenied(refusal)

    def create(self, request: Request) -> Response:
        serializer = self.validated()
        assert isinstance(serializer, s.VirtualKeyWriteSerializer)
        fields = serializer.to_service_kwargs()
        self.check_owner(team=fields.get("team"), customer=fields.get("customer"))
        issued = virtual_keys.issue_virtual_key(actor=self.actor(), now=timezone.now(), **fields)
        return self._respond_issued(issued, code=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = self.validated(partial=True)
        assert isinstance(serializer, s.VirtualKeyWriteSerializer)
        key, changes = self.managed_key(), serializer.to_service_kwargs()
        if "team" in changes or "customer" in changes:
            self.check_owner(team=changes.get("team", key.team), customer=changes.get("customer", key.customer))
        key = virtual_keys.update_virtual_key(actor=self.actor(), key=key, changes=changes, now=timezone.now())
        return self.respond(key)

    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str) -> Response:
        body = s.RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grace = timedelta(seconds=body.validated_data["grace_seconds"])
        issued = virtual_keys.rotate_virtual_key(
            actor=self.actor(), key=self.managed_key(), grace=grace, now=timezone.now()
        )
        return self._respond_issued(issued)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        return self.respond(
            virtual_keys.revoke_virtual_key(actor=self.actor(), key=self.managed_key(), now=timezone.now())
        )

    def _respond_issued(self, issued: virtual_keys.IssuedSecret, *, code: int = status.HTTP_200_OK) -> Response:
        data = dict(s.VirtualKeySerializer(issued.key).data)
        data["secret"] = issued.secret
        return Response(data, status=code)


class BudgetFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(field_name="customer_id")
    team = django_filters.NumberFilter(field_name="team_id")
    virtual_key = django_filters.NumberFilter(field_name="virtual_key_id")

    class Meta:
        model = Budget
        fields = ["scope_type", "period", "currency", "hard_cap"]


@extend_schema_view(
    create=extend_schema(request=s.BudgetWriteSerializer, responses={201: s.BudgetSerializer}),
    partial_update=extend_schema(request=s.BudgetWriteSerializer, responses=s.BudgetSerializer),
    override=extend_schema(
        methods=["POST"],
        request=s.BudgetOverrideSerializer,
        responses=s.BudgetSerializer,
        description="Let the scope spend `extra_amount` more until `expires_at` (audited; replaces an earlier one).",
    ),
    periods=extend_schema(responses=s.BudgetPeriodSerializer(many=True)),
)
class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.BudgetSerializer
    write_serializer = s.BudgetWriteSerializer
    filterset_class = BudgetFilter
    ordering_fields = ["amount", "created_at"]

    def get_queryset(self) -> QuerySet[Budget]:
        return selectors.list_budgets(self.access.spend)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # the default pagination class is always set
        now = timezone.now()
        statuses = selectors.budget_statuses(page, now=now)
        data = s.BudgetSerializer(page, many=True, context={"statuses": statuses, "now": now}).data
        return self.get_paginated_response(data)

    def create(self, request: Request) -> Response:
        data = self.validated().validated_data
        budget = budgets.create_budget(actor=self.actor(), now=timezone.now(), **data)
        return self.respond(budget, code=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        changes = self.validated(partial=True).validated_data
        budget = budgets.update_budget(
            actor=self.actor(), budget=self.get_object(), changes=changes, now=timezone.now()
        )
        return self.respond(budget)

    def destroy(self, request: Request, pk: str) -> Response:
        budgets.delete_budget(actor=self.actor(), budget=self.get_object(), now=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post", "delete"])
    def override(self, request: Request, pk: str) -> Response:
        budget = self.get_object()
        if request.method == "DELETE":
            return self.respond(budgets.clear_override(actor=self.actor(), budget=budget, now=timezone.now()))
        serializer = s.BudgetOverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = budgets.grant_override(
            actor=self.actor(), budget=budget, now=timezone.now(), **serializer.validated_data
        )
        return self.respond(updated)

    @action(detail=True, methods=["get"])
    def periods(self, request: Request, pk: str) -> Response:
        """Every period with spend, newest first (history is never zeroed)."""
        page = self.paginate_queryset(selectors.list_budget_periods(self.get_object()))
        assert page is not None
        return self.get_paginated_response(s.BudgetPeriodSerializer(page, many=True).data)


class AlertFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="fired_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="fired_at", lookup_expr="lt")
    budget = django_filters.NumberFilter(field_name="budget_id")

    class Meta:
        model = Alert
        fields = ["kind", "threshold"]


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.AlertSerializer
    read_rule = staticmethod(permissions.can_view_alerts)
    filterset_class = AlertFilter
    search_fields = ["message"]
    http_method_names = ["get", "head", "options"]

    def get_queryset(self) -> QuerySet[Alert]:
        return selectors.list_alerts(self.access.spend)


@extend_schema_view(
    create=extend_schema(request=s.AlertChannelWriteSerializer, responses={201: s.CreatedAlertChannelSerializer}),
    partial_update=extend_schema(request=s.AlertChannelUpdateSerializer, responses=s.AlertChannelSerializer),
)
class AlertChannelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.AlertChannelSerializer
    write_serializer = s.AlertChannelWriteSerializer
    read_rule = staticmethod(permissions.can_manage_alert_channels)
    write_rule = staticmethod(permissions.can_manage_alert_channels)
    filterset_fields = ["kind", "scope_type", "enabled"]
    search_fields = ["name", "target"]

    def get_queryset(self) -> QuerySet[AlertChannel]:
        return selectors.list_alert_channels()

    def create(self, request: Request) -> Response:
        created = alerts.create_alert_channel(actor=self.actor(), **self.validated().validated_data)
        data = dict(s.AlertChannelSerializer(created.channel).data)
        data["secret"] = created.secret
        return Response(data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = s.AlertChannelUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fixed = sorted(set(request.data) - set(serializer.fields))
        if fixed:
            raise InvalidInput("only name and enabled can change; create a new channel instead", field=fixed[0])
        channel = alerts.update_alert_channel(
            actor=self.actor(), channel=self.get_object(), changes=dict(serializer.validated_data)
        )
        return self.respond(channel)

    def destroy(self, request: Request, pk: str) -> Response:
        alerts.delete_alert_channel(actor=self.actor(), channel=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(request=s.ApiTokenWriteSerializer, responses={201: s.IssuedApiTokenSerializer}),
    revoke=extend_schema(request=None, responses=s.ApiTokenSerializer),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.ApiTokenSerializer
    write_serializer = s.ApiTokenWriteSerializer
    read_rule = staticmethod(permissions.can_manage_api_tokens)
    write_rule = staticmethod(permissions.can_manage_api_tokens)
    filterset_fields = ["role", "user"]
    search_fields = ["name", "prefix"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.list_api_tokens()

    def create(self, request: Request) -> Response:
        issued = api_tokens.create_api_token(actor=self.actor(), now=timezone.now(), **self.validated().validated_data)
        data = dict(s.ApiTokenSerializer(issued.token).data)
        data["token"] = issued.secret
        return Response(data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        token = api_tokens.revoke_api_token(actor=self.actor(), token=self.get_object(), now=timezone.now())
        return self.respond(token)


@extend_schema_view(
    partial_update=extend_schema(request=s.UserUpdateSerializer, responses=s.UserSerializer),
    grants=extend_schema(
        methods=["POST"],
        request=s.ScopeFields,
        responses=s.UserSerializer,
        description="Give the user a role with this scope, or change the scope of a role it holds (audited).",
    ),
)
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """People who sign in. They arrive through ``invitations/`` (or SSO auto-provisioning)."""

    read_serializer = s.UserSerializer
    write_serializer = s.UserUpdateSerializer
    read_rule = staticmethod(permissions.can_manage_users)
    write_rule = staticmethod(permissions.can_manage_users)
    filterset_fields = ["is_active"]
    search_fields = ["username", "email"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.list_users()

    def partial_update(self, request: Request, pk: str) -> Response:
        active = self.validated().validated_data["is_active"]
        user = self.get_object()
        users.set_user_active(actor=self.actor(), user=user, active=active)
        return self.respond(selectors.list_users().get(pk=user.pk))

    @action(detail=True, methods=["post"])
    def grants(self, request: Request, pk: str) -> Response:
        body = s.ScopeFields(data=request.data)
        body.is_valid(raise_exception=True)
        user = self.get_object()
        users.set_grant(actor=self.actor(), user=user, **body.validated_data)
        return self.respond(selectors.list_users().get(pk=user.pk))

    @extend_schema(request=None, responses=s.UserSerializer)
    @action(detail=True, methods=["delete"], url_path=r"grants/(?P<role>[a-z_]+)")
    def revoke_grant(self, request: Request, pk: str, role: str) -> Response:
        user = self.get_object()
        grant = user.role_grants.filter(role=role).first()
        if grant is None:
            raise NotFound(f"{user.get_username()} does not hold the {role} role", field="role")
        users.revoke_role(actor=self.actor(), grant=grant)
        return self.respond(selectors.list_users().get(pk=user.pk))


@extend_schema_view(
    create=extend_schema(request=s.InvitationWriteSerializer, responses={201: s.InvitationSerializer}),
    revoke=extend_schema(request=None, responses=s.InvitationSerializer),
)
class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Invite an email to hold a role; the response carries ``accept_url`` this once (it is
    also emailed). The invited person sets a password there, or signs in with SSO."""

    read_serializer = s.InvitationSerializer
    write_serializer = s.InvitationWriteSerializer
    read_rule = staticmethod(permissions.can_manage_users)
    write_rule = staticmethod(permissions.can_manage_users)
    filterset_fields = ["email", "role"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self) -> QuerySet[Invitation]:
        return selectors.list_invitations()

    def create(self, request: Request) -> Response:
        data = self.validated().validated_data
        issued = users.invite(actor=self.actor(), now=timezone.now(), base_url=request.build_absolute_uri("/"), **data)
        body = dict(s.InvitationSerializer(issued.invitation).data)
        body["accept_url"] = request.build_absolute_uri(issued.path())
        return Response(body, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        return self.respond(
            users.revoke_invitation(actor=self.actor(), invitation=self.get_object(), now=timezone.now())
        )


class AuditFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "object_type", "object_id", "actor", "via"]


class AuditViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.AuditEntrySerializer
    read_rule = staticmethod(permissions.can_view_audit)
    filterset_class = AuditFilter
    search_fields = ["actor", "action", "object_repr"]
    http_method_names = ["get", "head", "options"]
    renderer_classes = [JSONRenderer, ScopedBrowsableAPIRenderer, CSVRenderer]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """``format=csv`` (or ``Accept: text/csv``): every matching entry, up to 100,000."""
        if request.accepted_renderer.format != "csv":
            return super().list(request, *args, **kwargs)
        entries = self.filter_queryset(self.get_queryset())[:100_000]
        rows = [
            {**row, "object": row["object"]["repr"], "object_type": row["object"]["type"],
             "object_id": row["object"]["id"]}
            for row in s.AuditEntrySerializer(entries, many=True).data
        ]  # fmt: skip
        return Response(rows, headers={"Content-Disposition": 'attachment; filename="audit.csv"'})

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return selectors.list_audit_entries()


@extend_schema_view(
    create=extend_schema(request=s.GatewayNodeWriteSerializer, responses={201: s.GatewayNodeSerializer}),
    partial_update=extend_schema(request=s.GatewayNodeWriteSerializer, responses=s.GatewayNodeSerializer),
)
class GatewayNodeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    read_serializer = s.GatewayNodeSerializer
    write_serializer = s.GatewayNodeWriteSerializer
    read_rule = staticmethod(permissions.can_view_gateway_nodes)
    filterset_fields = ["kind", "name"]
    search_fields = ["name", "base_url"]

    def get_queryset(self) -> QuerySet[GatewayNode]:
        return selectors.list_gateway_nodes()

    def create(self, request: Request) -> Response:
        registered = nodes.register_gateway_node(actor=self.actor(), **self.validated().validated_data)
        data = dict(s.GatewayNodeSerializer(registered.node).data)
        data["ingest_token"] = registered.ingest_token
        return Response(data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        changes = self.validated(partial=True).validated_data
        return self.respond(nodes.update_gateway_node(actor=self.actor(), node=self.get_object(), changes=changes))

    def destroy(self, request: Request, pk: str) -> Response:
        nodes.delete_gateway_node(actor=self.actor(), node=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: s.GatewayNodeSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request: Request, pk: str) -> Response:
        """A new ingest token, shown once; the old one stops working at once."""
        rotated = nodes.rotate_node_token(actor=self.actor(), node=self.get_object())
        data = dict(s.GatewayNodeSerializer(rotated.node).data)
        data["ingest_token"] = rotated.ingest_token
        return Response(data)

    @extend_schema(responses=s.ConfigPushAttemptSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="push-attempts")
    def push_attempts(self, request: Request, pk: str) -> Response:
        """Every delivery to this node (apply, drift repair), newest first."""
        page = self.paginate_queryset(selectors.list_push_attempts(self.get_object()))
        assert page is not None
        return self.get_paginated_response(s.ConfigPushAttemptSerializer(page, many=True).data)


class ConfigLatestView(APIView):
    """The newest config revision: what every gateway node should enforce (admins only:
    the document holds the keys' secret hashes)."""

    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_manage_governance)
    write_rule = staticmethod(permissions.can_manage_governance)

    @extend_schema(responses=s.ConfigRevisionSerializer)
    def get(self, request: Request) -> Response:
        revision = config.latest_revision()
        assert revision is not None
        return Response(s.ConfigRevisionSerializer(revision).data)


class ConfigPushView(APIView):
    """Render the desired state now and push the latest revision to every node."""

    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_manage_governance)
    write_rule = staticmethod(permissions.can_manage_governance)

    @extend_schema(request=None, responses={202: s.ConfigPushQueuedSerializer})
    def post(self, request: Request) -> Response:
        latest = config.push_now(reason=f"manual push by {actor_from_request(request, via='api').label}")
        nodes_count = selectors.list_gateway_nodes().exclude(base_url="").count()
        return Response({"version": latest.version, "nodes": nodes_count}, status=status.HTTP_202_ACCEPTED)


class GatewayConfigView(APIView):
    """Pull mode: a gateway node fetches the latest config with its ``bsn_`` token.
    ``If-None-Match: "<sha256>"`` answers 304 when it already has it."""

    authentication_classes = [GatewayNodeAuthentication]
    permission_classes = [IsGatewayNode]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 304: None})
    def get(self, request: Request) -> HttpResponse:
        assert isinstance(request.auth, GatewayNode)
        revision = config.latest_revision()
        assert revision is not None
        etag = f'"{revision.sha256}"'
        now = timezone.now()
        headers = {"ETag": etag, "X-Bursar-Version": str(revision.version), "Cache-Control": "no-cache"}
        wanted = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
        config.mark_pulled(node=request.auth, version=revision.version, now=now)
        if etag in wanted or f"W/{etag}" in wanted:
            return HttpResponse(status=304, headers=headers)
        body = config.revision_for_delivery(revision).body
        return HttpResponse(body, content_type="application/json", headers=headers)
