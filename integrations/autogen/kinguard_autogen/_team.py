"""``guard_team``: put kinguard into an AgentChat group chat without touching the agents' code."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from autogen_agentchat.base import ChatAgent, TerminationCondition
from autogen_agentchat.messages import TextMessage
from autogen_agentchat.teams import BaseGroupChat
from autogen_core import SingleThreadedAgentRuntime
from autogen_core.models import SystemMessage

from kinguard import HumanDecision, KinGuard, Verdict
from kinguard.logs import get_logger
from kinguard_autogen._events import META_RESOLVED, KinGuardVerdictEvent
from kinguard_autogen._handler import (
    EventMode,
    KinGuardInterventionHandler,
    TeamGuard,
    TeamTopics,
)
from kinguard_autogen._output import OutputGate
from kinguard_autogen._termination import (
    HaltOrTermination,
    KinGuardTermination,
    find_kinguard_termination,
)

__all__ = ["STATE_KEY", "guard_team", "pending_halt", "resolve_halt", "team_guard", "unguard_team"]

_log = get_logger("kinguard.autogen")

STATE_KEY = "kinguard"
"""Key under which ``team.save_state()`` carries kinguard's state (AgentChat ignores it)."""

_ATTR = "_kinguard_guarding"
TeamT = TypeVar("TeamT", bound=BaseGroupChat)

# The runtime warns whenever an intervention handler's on_response returns None, which it must
# for every RPC that answers None (starting, resetting a team): noise, not a problem.
warnings.filterwarnings(
    "ignore",
    message=r"Intervention handler on_response returned None",
    category=RuntimeWarning,
)


class _Installed:
    """What guard_team changed on one team, so unguard_team can put it back."""

    def __init__(
        self,
        team_guard: TeamGuard,
        handler: KinGuardInterventionHandler,
        termination: TerminationCondition | None,
        termination_replaced: bool,
        system_messages: dict[str, list[SystemMessage]],
    ) -> None:
        self.team_guard = team_guard
        self.handler = handler
        self.termination = termination
        self.termination_replaced = termination_replaced
        self.system_messages = system_messages


def guard_team(
    team: TeamT,
    guard: KinGuard,
    *,
    conversation_id: str | None = None,
    events: EventMode = "flagged",
) -> TeamT:
    """Guard an AgentChat group chat (RoundRobin, Selector, Swarm, ...) in place and return it.

    - Each participant's system message gets the guard's identity block (AssistantAgent and any
      agent keeping ``_system_messages``); other agents get it as their first message.
    - Every chat message a participant publishes is inspected before anyone else receives it;
      the verdict's rewrite (redact, conceal, block notice) is what the others, the manager and
      ``run``/``run_stream`` get. A halt withholds the message and stops the team through a
      :class:`KinGuardTermination` (added with ``|`` unless the team's condition has one).
    - ``run_stream()`` yields a :class:`KinGuardVerdictEvent` after each message kinguard acted
      on (``events="all"``: after every message; ``"none"``: never). Streamed model tokens
      (``model_client_stream=True``) come out once their message is inspected, cut from the
      delivered text (none of a blocked or halted message's).
    - ``save_state()``/``load_state()`` carry the guard's state under ``"kinguard"``.

    Call it before the team first runs. The team must use AgentChat's default
    ``SingleThreadedAgentRuntime`` (embedded or passed as ``runtime=``).
    """
    if not isinstance(team, BaseGroupChat):
        raise TypeError(
            f"guard_team() takes an AgentChat group chat (RoundRobinGroupChat, SelectorGroupChat, "
            f"Swarm, ...), not {type(team).__name__}"
        )
    installed = _installed(team)
    if installed is not None:
        if installed.team_guard.guard is guard:
            return team
        raise ValueError(
            "this team is already guarded by another KinGuard; unguard_team() it first"
        )
    runtime = team._runtime
    if not isinstance(runtime, SingleThreadedAgentRuntime):
        raise TypeError(
            f"kinguard inspects messages with a runtime intervention handler, which only "
            f"SingleThreadedAgentRuntime supports; this team runs on {type(runtime).__name__}"
        )
    if team._is_running:
        raise RuntimeError("guard_team() cannot be applied while the team is running")

    termination = team._termination_condition
    termination_replaced = False
    present = find_kinguard_termination(termination)
    if present is not None and present.guard is not None:
        raise ValueError(
            "the team's KinGuardTermination has its own guard, so it would inspect every message "
            "a second time: with guard_team() use KinGuardTermination() without a guard"
        )
    if present is None:
        if team._initialized:
            raise ValueError(
                "this team has already run, so its termination condition is fixed: call "
                "guard_team() before the first run, or build the team with "
                "termination_condition=... | KinGuardTermination()"
            )
        halt = KinGuardTermination()
        team._termination_condition = (
            halt if termination is None else HaltOrTermination(halt, termination)
        )
        termination_replaced = True

    topics = TeamTopics(
        team_id=team._team_id,
        team_name=team.name,
        participants=tuple(team._participant_names),
        participant_topics=dict(
            zip(team._participant_names, team._participant_topic_types, strict=True)
        ),
        group_topic=team._group_topic_type,
        manager_topic=team._group_chat_manager_topic_type,
    )
    team_guard = TeamGuard(
        guard,
        runtime,
        topics,
        conversation_id=conversation_id or guard.conversation_id,
        events=events,
        gate=OutputGate(team._output_message_queue),
    )
    system_messages = _inject_identity(team, team_guard)

    # One kinguard handler per runtime, shared by the teams guarded on it (see the handler).
    handlers = runtime._intervention_handlers
    if handlers is None:
        handlers = runtime._intervention_handlers = []
    handler = next((h for h in handlers if isinstance(h, KinGuardInterventionHandler)), None)
    if handler is None:
        handler = KinGuardInterventionHandler()
        handlers.append(handler)
    handler.add(team_guard)

    if not team._message_factory.is_registered(KinGuardVerdictEvent):
        # Lets guarded teams nested inside this one stream their verdict events through it.
        team._message_factory.register(KinGuardVerdictEvent)
    _patch_state(team, team_guard)
    setattr(
        team,
        _ATTR,
        _Installed(team_guard, handler, termination, termination_replaced, system_messages),
    )
    return team


def unguard_team(team: TeamT) -> TeamT:
    """Undo :func:`guard_team`: handler, termination, system messages, state hooks."""
    installed = _installed(team)
    if installed is None:
        return team
    if team._is_running:
        raise RuntimeError("unguard_team() cannot be applied while the team is running")
    handlers = (
        team._runtime._intervention_handlers
        if isinstance(team._runtime, SingleThreadedAgentRuntime)
        else None
    )
    installed.handler.remove(installed.team_guard.topics.team_id)
    if handlers is not None and not installed.handler.teams and installed.handler in handlers:
        handlers.remove(installed.handler)
    if installed.termination_replaced:
        team._termination_condition = installed.termination
    for participant in team._participants:
        original = installed.system_messages.get(participant.name)
        if original is not None:
            participant._system_messages = original  # type: ignore[union-attr]
    for name in ("save_state", "load_state"):
        if name in vars(team):
            delattr(team, name)
    installed.team_guard.gate.clear()
    delattr(team, _ATTR)
    return team


def team_guard(team: BaseGroupChat) -> KinGuard | None:
    """The KinGuard guarding this team, if any."""
    installed = _installed(team)
    return None if installed is None else installed.team_guard.guard


def pending_halt(team: BaseGroupChat) -> Verdict | None:
    """The verdict that halted the team and awaits a person's decision, if any."""
    return _require(team).pending_halt


def resolve_halt(team: BaseGroupChat, decision: HumanDecision) -> TextMessage | None:
    """Turn a person's decision on the halted message into the task that resumes the team.

    ``approve`` releases the message as kinguard would have delivered it, ``edit`` releases the
    person's text; both come back as a ``TextMessage`` from the original sender that the other
    participants (not the sender) receive when you ``team.run(task=...)`` with it. ``reject``
    returns ``None``: run the team with no task and the message stays withheld.
    """
    tg = _require(team)
    verdict = tg.pending_halt
    if verdict is None:
        raise ValueError("this team has no halted message to resolve")
    tg.pending_halt = None
    text = tg.guard.resolve_halt(verdict, decision)
    _log.info(
        "kinguard.autogen.halt_resolved",
        team=tg.topics.team_name,
        sender=verdict.sender,
        decision=decision.type,
        reason=decision.reason,
    )
    if text is None:
        return None
    message = TextMessage(
        source=verdict.sender, content=text, metadata={META_RESOLVED: decision.type}
    )
    tg.private_deliveries[message.id] = verdict.sender
    return message


# -- internals ----------------------------------------------------------------------------


def _installed(team: BaseGroupChat) -> _Installed | None:
    installed = getattr(team, _ATTR, None)
    return installed if isinstance(installed, _Installed) else None


def _require(team: BaseGroupChat) -> TeamGuard:
    installed = _installed(team)
    if installed is None:
        raise ValueError("this team is not guarded: call guard_team(team, guard) first")
    return installed.team_guard


def _inject_identity(team: BaseGroupChat, tg: TeamGuard) -> dict[str, list[SystemMessage]]:
    """Append each agent's identity block to its system message; remember the originals."""
    originals: dict[str, list[SystemMessage]] = {}
    declared = {profile.name for profile in tg.guard.agents}
    for participant in team._participants:
        name = participant.name
        if not isinstance(participant, ChatAgent):
            continue  # a nested team: guard it with its own guard_team() call
        if declared and name not in declared:
            _log.warning(
                "kinguard.autogen.undeclared_agent",
                agent=name,
                detail="not in KinGuard(agents=...): kinship is unknown for it",
            )
        block = tg.guard.identity_block(name)
        if block is None:
            continue
        current = getattr(participant, "_system_messages", None)
        if not isinstance(current, list):
            tg.identity_messages[name] = block
            continue
        originals[name] = list(current)
        first = current[0] if current else None
        if isinstance(first, SystemMessage) and isinstance(first.content, str):
            prompt = tg.guard.system_prompt(name, first.content)
            updated = [SystemMessage(content=prompt), *current[1:]]
        else:
            updated = [SystemMessage(content=tg.guard.system_prompt(name, None)), *current]
        participant._system_messages = updated  # type: ignore[attr-defined]
    return originals


def _patch_state(team: BaseGroupChat, tg: TeamGuard) -> None:
    save = team.save_state
    load = team.load_state

    async def save_state() -> Mapping[str, Any]:
        state = dict(await save())
        state[STATE_KEY] = tg.state_dict()
        return state

    async def load_state(state: Mapping[str, Any]) -> None:
        await load(state)
        saved = state.get(STATE_KEY)
        if isinstance(saved, Mapping):
            tg.load_state(saved)
        else:
            _log.warning(
                "kinguard.autogen.state_without_guard",
                team=tg.topics.team_name,
                detail="loaded a team state saved without kinguard; guard state left as is",
            )

    setattr(team, "save_state", save_state)  # noqa: B010
    setattr(team, "load_state", load_state)  # noqa: B010
