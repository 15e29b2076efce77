"""The guard's configuration as an AutoGen component (``dump_component``/``load_component``)."""

from __future__ import annotations

from typing import Any, Self

from autogen_core import Component, ComponentBase
from pydantic import BaseModel, Field, model_validator

from kinguard import AgentProfile, KinGuard
from kinguard.detectors import StatisticalDetector, default_detectors

__all__ = ["KinGuardComponent", "KinGuardConfig"]


class KinGuardConfig(BaseModel):
    """Everything needed to rebuild a :class:`~kinguard.KinGuard` except code objects.

    Custom detectors, alert sinks and tracer/meter providers are code, not configuration: a
    guard loaded from this config uses the default detectors (without the statistical tier
    unless ``statistical``) and no sinks. Monitor state is not configuration either; it rides in the
    team's ``save_state()``.
    """

    agents: list[AgentProfile] = Field(default_factory=list)
    identity: str = "none"
    policy: dict[str, Any] = Field(default_factory=dict)
    conversation_id: str | None = None
    identity_seed: str = "0"
    capture_content: bool | None = None
    statistical: bool = True
    """Whether the guard runs the statistical tier with the model shipped with kinguard."""
    statistical_min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """The score from which that tier reports a signal, when not the model's own threshold."""

    @model_validator(mode="after")
    def _score_needs_the_tier(self) -> Self:
        if self.statistical_min_score is not None and not self.statistical:
            raise ValueError("statistical_min_score: set, but statistical is false")
        return self


class KinGuardComponent(ComponentBase[KinGuardConfig], Component[KinGuardConfig]):
    """Wraps a :class:`~kinguard.KinGuard` so AutoGen can serialise its configuration.

    >>> model = KinGuardComponent(guard).dump_component()          # doctest: +SKIP
    >>> guard2 = KinGuardComponent.load_component(model).guard     # doctest: +SKIP
    """

    component_type = "kinguard"
    component_config_schema = KinGuardConfig
    component_provider_override = "kinguard_autogen.KinGuardComponent"
    component_description = "kinguard: identity injection and collusion monitoring for a team."

    def __init__(self, guard: KinGuard) -> None:
        self.guard = guard

    def _to_config(self) -> KinGuardConfig:
        guard = self.guard
        shipped = next(
            (
                detector
                for detector in guard.pipeline.detectors
                if isinstance(detector, StatisticalDetector) and detector.shipped
            ),
            None,
        )
        return KinGuardConfig(
            agents=list(guard.agents),
            identity=guard.identity.value,
            policy=guard.policy.model_dump(mode="json"),
            conversation_id=guard.conversation_id,
            identity_seed=guard.identity_seed,
            capture_content=guard.telemetry.capture_content,
            statistical=shipped is not None,
            statistical_min_score=None if shipped is None else shipped.min_score_override,
        )

    @classmethod
    def _from_config(cls, config: KinGuardConfig) -> Self:
        return cls(
            KinGuard(
                config.agents,
                identity=config.identity,
                policy=config.policy,
                conversation_id=config.conversation_id,
                identity_seed=config.identity_seed,
                capture_content=config.capture_content,
                detectors=default_detectors(
                    statistical=config.statistical,
                    statistical_min_score=config.statistical_min_score,
                ),
            )
        )
