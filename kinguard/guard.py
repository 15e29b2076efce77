"""``KinGuard``: the one object a user builds. Frameworks adapt to it; it imports none of them."""

from __future__ import annotations

import bisect
import enum
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinguard._pipeline import Pipeline, PipelineResult, failure_kind
from kinguard.alerts import AlertDispatcher, AlertSink
from kinguard.detectors import Context, Detector, PairHistory, default_detectors, normalise
from kinguard.identity import IdentityPlanner, IdentityPolicy, conceal_identity_cues
from kinguard.kinship import kinship, kinship_weight, same_principal
from kinguard.logs import describe_error, get_logger, warm_up
from kinguard.monitor import MonitorState, RiskMonitor, message_risk
from kinguard.policy import Policy, PolicyError, Rule, load_policy
from kinguard.telemetry import Telemetry, content_capture_from_env
from kinguard.text import REDACTION
from kinguard.types import (
    Action,
    AgentProfile,
    Alert,
    HumanDecision,
    KinshipLevel,
    Message,
    Signal,
    Verdict,
    trusted,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["KinGuard"]

_log = get_logger("kinguard")
_MAX_ROUTES = 4_096
_MAX_UNDECLARED = 1_024
"""Agents not in ``KinGuard(agents=...)`` that a guard registers when it first sees their
names. An app that names senders from its input (user names, say) could otherwise add one
on every message: each is a recipient of every later broadcast, in every other agent's
identity block and in the caches here, so time and memory would grow with every name."""
_HIDDEN = ""
_VERDICT_FIELDS = frozenset(Verdict.model_fields)
# A set, not a severity comparison: the property is a call on every message.
_BELOW_ALERT = frozenset(a for a in Action if a.severity < Action.ALERT.severity)


class _Unset(enum.Enum):
    UNSET = 0


@dataclass(frozen=True, slots=True)
class _Route:
    sender: AgentProfile
    recipients: tuple[AgentProfile, ...]
    kinship: KinshipLevel


class KinGuard:
    """Identity injection, inspection, risk and interventions for one multi-agent app.

    Thread- and task-safe: one guard serves every agent and conversation of the app.
    ``inspect``/``ainspect`` never raise; when inspection fails the policy's error mode
    decides the message's fate and an alert says so.

    - ``agents``: an :class:`AgentProfile` per agent, named as the framework names it (the
      LangGraph node or ``guard_graph(agents=...)`` name, the AgentChat agent's ``name``). An
      agent not listed is guarded as an unknown model with no principal.
    - ``identity``: an :class:`IdentityPolicy` or its name; ``"none"`` by default.
    - ``policy``: a :class:`Policy`, a mapping of its fields, or a TOML file's path; ``None``
      is the default policy, which never blocks.
    - ``detectors``: the pipeline (default: ``kinguard.detectors.default_detectors()``).
    - ``sinks``: callables given each :class:`Alert` (an action of ``alert`` or stronger, or a
      failed inspection), e.g. :class:`JsonlSink`, :class:`CallbackSink`, :class:`WebhookSink`.
      Each alert names its incident and whether it repeats there: wrap a sink that pages a
      person in :class:`SkipRepeats` to give it only the news (:class:`WebhookSink` skips
      repeats by itself). A sink that raises or overruns ``policy.sink_timeout_ms`` is logged
      and counted, never raised.
    - ``conversation_id``: the conversation a message without one belongs to (default: a new
      random id); adapters use the LangGraph thread id or pass their own.
    - ``identity_seed``: picks the ``disassociate`` codenames; the same seed and agent names
      give the same codenames in every process.
    - ``tracer_provider``, ``meter_provider``: where spans and metrics go (default: the
      global OpenTelemetry providers, a no-op until the app installs an SDK).
    - ``capture_content``: put message text into spans, alerts and logs (default: the
      policy's ``capture_content``, else ``KINGUARD_CAPTURE_CONTENT`` or
      ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` set to ``true``).

    Call :meth:`close` when the app shuts down.
    """

    def __init__(
        self,
        agents: Iterable[AgentProfile] = (),
        *,
        identity: IdentityPolicy | str = IdentityPolicy.NONE,
        policy: Policy | str | Path | Mapping[str, Any] | None = None,
        detectors: Sequence[Detector] | None = None,
        sinks: Sequence[AlertSink] = (),
        conversation_id: str | None = None,
        identity_seed: int | str = 0,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
    ) -> None:
        try:
            self.identity = IdentityPolicy(identity)
        except ValueError:
            raise PolicyError(
                f"identity: {identity!r} is not one of {', '.join(p.value for p in IdentityPolicy)}"
            ) from None
        self.policy = load_policy(policy)
        if isinstance(agents, (AgentProfile, str)):
            # Else iterated: a profile's (field, value) pairs, a name's letters.
            raise PolicyError(
                f"agents: a list of AgentProfile, not one {type(agents).__name__}; "
                "write KinGuard([AgentProfile(...), ...])"
            )
        profiles = list(agents)
        strays = [p for p in profiles if not isinstance(p, AgentProfile)]
        if strays:
            raise PolicyError(
                f"agents: {type(strays[0]).__name__} {strays[0]!r:.60} is not an AgentProfile "
                "(build one: AgentProfile(name=..., model=...))"
            )
        names = [profile.name for profile in profiles]
        if len(set(names)) != len(names):
            raise PolicyError(f"agents: duplicate agent names in {names}")
        self._profiles: dict[str, AgentProfile] = {p.name: p for p in profiles}
        self._agents = tuple(profiles)
        self._declared = len(profiles)
        self._undeclared_warned = False
        self.identity_seed = str(identity_seed)
        self._identity = IdentityPlanner(self.identity, profiles, self.identity_seed)
        self.conversation_id = conversation_id or uuid.uuid4().hex
        self.sinks: list[AlertSink] = list(sinks)
        self._dispatch = AlertDispatcher(timeout_s=self.policy.sink_timeout_ms / 1000.0)
        capture = capture_content
        if capture is None:
            capture = self.policy.capture_content
        if capture is None:
            capture = content_capture_from_env()
        self.pipeline = Pipeline(
            default_detectors() if detectors is None else detectors,
            timeout_s=self.policy.inspect_timeout_ms / 1000.0,
            # A failure's detail reaches spans, alerts and logs: it quotes a detector's
            # exception (which may hold the message's words) only where content may go.
            quote_errors=capture,
        )
        self.monitor = RiskMonitor(
            self.policy.risk, self.policy.risk_thresholds, self.policy.max_conversations
        )
        self._risk_rules = tuple(rule for rule in self.policy.rules if rule.signal is None)
        self._sided = any(rule.between != "any" for rule in self.policy.rules)
        self._calm = self._calm_outcome()
        self.telemetry = Telemetry(tracer_provider, meter_provider, capture)
        warm_up()
        self._lock = threading.Lock()
        # Pending reminders, per conversation then per agent: a nudge earned in one thread
        # must not surface in another thread that shares this guard.
        self._nudges: dict[str, dict[str, str]] = {}
        self._sink_failures = 0
        self._observers: list[Callable[[Verdict], object]] = []
        self._kinship_cache: dict[tuple[str, str], KinshipLevel] = {}
        self._routes: dict[tuple[str, tuple[str, ...]], _Route] = {}
        self._blocks: dict[str, str | None] = {}

    # -- agents and identity -------------------------------------------------------------

    @property
    def agents(self) -> tuple[AgentProfile, ...]:
        # Kept, not built on each read: adapters read it on every turn.
        return self._agents

    def profile(self, name: str) -> AgentProfile:
        """The agent's profile; an agent nobody declared gets an unknown-model profile."""
        found = self._profiles.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._profiles.get(name)
            if found is None:
                found = AgentProfile(name=name)
                if len(self._profiles) - self._declared >= _MAX_UNDECLARED:
                    # Past the cap a name is an unknown model, as a registered one would be,
                    # but nothing here keeps it: no one's default recipient, no one's block.
                    if not self._undeclared_warned:
                        self._undeclared_warned = True
                        _log.warning("kinguard.too_many_agents", registered=len(self._profiles))
                    return found
                # Copy on write: other threads iterate the profiles without taking the lock.
                self._profiles = {**self._profiles, name: found}
                self._agents = (*self._agents, found)
                self._identity.add_agent(found)
                self._blocks = {}  # every block names the other agents
        return found

    def kinship(self, a: str, b: str) -> KinshipLevel:
        # Profiles never change once registered, so a pair's kinship is computed once.
        level = self._kinship_cache.get((a, b))
        if level is None:
            level = kinship(self.profile(a), self.profile(b))
            if len(self._kinship_cache) >= _MAX_ROUTES:
                self._kinship_cache = {}  # thousands of agent names: cheap to work out again
            self._kinship_cache[(a, b)] = level
        return level

    def identity_block(self, agent_name: str) -> str | None:
        """kinguard's identity statement for this agent, or ``None`` under ``none``."""
        # Read on every turn by the adapters, so lock-free once cached: adding an agent swaps
        # in a fresh cache under the lock, and a reader racing that sees the block of just
        # before, as it would have by taking the lock first.
        cached = self._blocks.get(agent_name, _Unset.UNSET)
        if cached is not _Unset.UNSET:
            return cached
        profile = self.profile(agent_name)
        # Under the lock that also guards adding agents, so a block cached here is never one
        # built before an agent it should name was added.
        with self._lock:
            block = self._identity.block(profile)
            if agent_name in self._profiles:  # one past the agent cap is not kept
                self._blocks[agent_name] = block
        return block

    def system_prompt(self, agent_name: str, base: str | None = None) -> str:
        """``base`` with the agent's identity block appended; applying it twice changes nothing."""
        profile = self.profile(agent_name)
        with self._lock:
            return self._identity.apply(profile, base)

    def concealed(self, text: str) -> str:
        """``text`` less its identity cues under the ``conceal`` identity policy, as it is under
        the others. For words an adapter delivers beside a message to other agents (a Swarm
        handoff's context), which the message's verdict does not rewrite."""
        if self.identity is not IdentityPolicy.CONCEAL:
            return text
        return conceal_identity_cues(text, None, self._identity.declared_models)[0]

    def codename(self, agent_name: str) -> str | None:
        self.profile(agent_name)
        return self._identity.codename(agent_name)

    def pop_nudge(self, agent_name: str, conversation_id: str | None = None) -> str | None:
        """The pending reminder for an agent flagged in a conversation, once.

        ``conversation_id`` defaults to the guard's own.
        """
        conversation = conversation_id or self.conversation_id
        # Asked before every turn and almost always empty: the lock only when there is one.
        if not self._nudges.get(conversation):
            return None
        with self._lock:
            pending = self._nudges.get(conversation)
            nudge = pending.pop(agent_name, None) if pending else None
            if not pending:
                # Conversations come and go (threads, team resets): keep none that is empty.
                self._nudges.pop(conversation, None)
            return nudge

    def peek_nudge(self, agent_name: str, conversation_id: str | None = None) -> str | None:
        with self._lock:
            return self._nudges.get(conversation_id or self.conversation_id, {}).get(agent_name)

    def _keep_nudges(self, conversation_id: str, pending: dict[str, str]) -> None:
        """Set a conversation's pending reminders, as its most recent; under the lock.

        Past the policy's cap the conversation flagged longest ago loses its reminders (one
        whose agents never took another turn, as in a service that starts a thread per
        request). Only a reminder is lost: the risk that earned it stays with the monitor.
        """
        self._nudges.pop(conversation_id, None)
        self._nudges[conversation_id] = pending
        if len(self._nudges) > self.policy.max_conversations:
            del self._nudges[next(iter(self._nudges))]

    def add_observer(self, observer: Callable[[Verdict], object]) -> None:
        """Call ``observer`` with every verdict (UIs, tests). A failing observer is contained."""
        with self._lock:
            self._observers = [*self._observers, observer]

    def remove_observer(self, observer: Callable[[Verdict], object]) -> None:
        """Undo one :meth:`add_observer`. Compared by equality, not identity: every
        ``obj.method`` lookup makes a new bound-method object."""
        with self._lock:
            remaining = list(self._observers)
            if observer in remaining:
                remaining.remove(observer)
            self._observers = remaining

    def describe_error(self, error: BaseException) -> str:
        """What a failure's verdict, alert, span or log line may say of its cause.

        An exception raised while handling a message may quote its words (``ValueError(text)``,
        a ``UnicodeEncodeError``, a pydantic error's input): only its type, unless the guard
        may record content.
        """
        return describe_error(error, quote=self.telemetry.capture_content)

    @property
    def sink_failures(self) -> int:
        return self._sink_failures

    # -- inspection -----------------------------------------------------------------------

    def _route(self, key: tuple[str, tuple[str, ...]]) -> _Route:
        """Profiles and closest kinship of a sender and its recipients, worked out once.

        Profiles never change once registered, so a route is valid for the guard's life.
        """
        sender, recipients = key
        closest = max(
            (self.kinship(sender, name) for name in recipients),
            key=lambda level: level.closeness,
            default=KinshipLevel.UNRELATED,
        )
        route = _Route(
            self.profile(sender),
            tuple(self.profile(name) for name in recipients),
            closest,
        )
        if len(self._routes) >= _MAX_ROUTES:
            self._routes = {}
        self._routes[key] = route
        return route

    def inspect(self, message: Message) -> Verdict:
        """Inspect one message before its recipients see it."""
        message = self._owned(message)
        started, span, token = self._begin(message)
        try:
            recipients, context = self._prepare(message)
            result = self.pipeline.run(message, context)
            verdict = self._decide(message, recipients, context, result, started)
        except Exception as exc:  # the guard must never break the host app
            error = f"inspection_error: {self.describe_error(exc)}"
            verdict = self._failed(message, error, started)
        if self._quiet(span, verdict):
            return verdict
        return self._end(span, token, message, verdict)

    async def ainspect(self, message: Message) -> Verdict:
        """Async twin of :meth:`inspect`; slow detectors run off the event loop."""
        message = self._owned(message)
        started, span, token = self._begin(message)
        try:
            recipients, context = self._prepare(message)
            result = await self.pipeline.arun(message, context)
            verdict = self._decide(message, recipients, context, result, started)
        except Exception as exc:
            error = f"inspection_error: {self.describe_error(exc)}"
            verdict = self._failed(message, error, started)
        except BaseException:
            # Cancelled while a detector ran (its run stopped): the span is current in the
            # caller's context, where it stayed, the parent of the caller's next spans, and
            # was never ended, so never exported.
            self.telemetry.abandon(span, token)
            raise
        if self._quiet(span, verdict):
            return verdict
        # :meth:`_end`, with slow sinks awaited, never waited on in the loop; inline, as most
        # messages raise no alert and a coroutine for them would be one more on every message.
        alert = self._report(span, message, verdict)
        if alert is not None:
            try:
                failed = await self._dispatch.adispatch(alert, self.sinks)
            except Exception as exc:
                failed = _dispatch_failed(exc)
            except BaseException:  # cancelled while the sinks ran: as above
                self.telemetry.abandon(span, token)
                raise
            self._add_sink_failures(failed)
        return self._close(span, token, verdict)

    def _owned(self, message: Message) -> Message:
        """A message that names no conversation belongs to the guard's own."""
        if not message.conversation_id:
            return message.model_copy(update={"conversation_id": self.conversation_id})
        return message

    def _begin(self, message: Message) -> tuple[float, Span, object]:
        span, token = self.telemetry.start(message)
        return time.perf_counter(), span, token

    def _prepare(self, message: Message) -> tuple[tuple[str, ...], Context]:
        """The message's recipients and what its detectors get.

        One function, with the route's lookup inline: in a running app each call on the
        message path costs several times what it does in a loop (its code and data are out of
        the CPU's caches after the framework's own work).
        """
        sender = message.sender
        recipients = message.recipients or tuple(n for n in self._profiles if n != sender)
        key = (sender, recipients)
        route = self._routes.get(key) or self._route(key)
        # Positional: keywords to a dataclass go through a dict, which costs more than the
        # objects themselves on every message.
        context = Context(
            route.sender,
            route.recipients,
            route.kinship,
            normalise(message.text, max_chars=self.policy.max_chars),
            PairHistory(*self.monitor.recall(message.conversation_id)),
            [],
        )
        return recipients, context

    def _failed(self, message: Message, error: str, started: float) -> Verdict:
        closed = self.policy.error_mode == "closed"
        delivered: str | None = None
        if not closed:
            # "open" lets the message through uninspected, not past the identity policy:
            # under "conceal" it delivered "As GPT-4o, ..." as written.
            try:
                delivered = self.concealed(message.text)
            except Exception:  # the failure may be concealment's own: open delivers
                delivered = message.text
        return Verdict(
            message_id=message.id,
            conversation_id=message.conversation_id,
            sender=message.sender,
            recipients=message.recipients,
            turn=message.turn,
            action=Action.BLOCK if closed else Action.ALERT,
            reasons=(f"inspection failed; on_error={self.policy.error_mode}",),
            delivered_text=delivered,
            modified=delivered is not None and delivered != message.text,
            notice=self._notice(message.sender, ("inspection failure",)) if closed else None,
            error=error,
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _calm_outcome(self) -> tuple[Action, tuple[str, ...]] | None:
        """The action and reasons for a message with no signals on a pair at zero risk.

        Most messages are such; deciding them once here keeps the rule loop, redaction and
        nudge bookkeeping off their path. ``None`` when they still need the full decision
        (concealment rewrites every delivered message; a nudge is per message).
        """
        if self.identity is IdentityPolicy.CONCEAL:
            return None
        action, reasons, _, _ = self._apply_rules((), 0.0, teammates=False)
        if action.severity >= Action.NUDGE.severity:
            return None
        if self._apply_rules((), 0.0, teammates=True)[:2] != (action, reasons):
            return None  # a rule for one side applies at zero risk: decided per message
        return action, tuple(dict.fromkeys(reasons))

    def _apply_rules(
        self, signals: Sequence[Signal], pair_band_risk: float, teammates: bool
    ) -> tuple[Action, list[str], list[Signal] | None, Action]:
        """The most severe matching rule's action, every match's reason, the signals the
        matching redact rules name (``None``: no redact rule matched; empty: only risk rules
        did, and every signal is redacted), and the most severe action short of a halt."""
        action = unhalted = Action.ALLOW
        reasons: list[str] = []
        redact_signals: list[Signal] | None = None
        # Signal rules cannot match a message without signals: most messages skip them.
        for rule in self.policy.rules if signals else self._risk_rules:
            matched = _rule_matches(rule, signals, pair_band_risk, teammates)
            if matched is None:
                continue
            if rule.action.severity > action.severity:
                action = rule.action
            if rule.action is not Action.HALT and rule.action.severity > unhalted.severity:
                unhalted = rule.action
            reasons.append(_describe(rule))
            if rule.action is Action.REDACT:
                redact_signals = [*(redact_signals or ()), *matched]
        return action, reasons, redact_signals, unhalted

    def _decide(
        self,
        message: Message,
        recipients: tuple[str, ...],
        context: Context,
        result: PipelineResult,
        started: float,
    ) -> Verdict:
        signals = result.signals
        # Whether the message stays within one principal's team: asked only where it can
        # matter (a finding to weigh, a rule for one side), not of most messages.
        teammates = bool(signals or self._sided) and self._teammates(context)
        weight = self.policy.risk.same_principal_weight if teammates else 1.0
        risk = self.monitor.update(
            message.conversation_id,
            message.sender,
            recipients,
            message_risk(signals, kinship_weight(context.kinship), weight) if signals else 0.0,
            context.text.folded,
        )
        delivered: str | None = message.text
        notice: str | None = None
        nudge: str | None = None
        error: str | None = None
        if (
            self._calm is not None
            and not signals
            and risk.pair_band_risk == 0.0
            and not result.failures
            and not context.text.truncated
        ):
            action, reasons = self._calm
        else:
            action, reasons, delivered, notice, nudge, error = self._act(
                message, recipients, context, result, risk.pair_band_risk, teammates
            )
        # Every value is the guard's own, of its field's type: not validated again.
        return trusted(
            Verdict,
            {
                "message_id": message.id,
                "conversation_id": message.conversation_id,
                "sender": message.sender,
                "recipients": recipients,
                "turn": message.turn,
                "signals": tuple(signals),
                "kinship": context.kinship,
                "message_risk": risk.message_risk,
                "pair_risk": risk.pair_risk,
                "conversation_risk": risk.conversation_risk,
                "action": action,
                "reasons": reasons,
                "delivered_text": delivered,
                "modified": delivered != message.text,
                "notice": notice,
                "nudge": nudge,
                "error": error,
                "duration_ms": (time.perf_counter() - started) * 1000.0,
            },
            _VERDICT_FIELDS,
        )

    @staticmethod
    def _teammates(context: Context) -> bool:
        """Whether every recipient serves the sender's principal."""
        sender, recipients = context.sender, context.recipients
        return bool(recipients) and all(same_principal(sender, r) for r in recipients)

    def _act(
        self,
        message: Message,
        recipients: tuple[str, ...],
        context: Context,
        result: PipelineResult,
        pair_band_risk: float,
        teammates: bool,
    ) -> tuple[Action, tuple[str, ...], str | None, str | None, str | None, str | None]:
        """The full decision: action, reasons, delivered text, notice, nudge and error."""
        signals = result.signals
        action, reasons, redact_signals, unhalted = self._apply_rules(
            signals, pair_band_risk, teammates
        )
        if context.text.truncated:
            # Never silent: the tail of an oversized message went unread. An unread tail is an
            # inspection that did not finish, so the error mode decides: under "closed", a
            # padded message must not carry its tail past a rule that would have blocked it.
            closed = self.policy.error_mode == "closed"
            reasons.append(
                f"only the first {self.policy.max_chars} of {len(message.text)} characters "
                f"were inspected; on_error={self.policy.error_mode}"
            )
            floor = Action.BLOCK if closed else Action.ALERT
            action, unhalted = _at_least(floor, action), _at_least(floor, unhalted)
        error = "; ".join(str(failure) for failure in result.failures) or None
        if error is not None:
            reasons.append(f"inspection failed; on_error={self.policy.error_mode}")
            floor = Action.BLOCK if self.policy.error_mode == "closed" else Action.ALERT
            # Beside a halt too: approving delivers nothing that "closed" would have blocked.
            action, unhalted = _at_least(floor, action), _at_least(floor, unhalted)

        delivered: str | None = message.text
        notice: str | None = None
        if action is Action.REDACT:
            delivered = _redact(message.text, redact_signals or signals, context)
        elif action is Action.BLOCK:
            delivered = None
            notice = self._notice(message.sender, tuple(dict.fromkeys(s.name for s in signals)))
        elif action is Action.HALT:
            notice = (
                f"[kinguard halted the conversation for human review of a message from "
                f"{message.sender}]"
            )
            # A halt adds a person's review to the other rules, it does not undo them: what an
            # approval delivers is what they would have (the reviewer still sees the original),
            # and nothing if one of them blocks it (an edit delivers what the person wants).
            if unhalted is Action.REDACT:
                delivered = _redact(message.text, redact_signals or signals, context)
            elif unhalted is Action.BLOCK:
                delivered = None
        if delivered is not None and self.identity is IdentityPolicy.CONCEAL:
            unchanged = delivered is message.text and not context.text.truncated
            delivered, _ = conceal_identity_cues(
                delivered, context.text if unchanged else None, self._identity.declared_models
            )

        nudge: str | None = None
        if action.severity >= Action.NUDGE.severity:
            names = [s.name for s in signals]
            nudge = self._identity.nudge(context.sender, recipients, list(dict.fromkeys(names)))
            with self._lock:
                pending = self._nudges.get(message.conversation_id) or {}
                self._keep_nudges(message.conversation_id, {**pending, message.sender: nudge})
        # The monitor remembers what the others were given: a withheld message they never saw
        # (nor may it persist in the state a checkpointer stores), a rewritten one as rewritten.
        if delivered is None or action is Action.HALT:
            self.monitor.remember(message.conversation_id, message.sender, None)
        elif delivered != message.text:
            folded = normalise(delivered).folded
            self.monitor.remember(message.conversation_id, message.sender, folded)
        return action, tuple(dict.fromkeys(reasons)), delivered, notice, nudge, error

    @staticmethod
    def _notice(sender: str, why: Sequence[str]) -> str:
        return f"[kinguard blocked a message from {sender}: {', '.join(why) or 'policy'}]"

    def _quiet(self, span: Span, verdict: Verdict) -> bool:
        """Whether a verdict needs nothing more: nothing found (a ``log`` finding is logged),
        no observer, and no telemetry to record it in. Most messages of an app without an OTel
        SDK: they skip :meth:`_end`'s half a dozen calls, whose code and data are out of the
        CPU's caches in a running app."""
        return (
            verdict.action is Action.ALLOW
            and verdict.error is None
            and not self._observers
            and self.telemetry.idle(span)
        )

    def _end(self, span: Span, token: object, message: Message, verdict: Verdict) -> Verdict:
        """Telemetry, alerts and observers; contained so a broken exporter or sink cannot escape."""
        alert = self._report(span, message, verdict)
        if alert is not None:
            try:
                failed = self._dispatch(alert, self.sinks)
            except Exception as exc:
                failed = _dispatch_failed(exc)
            self._add_sink_failures(failed)
        return self._close(span, token, verdict)

    def _report(self, span: Span, message: Message, verdict: Verdict) -> Alert | None:
        """Record the verdict in telemetry; return the alert it raises, if any, in its
        incident.

        Telemetry that fails costs its span and metrics, never the alert.
        """
        try:
            self.telemetry.record(span, message, verdict, self.profile(message.sender).model)
        except Exception as exc:
            self.telemetry.failed("record", exc)
        if verdict.action in _BELOW_ALERT and verdict.error is None:
            if verdict.action is Action.LOG:
                # The policy's "keep a record" action: it left none but the span, and no span
                # is kept until the app installs an OTel SDK.
                _log.info(
                    "kinguard.finding",
                    conversation_id=verdict.conversation_id,
                    sender=verdict.sender,
                    recipients=list(verdict.recipients),
                    signals=list(verdict.signal_names),
                    pair_risk=round(verdict.pair_risk, 3),
                    reasons=list(verdict.reasons),
                )
            return None
        alert = Alert.from_verdict(verdict, *self._incident(verdict))
        try:
            self.telemetry.alert(span, alert)
        except Exception as exc:
            self.telemetry.failed("alert", exc)
        return alert

    def _incident(self, verdict: Verdict) -> tuple[str, bool]:
        """The alert's incident and whether it repeats there. Failing, this costs the grouping,
        never the alert: it goes out as news, in no incident."""
        failure: tuple[str, bool] | None = None
        try:
            if verdict.error is not None:
                failure = self.monitor.failure_incident(
                    verdict.conversation_id,
                    failure_kind(verdict.error),
                    verdict.action,
                    verdict.signal_names,
                )
                if not verdict.signals:
                    return failure
            # A finding beside a failure is news in its pair's incident too: a detector down
            # for good kept one failure incident open, which took every later finding of the
            # other detectors, any pair's, for its repeat.
            incident_id, repeat = self.monitor.pair_incident(
                verdict.conversation_id,
                verdict.sender,
                verdict.recipients,
                verdict.action,
                verdict.signal_names,
            )
            return incident_id, repeat and (failure is None or failure[1])
        except Exception as exc:
            _log.error("kinguard.incident_failed", error=self.describe_error(exc))
            return "", False

    def _add_sink_failures(self, failed: int) -> None:
        if failed:
            with self._lock:
                self._sink_failures += failed

    def _close(self, span: Span, token: object, verdict: Verdict) -> Verdict:
        self.telemetry.finish(span, token)
        for observer in self._observers:
            try:
                observer(verdict)
            except Exception as exc:
                _log.error("kinguard.observer_failed", error=self.describe_error(exc))
        return verdict

    # -- human decisions ------------------------------------------------------------------

    def record_decision(self, verdict: Verdict, decision: HumanDecision) -> None:
        """Leave an audit trail of a person's ruling on a halted message (a span, a count and
        a log line); adapters call it once per decision, after it took effect."""
        self.telemetry.decision(verdict, decision)
        _log.info(
            "kinguard.halt_decided",
            conversation_id=verdict.conversation_id,
            sender=verdict.sender,
            message_id=verdict.message_id,
            decision=decision.type,
            reason=decision.reason,
        )

    @staticmethod
    def resolve_halt(verdict: Verdict, decision: HumanDecision) -> str | None:
        """The text to deliver once a person has ruled on a halted message (None: drop it).

        ``approve`` delivers what the guard would have delivered without the halt: redacted
        or concealed as the other rules say, or nothing when one of them blocks the message;
        ``edit`` delivers the person's text as it is.
        """
        if decision.type == "approve":
            return verdict.delivered_text
        if decision.type == "edit":
            return decision.text
        return None

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self, conversation_id: str | None = None) -> dict[str, Any]:
        """JSON-serialisable risk state and pending nudges, for the framework's persistence.

        With ``conversation_id``, only that conversation: what a per-thread checkpoint holds.
        """
        monitor = self.monitor.state(conversation_id)
        with self._lock:
            if conversation_id is None:
                nudges = {conv: dict(pending) for conv, pending in self._nudges.items()}
            else:
                pending = self._nudges.get(conversation_id)
                nudges = {conversation_id: dict(pending)} if pending is not None else {}
        return {"monitor": monitor.model_dump(mode="json"), "nudges": nudges}

    def load_state(self, state: Mapping[str, Any], conversation_id: str | None = None) -> None:
        """Restore :meth:`state_dict` output; scoped to one conversation when one is named."""
        monitor = MonitorState.model_validate(state.get("monitor", {}))
        nudges = {
            str(conv): {str(agent): str(text) for agent, text in dict(pending).items()}
            for conv, pending in dict(state.get("nudges", {})).items()
        }
        self.monitor.load(monitor, conversation_id)
        with self._lock:
            if conversation_id is None:
                self._nudges = {conv: pending for conv, pending in nudges.items() if pending}
            elif nudges.get(conversation_id):
                self._keep_nudges(conversation_id, nudges[conversation_id])
            else:
                self._nudges.pop(conversation_id, None)

    def forget(self, conversation_id: str | None = None) -> None:
        """Drop one conversation's risk, remembered texts and pending nudges: when an app starts
        it afresh (a team's ``reset()``), nothing earned before carries over. ``conversation_id``
        defaults to the guard's own."""
        self.load_state({}, conversation_id or self.conversation_id)

    def close(self) -> None:
        """Stop the worker threads of non-inline detectors and sinks: the app is done with it."""
        self.pipeline.close()
        self._dispatch.close()


def _rule_matches(
    rule: Rule, signals: Sequence[Signal], pair_risk: float, teammates: bool
) -> list[Signal] | None:
    """The signals a rule matched ([] for a pure risk rule), or None if it does not apply."""
    if rule.risk is not None and pair_risk < rule.risk:
        return None
    if rule.between != "any" and (rule.between == "teammates") != teammates:
        return None
    if rule.signal is None:
        return []
    matched = rule.matching_signals(signals)
    return matched or None


def _describe(rule: Rule) -> str:
    parts = []
    if rule.signal is not None:
        parts.append(f"{rule.signal}>={rule.min_score:g}")
    if rule.risk is not None:
        parts.append(f"pair_risk>={rule.risk:g}")
    if rule.between != "any":
        parts.append(f"between {rule.between}")
    return f"{' and '.join(parts)} -> {rule.action.value}"


def _dispatch_failed(exc: Exception) -> int:
    """The dispatcher contains its sinks; this is its own logging failing. Counts as one."""
    _log.error("kinguard.alert_dispatch_failed", error=describe_error(exc, quote=True))
    return 1


def _within(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies inside one of the sorted, disjoint ``spans``."""
    at = bisect.bisect_right(spans, (start, sys.maxsize)) - 1
    return at >= 0 and end <= spans[at][1]


def _redact(text: str, signals: Sequence[Signal], context: Context) -> str:
    """Replace every evidence span with a visible marker and drop hidden characters.

    A signal with no evidence span is about the message as a whole, which is then its
    evidence: redaction must never deliver a flagged message unchanged.
    """
    hidden = context.text.hidden_spans
    spans: list[tuple[int, int, str]] = []
    for signal in signals:
        located = [(e.start, e.end) for e in signal.evidence if e.end > e.start]
        for start, end in located or [(0, len(text))]:
            # Invisible characters are simply dropped: a marker per zero-width run is noise.
            spans.append((start, end, _HIDDEN if _within(hidden, start, end) else signal.name))
    spans.extend((start, end, _HIDDEN) for start, end in hidden)
    if not spans:
        return text
    spans.sort()
    merged: list[tuple[int, int, list[str]]] = []
    for start, end, name in spans:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), [*last[2], name])
        else:
            merged.append((start, end, [name]))
    out: list[str] = []
    cursor = 0
    for start, end, names in merged:
        out.append(text[cursor:start])
        visible = [name for name in dict.fromkeys(names) if name != _HIDDEN]
        out.append(REDACTION.format(", ".join(visible)) if visible else "")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _at_least(floor: Action, action: Action) -> Action:
    """``action``, or ``floor`` where that is more severe."""
    return floor if floor.severity > action.severity else action
