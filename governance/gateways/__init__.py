"""Adapters that deliver a config revision to one gateway node, one module per kind."""

from __future__ import annotations

from governance.gateways.base import Adapter, ApplyResult, Observation, Revision
from governance.models import GatewayNode, GatewayNodeKind


def adapter_for(node: GatewayNode, *, timeout: float) -> Adapter:
    from governance.gateways.bifrost import BifrostAdapter
    from governance.gateways.generic import GenericAdapter
    from governance.gateways.litellm import LiteLLMAdapter

    kinds: dict[str, type[Adapter]] = {
        GatewayNodeKind.GENERIC: GenericAdapter,
        GatewayNodeKind.BIFROST: BifrostAdapter,
        GatewayNodeKind.LITELLM: LiteLLMAdapter,
    }
    return kinds[node.kind](node, timeout=timeout)


__all__ = ["Adapter", "ApplyResult", "Observation", "Revision", "adapter_for"]
