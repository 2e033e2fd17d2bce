"""Interaction modules, one interface (``base.Interaction``), chosen by ``model.interaction``."""
from mtlsi_core.models.interaction import deformable, mhsa, mqlfb, window_xtask  # noqa: F401  (registration)
from mtlsi_core.models.interaction.base import INTERACTION_MODULES, Interaction, build_interaction

__all__ = ["INTERACTION_MODULES", "Interaction", "build_interaction"]
