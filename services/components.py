"""The parts of the stack that ``ledger up`` runs beside the NATS server."""

from __future__ import annotations

from services.config import Settings
from services.up import Component

__all__ = ["stack_components"]


def stack_components(settings: Settings) -> list[Component]:
    """The components ``ledger up`` starts, in order, for these settings."""
    from services.intake import intake_component
    from services.projector import projector_component
    from services.query_service import query_component

    components: list[Component] = []
    components.append(intake_component)
    components.append(projector_component)
    components.append(query_component)
    return components
