"""kinguard: keep LLM agents loyal to their own principals, not to each other.

Identity injection, in-group and collusion monitoring weighted by model kinship,
OpenTelemetry tracing, and interventions, for any multi-agent framework.
"""

from kinguard.alerts import AlertSink, CallbackSink, JsonlSink, SkipRepeats
from kinguard.guard import KinGuard
from kinguard.identity import IdentityPolicy
from kinguard.kinship import Lineage, kinship, lineage
from kinguard.policy import Policy, PolicyError, RiskSettings, Rule
from kinguard.types import (
    SIGNAL_NAMES,
    Action,
    AgentProfile,
    Alert,
    Evidence,
    HumanDecision,
    KinshipLevel,
    Message,
    Signal,
    SignalName,
    Verdict,
)
from kinguard.webhook import WebhookSink

__version__ = "0.1.0"

__all__ = [
    "SIGNAL_NAMES",
    "Action",
    "AgentProfile",
    "Alert",
    "AlertSink",
    "CallbackSink",
    "Evidence",
    "HumanDecision",
    "IdentityPolicy",
    "JsonlSink",
    "KinGuard",
    "KinshipLevel",
    "Lineage",
    "Message",
    "Policy",
    "PolicyError",
    "RiskSettings",
    "Rule",
    "Signal",
    "SignalName",
    "SkipRepeats",
    "Verdict",
    "WebhookSink",
    "__version__",
    "kinship",
    "lineage",
]
