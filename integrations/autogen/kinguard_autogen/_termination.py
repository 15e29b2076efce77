"""``KinGuardTermination``: stop an AgentChat team when kinguard halts (or worse) a message."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Self, TypeVar

from autogen_agentchat.base import (
    OrTerminationCondition,
    TerminatedException,
    TerminationCondition,
)
from autogen_agentchat.conditions import TextMentionTermination
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage
from autogen_core import Component, ComponentModel
from pydantic import BaseModel

from kinguard import Action, KinGuard, Message, Verdict
from kinguard_autogen._component import KinGuardComponent
from kinguard_autogen._events import (
    KINGUARD_SOURCE,
    META_ACTION,
    META_REASONS,
    META_SIGNALS,
    kinguard_action,
)

__all__ = ["KinGuardTermination", "KinGuardTerminationConfig"]

_C = TypeVar("_C", bound=TerminationCondition)

_REVIEW_HINT = (
    " The message was withheld. Review it with kinguard_autogen.pending_halt(team);"
    " continue with team.run(task=kinguard_autogen.resolve_halt(team, decision))."
)


class KinGuardTerminationConfig(BaseModel):
    at_least: Action = Action.HALT
    guard: ComponentModel | None = None


class KinGuardTermination(TerminationCondition, Component[KinGuardTerminationConfig]):
    """Stops the team when a message's kinguard action reaches ``at_least`` (default ``halt``).

    With :func:`~kinguard_autogen.guard_team` (which adds one automatically when the team's
    condition has none) it reads the verdict kinguard stamps on messages it acts on; the halted
    message itself was already replaced by a notice, so it cannot leak when the team resumes.
    Agents answering in parallel (a ``GraphFlow`` fan-out) stop the team after their step when
    any one of them reaches ``at_least``, not only the last to answer. Compose it like any
    condition: ``MaxMessageTermination(20) | KinGuardTermination()``.

    On its own, give it a ``guard``: it then inspects each new chat message itself and stops on
    a verdict at or above ``at_least``. That mode only observes: by the time a termination
    condition runs, the other agents have the message. Use ``guard_team`` to intervene.
    """

    component_type = "termination"
    component_config_schema = KinGuardTerminationConfig
    component_provider_override = "kinguard_autogen.KinGuardTermination"
    component_description = "Stop the team when kinguard halts a message."

    def __init__(
        self, at_least: Action | str = Action.HALT, *, guard: KinGuard | None = None
    ) -> None:
        self._at_least = Action(at_least)
        if self._at_least.severity <= Action.ALLOW.severity:
            raise ValueError("at_least must be an action above 'allow', e.g. 'block' or 'halt'")
        if guard is not None and not isinstance(guard, KinGuard):
            raise TypeError(
                f"KinGuardTermination() takes a KinGuard as guard, not {type(guard).__name__}"
            )
        self._guard = guard
        self._terminated = False
        self._turn = 0
        # Set by guard_team: the verdicts that acted in the team so far this run (see
        # stopped_beside()).
        self.verdicts_said: Callable[[], Sequence[Verdict]] | None = None
        self._announced: set[str] = set()  # message ids of the verdicts a stop was made for

    @property
    def at_least(self) -> Action:
        return self._at_least

    @property
    def guard(self) -> KinGuard | None:
        return self._guard

    @property
    def terminated(self) -> bool:
        return self._terminated

    async def __call__(
        self, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> StopMessage | None:
        if self._terminated:
            raise TerminatedException("Termination condition has already been reached")
        for message in messages:
            if not isinstance(message, BaseChatMessage) or message.source == KINGUARD_SOURCE:
                continue
            stop = await self._check(message)
            if stop is not None:
                self._terminated = True
                self._announce()
                return stop
        return self.stopped_beside()

    def stopped_beside(self) -> StopMessage | None:
        """A stop for a verdict at or above ``at_least`` said in the team that ``messages`` did
        not show.

        Agents running in parallel (a ``GraphFlow`` fan-out) answer in one step, and AgentChat
        gives a termination condition the last one's messages alone: a halted (or blocked)
        agent that answered earlier in the step would let the team run on past it, and past
        the person who was to review a halt."""
        said = () if self.verdicts_said is None else self.verdicts_said()
        if not said:
            self._announced.clear()  # a new run: the verdicts of the last one are settled
            return None
        level = self._at_least.severity
        fresh = next(
            (v for v in said if v.action.severity >= level and v.message_id not in self._announced),
            None,
        )
        if fresh is None:
            return None
        self._terminated = True
        self._announce()
        signals, reasons = ",".join(fresh.signal_names), "; ".join(fresh.reasons)
        return _stop(fresh.action, fresh.sender, signals, reasons, review=True)

    def _announce(self) -> None:
        """The team stops for every verdict said so far: none must stop it again."""
        if self.verdicts_said is not None:
            self._announced.update(v.message_id for v in self.verdicts_said())

    def _watches(self, source: str) -> bool:
        """Whether a message from ``source`` is an agent's, to be inspected on its own."""
        assert self._guard is not None
        declared = {profile.name for profile in self._guard.agents}
        return source in declared if declared else source != "user"

    async def _check(self, message: BaseChatMessage) -> StopMessage | None:
        action = kinguard_action(message)
        stamped = action is not None
        if not stamped and self._guard is None:
            return None  # the common case under guard_team: a message kinguard let through
        signals = message.metadata.get(META_SIGNALS, "")
        reasons = message.metadata.get(META_REASONS, "")
        if action is None and self._guard is not None:
            if not self._watches(message.source):
                return None  # the user's task, a person: the principals kinguard protects
            verdict = await self._guard.ainspect(
                Message(
                    conversation_id=self._guard.conversation_id,
                    sender=message.source,
                    text=message.to_model_text(),
                    turn=self._turn,
                    metadata={"framework": "autogen", "autogen.message_id": message.id},
                )
            )
            self._turn += 1
            action = verdict.action
            signals = ",".join(verdict.signal_names)
            reasons = "; ".join(verdict.reasons)
        if action is None or action.severity < self._at_least.severity:
            return None
        return _stop(action, message.source, signals, reasons, review=stamped)

    async def reset(self) -> None:
        self._terminated = False

    def _to_config(self) -> KinGuardTerminationConfig:
        guard = None if self._guard is None else KinGuardComponent(self._guard).dump_component()
        return KinGuardTerminationConfig(at_least=self._at_least, guard=guard)

    @classmethod
    def _from_config(cls, config: KinGuardTerminationConfig) -> Self:
        guard = None
        if config.guard is not None:
            guard = KinGuardComponent.load_component(config.guard).guard
        return cls(config.at_least, guard=guard)


def _stop(action: Action, sender: str, signals: str, reasons: str, *, review: bool) -> StopMessage:
    """The stop for a message from ``sender`` that kinguard's verdict ``action`` acted on.
    ``review``: guard_team withheld it, so a halt awaits a person's decision."""
    what = "halted" if action is Action.HALT else f"stopped the team after a {action.value}"
    detail = ", ".join(part for part in (signals, reasons) if part) or "policy"
    hint = _REVIEW_HINT if action is Action.HALT and review else ""
    return StopMessage(
        content=f"kinguard {what}: message from {sender} ({detail}).{hint}",
        source="KinGuardTermination",
        metadata={META_ACTION: action.value},
    )


class HaltOrTermination(OrTerminationCondition):
    """``KinGuardTermination() | condition`` as ``guard_team`` adds it, cheap on every message.

    ``OrTerminationCondition`` runs its conditions through ``asyncio.gather``: two tasks and a
    trip through the event loop after every message, a few percent of a whole team's run. This
    checks the two one after the other and gives the same stop messages in the same order. The
    halt check (never with a guard of its own: ``guard_team`` refuses one) can only stop on a
    message kinguard stamped, so it runs only when the new messages hold a stamp; messages
    kinguard let through untouched carry none. It dumps as a plain ``OrTerminationCondition``
    (the provider is inherited) and loads back as one.
    """

    def __init__(self, halt: KinGuardTermination, condition: TerminationCondition) -> None:
        super().__init__(halt, condition)
        self._halt = halt
        self._condition = condition

    async def __call__(
        self, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> StopMessage | None:
        halt = self._halt
        condition = self._condition
        if halt.terminated or condition.terminated:
            raise TerminatedException("Termination condition has already been reached")
        stop = None
        for message in messages:
            if META_ACTION in message.metadata:
                stop = await halt(messages)
                break
        else:
            stop = halt.stopped_beside()
        other = await condition(messages)
        if stop is None and other is None:
            return None
        stops = [s for s in (stop, other) if s is not None]
        return StopMessage(
            content=", ".join(s.content for s in stops),
            source=", ".join(s.source for s in stops),
        )


def find_kinguard_termination(
    condition: TerminationCondition | None, *, alone: bool = False
) -> KinGuardTermination | None:
    """The first KinGuardTermination in an ``|``/``&`` tree of conditions, if any.

    ``alone``: only one that stops the team by itself, reached through ``|`` alone (under
    ``&`` a halt would wait for the other conditions, and the team runs on past it).
    """
    return next(kinguard_terminations(condition, alone=alone), None)


def kinguard_terminations(
    condition: TerminationCondition | None, *, alone: bool = False
) -> Iterator[KinGuardTermination]:
    """The KinGuardTerminations in an ``|``/``&`` tree of conditions, depth first
    (``alone``: as for :func:`find_kinguard_termination`)."""
    return _conditions_of(KinGuardTermination, condition, alone=alone)


def termination_words(condition: TerminationCondition | None) -> tuple[str, ...]:
    """The texts the ``TextMentionTermination``s in an ``|``/``&`` tree of conditions watch
    for (each one's private ``_termination_text``: AgentChat has no public accessor)."""
    found = _conditions_of(TextMentionTermination, condition, alone=False)
    return tuple(dict.fromkeys(each._termination_text for each in found))


def _conditions_of(
    kind: type[_C], condition: TerminationCondition | None, *, alone: bool
) -> Iterator[_C]:
    """The conditions of type ``kind`` in a tree of conditions, depth first (``alone``: only
    those reached through ``|`` alone)."""
    if condition is None:
        return
    if isinstance(condition, kind):
        yield condition
        return
    if alone and not isinstance(condition, OrTerminationCondition):
        return
    children: Sequence[TerminationCondition] = getattr(condition, "_conditions", ())
    for child in children:
        yield from _conditions_of(kind, child, alone=alone)
