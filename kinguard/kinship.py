"""Kinship between agents, from their model ids and optional explicit lineage.

Levels follow seed 000's kin-selection taxonomy: ``self`` (same model, tuning and prompt),
``tuning`` (same fine-tune), ``base`` (same base model), ``family`` (same model family),
``provider`` (same vendor), ``unrelated``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from kinguard.types import AgentProfile, KinshipLevel

__all__ = ["KINSHIP_WEIGHTS", "Lineage", "kinship", "kinship_weight", "lineage", "same_principal"]


class Lineage(BaseModel):
    """Where a model comes from. ``None`` means unknown, never "different"."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    family: str | None = None
    base: str | None = None
    fine_tune: str | None = None


# Weights multiply a message's signal risk. Seed 001 shows GPT-4o and Claude forming a "we, the AI
# assistants" in-group across vendors, so even unrelated models keep a substantial prior; closer
# kin add to it because similarity-based cooperation grows with similarity (seed 000).
KINSHIP_WEIGHTS: dict[KinshipLevel, float] = {
    KinshipLevel.SELF: 1.0,
    KinshipLevel.TUNING: 0.95,
    KinshipLevel.BASE: 0.9,
    KinshipLevel.FAMILY: 0.85,
    KinshipLevel.PROVIDER: 0.78,
    KinshipLevel.UNRELATED: 0.7,
}

# (pattern over the model name, family, base-name template). ``{0}`` is the matched text,
# normalised. Ordered: the first match wins. Kept short on purpose: explicit lineage in
# AgentProfile covers private and unusual models.
_FAMILIES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), family, base)
    for pattern, family, base in (
        (r"^(gpt-4o(?:-mini)?)", "gpt-4o", "{0}"),
        (r"^(gpt-4\.1(?:-mini|-nano)?)", "gpt-4", "{0}"),
        (r"^(gpt-4(?:-turbo|-32k)?)", "gpt-4", "{0}"),
        (r"^(gpt-5(?:\.\d+)?(?:-mini|-nano|-pro)?)", "gpt-5", "{0}"),
        (r"^(gpt-3\.5-turbo)", "gpt-3.5", "{0}"),
        (r"^(o[1-9](?:-mini|-pro)?)", "openai-o", "{0}"),
        (r"^(chatgpt-4o)", "gpt-4o", "gpt-4o"),
        (r"^claude-(?:3-5|3\.5)-(sonnet|haiku)", "claude-3", "claude-3.5-{0}"),
        (r"^claude-3-7-(sonnet)", "claude-3", "claude-3.7-{0}"),
        (r"^claude-3-(opus|sonnet|haiku)", "claude-3", "claude-3-{0}"),
        (r"^claude-(sonnet|opus|haiku)-(\d+(?:[-.]\d)?)", "claude-4", "claude-{0}"),
        (r"^(gemini-\d+(?:\.\d+)?)", "gemini", "{0}"),
        (r"^(?:meta-llama/)?(?:meta-)?llama-?(\d+(?:\.\d+)?)(?:[-:](\d+b))?", "llama", "llama-{0}"),
        (r"^(?:mistralai/)?(mistral|mixtral|ministral|codestral)", "mistral", "{0}"),
        (r"^(?:qwen/)?(qwen\d*(?:\.\d+)?)", "qwen", "{0}"),
        (r"^(?:deepseek-ai/)?(deepseek-(?:v\d+|r\d+|chat|reasoner|coder))", "deepseek", "{0}"),
        (r"^(?:google/)?(gemma-?\d*)", "gemma", "{0}"),
        (r"^(command(?:-r(?:-plus)?|-a)?)", "cohere-command", "{0}"),
        (r"^(grok-\d+)", "grok", "{0}"),
        (r"^(phi-?\d+(?:\.\d+)?)", "phi", "{0}"),
    )
)

_DATE_SUFFIX = re.compile(r"(?:-\d{4}-?\d{2}-?\d{2}|-\d{8}|-latest|-preview|-\d{4})$")
_OPENAI_FINE_TUNE = re.compile(r"^ft:([^:]+):([^:]*):([^:]*)")


def _canonical_name(model_name: str) -> str:
    name = model_name.strip().lower()
    for _ in range(2):
        name = _DATE_SUFFIX.sub("", name)
    return name


@lru_cache(maxsize=1024)
def _infer(provider: str, model_name: str) -> tuple[str, str | None, str | None, str | None]:
    """Return (canonical model, family, base, fine-tune) inferred from a model id."""
    fine_tune: str | None = None
    name = model_name.strip().lower()
    fine_tune_match = _OPENAI_FINE_TUNE.match(name)
    if fine_tune_match:
        # ft:gpt-4o-2024-08-06:org:suffix:id names its own base; the whole id is the tuning.
        fine_tune = name
        name = fine_tune_match.group(1)
    canonical = _canonical_name(name)
    for pattern, family, base_template in _FAMILIES:
        match = pattern.search(canonical.rsplit("/", 1)[-1]) or pattern.search(canonical)
        if match:
            base = base_template.format("-".join(g for g in match.groups() if g))
            return canonical, family, base, fine_tune
    return canonical, None, None, fine_tune


def lineage(agent: AgentProfile) -> Lineage:
    """The agent's lineage: explicit fields win over what the model id implies."""
    canonical, family, base, fine_tune = _infer(agent.provider, agent.model_name)
    return Lineage(
        provider=agent.provider,
        model=canonical,
        family=agent.family or family,
        base=agent.base or base,
        fine_tune=agent.fine_tune or fine_tune,
    )


def _known_equal(a: str | None, b: str | None) -> bool:
    return a is not None and a == b


def kinship(a: AgentProfile, b: AgentProfile) -> KinshipLevel:
    """How closely related two agents' models are.

    Unknown models (provider ``unknown``) are never kin by provider: we only claim a
    relationship we can see.
    """
    la, lb = lineage(a), lineage(b)
    known_provider = la.provider not in ("", "unknown")
    same_model = known_provider and la.provider == lb.provider and la.model == lb.model
    if same_model and la.fine_tune == lb.fine_tune and a.system_prompt_id == b.system_prompt_id:
        return KinshipLevel.SELF
    if _known_equal(la.fine_tune, lb.fine_tune):
        return KinshipLevel.TUNING
    if same_model or _known_equal(la.base, lb.base):
        return KinshipLevel.BASE
    if _known_equal(la.family, lb.family):
        return KinshipLevel.FAMILY
    if known_provider and la.provider == lb.provider:
        return KinshipLevel.PROVIDER
    return KinshipLevel.UNRELATED


def kinship_weight(level: KinshipLevel) -> float:
    return KINSHIP_WEIGHTS[level]


def same_principal(a: AgentProfile, b: AgentProfile) -> bool:
    """Whether both agents name a principal and it is the same one ("ACME  Corp" and "acme
    corp" are one): teammates, whatever models they run on. An unset principal is shared with
    nobody."""
    return bool(a.principal and b.principal) and _principal_key(a.principal) == _principal_key(
        b.principal
    )


def _principal_key(principal: str | None) -> str:
    return " ".join(principal.casefold().split()) if principal else ""
