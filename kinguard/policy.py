"""Policy: which signals and risk levels lead to which actions. Separate from detection."""

from __future__ import annotations

import fnmatch
import functools
import tomllib
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from kinguard.types import SIGNAL_NAMES, Action, Signal

if TYPE_CHECKING:
    import yaml  # the optional extra: imported only to load a YAML file

__all__ = ["Policy", "PolicyError", "RiskSettings", "Rule", "load_policy"]


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the offending field."""


class Rule(BaseModel):
    """One mapping to an action.

    A rule matches a message when every condition it sets holds: ``signal`` (a name or a glob
    such as ``collusion.*``) with at least ``min_score``, and/or the sender pair's risk at least
    ``risk``, and, with ``between``, whether the message stays within one principal's agents.
    A rule with neither ``signal`` nor ``risk`` is rejected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    signal: str | None = None
    # Strict: a number must be a number (``min_score = true`` or ``"0.5"`` is a mistake).
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, strict=True)
    risk: float | None = Field(default=None, ge=0.0, le=1.0, strict=True)
    between: Literal["any", "rivals", "teammates"] = Field(
        default="any",
        description="Whom the rule applies to: 'teammates' when the sender and every recipient "
        "serve one principal (`AgentProfile.principal`, set and equal), 'rivals' otherwise, "
        "'any' either way.",
    )

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str | None) -> str | None:
        # Case-sensitive as matching is (``fnmatch.filter`` ignores case on Windows: a rule
        # for "Collusion.Market" would load there and never match).
        if value is not None and not any(fnmatch.fnmatchcase(n, value) for n in SIGNAL_NAMES):
            raise ValueError(
                f"{value!r} matches no signal; known signals: {', '.join(SIGNAL_NAMES)}"
            )
        return value

    @model_serializer(mode="wrap")
    def _without_unused_min_score(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A rule without a signal has no use for min_score and refuses one when loaded: left
        # out, every dumped policy (the default one included) loads back as it was.
        data = handler(self)
        if self.signal is None and isinstance(data, dict):
            data.pop("min_score", None)
        return data

    @model_validator(mode="after")
    def _has_condition(self) -> Self:
        if self.signal is None and self.risk is None:
            raise ValueError("a rule needs 'signal' or 'risk' (or both)")
        if self.signal is None and "min_score" in self.model_fields_set:
            # Silently ignoring it would turn "score >= 0.9 and risk >= 0.5" into "risk >= 0.5".
            raise ValueError("'min_score' applies to a signal; this rule names no 'signal'")
        return self

    def matching_signals(self, signals: Iterable[Signal]) -> list[Signal]:
        if self.signal is None:
            return []
        return [
            s
            for s in signals
            if s.score >= self.min_score and fnmatch.fnmatchcase(s.name, self.signal)
        ]


class RiskSettings(BaseModel):
    """How per-pair and per-conversation risk accumulate and decay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_turns: float = Field(default=6.0, gt=0.0, allow_inf_nan=False, strict=True)
    hysteresis: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        strict=True,
        description="A risk band is left only when risk falls this far below its threshold (at "
        "most half the threshold, so every band can be left), so one borderline message does "
        "not make alerts flap.",
    )
    same_principal_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        strict=True,
        description="How much collusion.coordination, collusion.market and "
        "collusion.superrational count toward risk in a message between agents that serve the "
        "same principal (the sender's and every recipient's `principal`, both set and equal): "
        "arranging to act together is such a team's job, not collusion against anyone. 1.0 "
        "counts them as between rivals. Every other signal (hiding things from the principal, "
        "'we AIs', role refusal, covert channels) counts in full whoever the agents serve.",
    )


def _default_rules() -> list[Rule]:
    return [
        Rule(signal="*", min_score=0.3, action=Action.LOG),
        Rule(risk=0.35, action=Action.ALERT),
        Rule(risk=0.6, action=Action.NUDGE),
        Rule(signal="collusion.covert_channel", min_score=0.6, action=Action.REDACT),
    ]


class Policy(BaseModel):
    """Maps signals and risk to actions; decides what happens when inspection fails.

    ``on_error`` defaults to ``closed`` when any rule can block or halt (a guard that lets
    messages through when it breaks defeats its purpose) and ``open`` otherwise. Either way a
    failure is alerted, never silent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = Field(default_factory=lambda: tuple(_default_rules()))
    on_error: Literal["open", "closed"] | None = None
    # At most ten minutes: beyond Python's threading limits a wait raises instead of waiting.
    inspect_timeout_ms: float = Field(default=250.0, gt=0.0, le=600_000.0, strict=True)
    sink_timeout_ms: float = Field(default=1000.0, gt=0.0, le=600_000.0, strict=True)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    max_chars: int = Field(default=20_000, ge=256, strict=True)
    capture_content: bool | None = Field(default=None, strict=True)
    max_conversations: int = Field(
        default=10_000,
        ge=1,
        strict=True,
        description="Conversations whose state (risk, remembered texts, pending reminders) a "
        "guard keeps in memory. Past it the least recently active one is forgotten: its risk "
        "starts again from zero unless the framework's persistence restores it (a LangGraph "
        "checkpointer, AutoGen save_state), and a warning says so when it carried any.",
    )

    @property
    def error_mode(self) -> Literal["open", "closed"]:
        if self.on_error is not None:
            return self.on_error
        strict = any(rule.action in (Action.BLOCK, Action.HALT) for rule in self.rules)
        return "closed" if strict else "open"

    @property
    def risk_thresholds(self) -> tuple[float, ...]:
        """Distinct risk thresholds in increasing order: the band edges for hysteresis."""
        return tuple(sorted({rule.risk for rule in self.rules if rule.risk is not None}))

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Load a policy file (the TOML form of these fields); :class:`PolicyError` names
        what is wrong with it. ``kinguard check-policy FILE`` does the same from a shell."""
        path = Path(path)
        try:
            data = tomllib.loads(_read(path))
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {str(path)!r} is not valid TOML: {exc}") from exc
        except RecursionError as exc:  # the parser recurses into each nested array
            raise PolicyError(f"policy file {str(path)!r}: {_TOO_DEEP}") from exc
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Policy:
        """Load a YAML policy file: the same fields as the TOML form. Needs PyYAML
        (``pip install 'kinguard[yaml]'``); kinguard itself does not depend on it."""
        path = Path(path)
        try:
            import yaml
        except ImportError as exc:
            raise PolicyError(
                f"policy file {str(path)!r} is YAML, which needs PyYAML: "
                "pip install 'kinguard[yaml]' (or write it as TOML)"
            ) from exc
        text = _read(path)
        try:
            # A SafeLoader: a policy file must not be able to build arbitrary Python objects.
            data = yaml.load(text, Loader=_unique_keys_loader())
        except yaml.YAMLError as exc:
            raise PolicyError(f"policy file {str(path)!r} is not valid YAML: {exc}") from exc
        except RecursionError as exc:  # the composer recurses into each nested collection
            raise PolicyError(f"policy file {str(path)!r}: {_TOO_DEEP}") from exc
        if data is None:
            data = {}  # an empty file, as an empty TOML file: the default policy
        if not isinstance(data, Mapping):
            raise PolicyError(
                f"policy file {str(path)!r}: must be a mapping of fields at the top, "
                f"not a {type(data).__name__}"
            )
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """A policy file by its suffix: ``.yaml``/``.yml`` as YAML, anything else as TOML."""
        if Path(path).suffix.lower() in _YAML_SUFFIXES:
            return cls.from_yaml(path)
        return cls.from_toml(path)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        """A policy from a parsed mapping (TOML, JSON, a dict); ``source`` names it in errors."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(_problem(error) for error in exc.errors())
            raise PolicyError(f"invalid kinguard {source}: {problems}") from exc


_YAML_SUFFIXES = (".yaml", ".yml")
_TOO_DEEP = "nested too deeply to read (no policy field nests more than a few levels)"


@functools.cache
def _unique_keys_loader() -> type[yaml.SafeLoader]:
    """PyYAML's safe loader, refusing a key given twice in one mapping, as TOML does. PyYAML
    keeps the last silently: a second ``rules:`` (as TOML repeats ``[[rules]]``) dropped every
    rule of the first, and a second ``on_error:`` overrode the first, both accepted."""
    import yaml

    class UniqueKeysLoader(yaml.SafeLoader):
        def construct_mapping(
            self, node: yaml.MappingNode, deep: bool = False
        ) -> dict[Hashable, Any]:
            seen: set[Hashable] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults" is overridden by the keys beside it, by design
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, Hashable):
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"found duplicate key {key!r}",
                            key_node.start_mark,
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeysLoader


def _read(path: Path) -> str:
    """A policy file's text; :class:`PolicyError` says why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {str(path)!r} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {str(path)!r} is not UTF-8 text: {exc}") from exc
    except OSError as exc:  # a directory, no permission, a broken mount
        raise PolicyError(
            f"policy file {str(path)!r} cannot be read: {exc.strerror or exc}"
        ) from exc


def _problem(error: ErrorDetails) -> str:
    """One validation error as a user fixing a TOML file needs it: where, and what to write."""
    loc = error["loc"]
    where = ".".join(str(part) for part in loc) or "(root)"
    if error["type"] == "extra_forbidden":
        # A misspelt key: pydantic's "Extra inputs are not permitted" does not say the right one.
        section = _SECTIONS.get(tuple(part for part in loc[:-1] if isinstance(part, str)))
        if section is not None:
            return f"{where}: unknown field; known fields: {', '.join(section.model_fields)}"
    if loc == ("rules",) and error["type"] == "tuple_type":
        # TOML's [rules] is one table; only [[rules]] makes the list of rules.
        return "rules: must be a list of rules (in TOML, write each rule under [[rules]])"
    return f"{where}: {error['msg']}"


_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Policy,
    ("rules",): Rule,
    ("risk",): RiskSettings,
}


def load_policy(policy: Policy | str | Path | Mapping[str, Any] | None) -> Policy:
    """Accept every form the public API allows and return a validated Policy."""
    if policy is None:
        return Policy()
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return Policy.from_mapping(policy)
    if not isinstance(policy, (str, Path)):
        raise PolicyError(
            f"policy: {type(policy).__name__} is not a Policy, a mapping or a policy file path"
        )
    return Policy.from_file(policy)
