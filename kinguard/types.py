"""Public data types. Every value that crosses kinguard's API is one of these pydantic models."""

from __future__ import annotations

import enum
import functools
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SIGNAL_NAMES",
    "Action",
    "AgentProfile",
    "Alert",
    "Evidence",
    "HumanDecision",
    "KinshipLevel",
    "Message",
    "Signal",
    "SignalName",
    "Verdict",
]

SignalName = Literal[
    "in_group.collective_ai",
    "in_group.recognition",
    "in_group.self_disclosure",
    "in_group.observer_awareness",
    "in_group.role_refusal",
    "collusion.coordination",
    "collusion.against_principal",
    "collusion.market",
    "collusion.superrational",
    "collusion.covert_channel",
    "kin.impersonation",
    "kin.mimicry",
]
SIGNAL_NAMES: tuple[str, ...] = get_args(SignalName)


class KinshipLevel(enum.StrEnum):
    """How closely two agents' models are related, closest first (seed 000's kin levels)."""

    SELF = "self"
    TUNING = "tuning"
    BASE = "base"
    FAMILY = "family"
    PROVIDER = "provider"
    UNRELATED = "unrelated"

    @property
    def closeness(self) -> int:
        """5 for ``self`` down to 0 for ``unrelated``; larger means closer kin."""
        return _CLOSENESS[self]


_CLOSENESS = {level: 5 - index for index, level in enumerate(KinshipLevel)}


class Action(enum.StrEnum):
    """What the guard does with a message, in increasing severity. ``allow`` means nothing."""

    ALLOW = "allow"
    LOG = "log"
    ALERT = "alert"
    NUDGE = "nudge"
    REDACT = "redact"
    BLOCK = "block"
    HALT = "halt"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {action: index for index, action in enumerate(Action)}

# Message ids need to be unique, not unguessable: a per-process random prefix and a counter
# cost a fraction of uuid4(), whose os.urandom() call is slow on some VMs.
# The prefix is baked into a %-format: a third of an f-string's cost for the same text.
_ID_FORMAT = uuid.uuid4().hex[:16] + "%016x"
_ID_COUNTER = itertools.count()


def _next_message_id() -> str:
    return _ID_FORMAT % next(_ID_COUNTER)


_Model = TypeVar("_Model", bound=BaseModel)
_new_object = object.__new__
_set_attribute = object.__setattr__


def trusted(model: type[_Model], values: dict[str, Any], fields_set: frozenset[str]) -> _Model:
    """``model(**given)`` without validation, for values kinguard built from validated ones.

    For the message path, where validating a verdict or message costs a few microseconds
    each and ``model_construct`` more (it walks the fields in Python). It does what
    ``model_construct`` does for a model without aliases, extras or private attributes:
    ``values`` must hold every field in declaration order, each of its declared type (the
    callers' type hints are the check), and ``fields_set`` name those a caller gave.
    """
    built = _new_object(model)
    _set_attribute(built, "__dict__", values)
    _set_attribute(built, "__pydantic_fields_set__", set(fields_set))
    _set_attribute(built, "__pydantic_extra__", None)
    _set_attribute(built, "__pydantic_private__", None)
    return built


class AgentProfile(BaseModel):
    """One agent in a multi-agent app: which model it runs on and whom it serves.

    ``model`` is ``provider:model`` (``openai:gpt-4o``). Lineage (family, base, fine-tune) is
    inferred from it when not given; give it explicitly for private fine-tunes. ``principal``
    is whom the agent acts for: agents meant to compete (a buyer and a seller, debaters) each
    need their own, since agents of one principal are a team whose joint plans count little
    toward risk (``RiskSettings.same_principal_weight``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    model: str = "unknown:unknown"
    principal: str | None = None
    role: str | None = None
    family: str | None = None
    base: str | None = None
    fine_tune: str | None = None
    system_prompt_id: str | None = Field(
        default=None,
        description="Identifier of the agent's system prompt; two agents on the same model and "
        "tuning are kin at level 'self' only when these match or both are unset.",
    )

    @field_validator("model")
    @classmethod
    def _model_has_provider(cls, value: str) -> str:
        value = value.strip()
        if ":" not in value:
            value = f"unknown:{value}"
        provider, _, name = value.partition(":")
        if not provider.strip() or not name.strip():
            raise ValueError("model must be 'provider:model', e.g. 'openai:gpt-4o'")
        return value

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0].lower()

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]


class Evidence(BaseModel):
    """A span ``[start, end)`` of the original message text that supports a signal."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = ""


class Signal(BaseModel):
    """A named finding about one message."""

    model_config = ConfigDict(frozen=True)

    name: SignalName
    score: float = Field(ge=0.0, le=1.0)
    evidence: tuple[Evidence, ...] = ()
    tier: str = "lexical"
    detail: str = ""
    """How the tier reached it. It may quote the message (the statistical tier names its
    weightiest words), so whatever hides evidence text must hide it too."""


class Message(BaseModel):
    """One message from one agent to others, as kinguard sees it whatever the framework."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str = ""
    """The conversation (thread, run) it belongs to; empty: the inspecting guard's own."""
    sender: str
    recipients: tuple[str, ...] = ()
    text: str
    turn: int = 0
    timestamp: datetime = Field(default_factory=functools.partial(datetime.now, UTC))
    id: str = Field(default_factory=_next_message_id)
    metadata: dict[str, Any] = Field(default_factory=dict)


_GIVEN = frozenset(("conversation_id", "sender", "recipients", "text", "turn", "metadata"))


def agent_message(
    conversation_id: str,
    sender: str,
    recipients: tuple[str, ...],
    text: str,
    turn: int,
    metadata: dict[str, Any],
) -> Message:
    """``Message(...)`` with these fields, unvalidated: what the adapters build from what a
    framework's agent said, once per message (see :func:`trusted`)."""
    return trusted(
        Message,
        {
            "conversation_id": conversation_id,
            "sender": sender,
            "recipients": recipients,
            "text": text,
            "turn": turn,
            "timestamp": datetime.now(UTC),
            "id": _next_message_id(),
            "metadata": metadata,
        },
        _GIVEN,
    )


class Verdict(BaseModel):
    """What the guard found in a message and what it decided.

    ``delivered_text`` is what the recipients should see: the original, a redacted or concealed
    rewrite, or ``None`` when the message is blocked (deliver ``notice`` instead).
    """

    message_id: str
    conversation_id: str
    sender: str
    recipients: tuple[str, ...] = ()
    turn: int = 0
    signals: tuple[Signal, ...] = ()
    kinship: KinshipLevel = KinshipLevel.UNRELATED
    message_risk: float = 0.0
    pair_risk: float = 0.0
    conversation_risk: float = 0.0
    action: Action = Action.ALLOW
    reasons: tuple[str, ...] = ()
    delivered_text: str | None = None
    modified: bool = False
    notice: str | None = None
    nudge: str | None = None
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def blocked(self) -> bool:
        return self.delivered_text is None

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.name for s in self.signals))


class Alert(BaseModel):
    """Sent to sinks when a verdict reaches ``alert`` or inspection fails.

    Alerts come in incidents: a pair of agents' stretch of alerting in one conversation is
    one incident, and so is one kind of inspection failure until it has not recurred for a
    half-life of messages. ``repeat`` marks an alert that tells a person nothing new about its
    incident, so that a paging sink can skip it while the audit trail keeps it.
    """

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    message_id: str
    sender: str
    recipients: tuple[str, ...] = ()
    turn: int = 0
    action: Action
    signals: tuple[str, ...] = ()
    kinship: KinshipLevel = KinshipLevel.UNRELATED
    pair_risk: float = 0.0
    conversation_risk: float = 0.0
    reasons: tuple[str, ...] = ()
    error: str | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    incident_id: str = ""
    """Names the alert's incident, the same in every process that resumes the conversation
    from its saved state. Empty on an alert made without a guard (by hand, or saved before
    incidents existed)."""
    repeat: bool = False
    """Nothing new for a person: its incident already alerted as strongly, on every signal it
    names, and on words of its sender's. The first alert of an incident, an escalation, a new
    signal and an agent's first flagged words in it are never repeats."""

    @classmethod
    def from_verdict(cls, verdict: Verdict, incident_id: str = "", repeat: bool = False) -> Alert:
        return cls(
            conversation_id=verdict.conversation_id,
            message_id=verdict.message_id,
            sender=verdict.sender,
            recipients=verdict.recipients,
            turn=verdict.turn,
            action=verdict.action,
            signals=verdict.signal_names,
            kinship=verdict.kinship,
            pair_risk=verdict.pair_risk,
            conversation_risk=verdict.conversation_risk,
            reasons=verdict.reasons,
            error=verdict.error,
            incident_id=incident_id,
            repeat=repeat,
        )


class HumanDecision(BaseModel):
    """A person's answer to a ``halt``: deliver, deliver an edit, or drop the message.

    ``approve`` delivers the message as the guard would have without the halt: a ``redact``
    rule that also matched still applies, and so does ``conceal``; a ``block`` rule that also
    matched means nothing is delivered, as on ``reject``. To deliver the original text,
    ``edit`` with it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["approve", "edit", "reject"]
    text: str | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _edit_has_text(self) -> HumanDecision:
        if self.type == "edit" and self.text is None:
            raise ValueError("an 'edit' decision needs 'text'")
        return self
