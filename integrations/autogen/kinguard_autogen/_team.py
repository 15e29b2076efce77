"""``guard_team``: put kinguard into an AgentChat group chat without touching the agents' code."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from functools import partial
from types import FrameType
from typing import Any, TypeVar, get_args

from autogen_agentchat.agents import (
    CodeExecutorAgent,
    MessageFilterAgent,
    SocietyOfMindAgent,
    UserProxyAgent,
)
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.messages import BaseChatMessage, HandoffMessage, TextMessage
from autogen_agentchat.teams import BaseGroupChat, GraphFlow, MagenticOneGroupChat
from autogen_agentchat.tools import AgentTool, TeamTool
from autogen_core import AgentId, ComponentModel
from autogen_core.models import SystemMessage

from kinguard import Action, HumanDecision, KinGuard, Verdict
from kinguard.logs import get_logger
from kinguard_autogen._events import (
    KINGUARD_SOURCE,
    META_GUARD,
    META_RESOLVED,
    KinGuardVerdictEvent,
    kinguard_action,
)
from kinguard_autogen._graph import resume_where_halted
from kinguard_autogen._magentic import resume_orchestrator
from kinguard_autogen._participant import (
    VERDICT_EVENTS_WELCOME,
    EventMode,
    GuardedParticipant,
    GuardedSocietyOfMind,
    GuardedTeamParticipant,
    TeamGuard,
    inside_a_team,
    without_verdict_events,
)
from kinguard_autogen._termination import (
    HaltOrTermination,
    KinGuardTermination,
    find_kinguard_termination,
    kinguard_terminations,
    termination_words,
)
from kinguard_autogen._tools import (
    GuardedStreamWorkbench,
    GuardedWorkbench,
    guarded_approval,
    guarded_workbench,
)

__all__ = ["STATE_KEY", "guard_team", "pending_halt", "resolve_halt", "team_guard", "unguard_team"]

_log = get_logger("kinguard.autogen")

STATE_KEY = "kinguard"
"""Key under which ``team.save_state()`` carries kinguard's state (AgentChat ignores it)."""

_ATTR = "_kinguard_guarding"
_MISSING: Any = object()
TeamT = TypeVar("TeamT", bound=BaseGroupChat)


class _Installed:
    """What guard_team changed on one team (and the teams inside it), so unguard_team can put
    it back."""

    def __init__(self, team_guard: TeamGuard) -> None:
        self.team_guard = team_guard
        self.patched: list[tuple[object, str, Any, Any]] = []
        """(object, attribute, its previous instance value or ``_MISSING``, kinguard's value),
        in patch order."""

    def patch(self, target: object, name: str, value: Any) -> None:
        self.patched.append((target, name, vars(target).get(name, _MISSING), value))
        setattr(target, name, value)

    def covered(self) -> str | None:
        """An attribute patched again since (a guarded team around this one wraps its
        ``run_stream``), whose restore would drop that layer too and leave this one in it."""
        for target, name, _, value in self.patched:
            if vars(target).get(name, _MISSING) is not value:
                return name
        return None

    def restore(self) -> None:
        for target, name, previous, _ in reversed(self.patched):
            if previous is _MISSING:
                if name in vars(target):
                    delattr(target, name)
            else:
                setattr(target, name, previous)
        self.patched.clear()


def guard_team(
    team: TeamT,
    guard: KinGuard,
    *,
    conversation_id: str | None = None,
    events: EventMode = "flagged",
) -> TeamT:
    """Guard an AgentChat group chat (RoundRobin, Selector, Swarm, ...) in place and return it.

    - Each participant's system message gets the guard's identity block (AssistantAgent and any
      agent keeping ``_system_messages``); other agents get it with their first turn.
    - Every chat message a participant produces is inspected inside its turn, before the
      team's manager, termination condition or any other participant gets it; they, and
      ``run``/``run_stream``, get the verdict's rewrite (redact, conceal, block notice). A halt
      withholds the message and stops the team through a :class:`KinGuardTermination` (added
      with ``|`` unless the team's condition has one).
    - ``run_stream()`` yields a :class:`KinGuardVerdictEvent` after each message kinguard acted
      on (``events="all"``: after every message; ``"none"``: never). Streamed model tokens
      (``model_client_stream=True``) come out once their message is inspected, cut from the
      delivered text (none of a blocked or halted message's). So do a turn's thoughts, tool
      call requests and generated code, and the events after them: less the words kinguard
      withheld from that turn (a refused call without its arguments, its result not named as
      the tool, so that ``FunctionCallTermination`` does not take it for the tool having run),
      or beside a blocked or halted message not at all but for each tool result less its
      output; the team's state keeps them as streamed.
    - ``save_state()``/``load_state()`` carry the guard's state under ``"kinguard"``.

    Call it before the team first runs. A nested group chat among the participants, and the
    inner team of a ``SocietyOfMindAgent``, are guarded as part of this one: their agents get
    identity statements, have their messages inspected inside their own turns (so their
    teammates never read what kinguard withholds) and get their nudges. Guard a nested team with
    its own ``guard_team()`` first to apply a policy of its own: this team then inspects what
    it delivers a second time, under this guard's policy (not with the same guard and
    conversation id, which make one conversation, where each message is inspected once).
    """
    if not isinstance(team, BaseGroupChat):
        raise TypeError(
            f"guard_team() takes an AgentChat group chat (RoundRobinGroupChat, SelectorGroupChat, "
            f"Swarm, ...), not {type(team).__name__}"
        )
    if not isinstance(guard, KinGuard):  # else a failure deep inside the first run
        raise TypeError(f"guard_team() takes a KinGuard as guard, not {type(guard).__name__}")
    if events not in get_args(EventMode):
        raise ValueError(f"events: {events!r} is not one of {', '.join(get_args(EventMode))}")
    installed = _installed(team)
    if installed is not None:
        tg = installed.team_guard
        if tg.guard is not guard:
            raise ValueError(
                "this team is already guarded by another KinGuard; unguard_team() it first"
            )
        wanted = (conversation_id or guard.conversation_id, events)
        if wanted != (tg.conversation_id, tg.events):
            raise ValueError(
                f"this team is already guarded with conversation_id={tg.conversation_id!r}, "
                f"events={tg.events!r}; unguard_team() it first to change them"
            )
        return team
    if team._is_running:
        raise RuntimeError("guard_team() cannot be applied while the team is running")

    tg = TeamGuard(
        guard,
        team_name=team.name,
        participants=_agent_names(team),
        conversation_id=conversation_id or guard.conversation_id,
        events=events,
    )
    installed = _Installed(tg)
    try:
        _guard_members(team, tg, installed)
    except BaseException:
        installed.restore()  # all or nothing: a refused team is left as it was
        tg.retire()
        raise
    _patch_team(team, tg, installed)
    setattr(team, _ATTR, installed)
    _warn_if_shared(team, tg)
    return team


def _warn_if_shared(team: BaseGroupChat, tg: TeamGuard) -> None:
    """Two teams that are not nested in one another, on one guard and conversation id, are one
    conversation: risk, reminders and echo memory flow between them. Legitimate (a team split
    in two), but more often an accident of reusing a guard."""
    nested = {id(inner) for inner in _guards_within(team)}
    others = [
        other.team_name
        for other in TeamGuard.live
        if other is not tg and other.stamp == tg.stamp and id(other) not in nested
    ]
    if others:
        _log.warning(
            "kinguard.autogen.shared_conversation",
            team=team.name,
            conversation_id=tg.conversation_id,
            other_teams=sorted(others),
            detail="one conversation with those teams (risk, reminders, echo memory); pass "
            "guard_team(..., conversation_id=...) to keep the teams apart",
        )


def unguard_team(team: TeamT) -> TeamT:
    """Undo :func:`guard_team`: participants, termination, system messages, state hooks.

    Guarded teams nested in one another are unguarded from the outside in: the outer team's
    guard wraps the nested team's ``run_stream``, so unguarding the nested team first raises.
    """
    installed = _installed(team)
    if installed is None:
        return team
    if team._is_running:
        raise RuntimeError("unguard_team() cannot be applied while the team is running")
    covered = installed.covered()
    if covered is not None:
        raise ValueError(
            f"team {team.name!r} was patched again after guard_team() ({covered}), most likely "
            "by the guard_team() of a team around it or inside it: unguard_team() that team first"
        )
    installed.restore()
    installed.team_guard.retire()
    delattr(team, _ATTR)
    return team


def team_guard(team: BaseGroupChat) -> KinGuard | None:
    """The KinGuard guarding this team, if any."""
    installed = _installed(team)
    return None if installed is None else installed.team_guard.guard


def pending_halt(team: BaseGroupChat) -> Verdict | None:
    """The verdict that halted the team and awaits a person's decision, if any.

    Agents that ran in parallel (a GraphFlow fan-out) may have been halted together: this is
    the oldest; once :func:`resolve_halt` has settled it, the next one is pending, so
    ``while pending_halt(team) is not None`` reviews them all. A halt in a nested team with a
    ``guard_team()`` of its own (which stopped this team too) is pending here as well.
    ``team.reset()`` drops the halts (their messages stay withheld) with the conversation they
    were said in, which AgentChat forgets; a ``SocietyOfMindAgent``'s reset of its team at the
    end of its turn does not.
    """
    _require(team)
    for tg in _guards_within(team):
        if tg.pending_halts:
            return tg.pending_halts[0]
    return None


def resolve_halt(team: BaseGroupChat, decision: HumanDecision) -> BaseChatMessage | None:
    """Turn a person's decision on the halted message into the task that resumes the team.

    ``approve`` releases the message as kinguard would have delivered it without the halt (a
    redact rule that also matched still applies; a block rule that also matched means nothing
    is released, and ``None`` comes back as on ``reject``), ``edit`` releases the person's
    text; both come back as a ``TextMessage`` from the original sender that the other
    participants (not the sender) receive when you ``team.run(task=...)`` with it (a
    multimodal, structured or stop message approved with its words as they were comes back
    as the message it was, images and all); a Swarm
    handoff comes back as the ``HandoffMessage``, which hands control over then (approved,
    with the context it carried to its target's model, the thought and tool calls before it,
    less what the verdict's other rules withhold; edited, with the person's text alone).
    ``reject`` returns ``None``: run the team with no task and the message stays withheld (a handoff
    never happens: the sender keeps the turn). A run on a released handoff to someone outside
    the team (``handoffs=["user"]`` with ``HandoffTermination``) ends at once with the handoff as
    its result and in the team's thread, as it would have without the halt: resume with that
    person's reply. With several halts pending, this settles the one :func:`pending_halt`
    shows; resume with the list of the released messages.
    """
    _require(team)
    tg = next((tg for tg in _guards_within(team) if tg.pending_halts), None)
    if tg is None:
        raise ValueError("this team has no halted message to resolve")
    verdict = tg.pending_halts.pop(0)
    target = tg.handoff_targets.pop(verdict.message_id, None)
    released = tg.handoff_releases.pop(verdict.message_id, None)
    said = tg.message_releases.pop(verdict.message_id, None)
    text = tg.guard.resolve_halt(verdict, decision)
    tg.guard.record_decision(verdict, decision)
    if text is None:
        return None
    # Stamped with the ruling team's stamp: its guard does not inspect it again; the guards of
    # teams around it, whose policies have not seen it, do (``_with_task_inspected``).
    metadata: dict[str, str] = {META_RESOLVED: decision.type, META_GUARD: tg.stamp}
    message: BaseChatMessage
    if said is not None and decision.type == "approve":
        # As it was said (a new id: its notice has the old one).
        message = said.model_copy(update={"id": str(uuid.uuid4()), "metadata": metadata})
    elif target is None:
        message = TextMessage(source=verdict.sender, content=text, metadata=metadata)
    elif released is not None and decision.type == "approve":
        # With its context (the thought and tool calls before it), which the target's model
        # is given too: ``text`` is the verdict's rewrite of the words and the context at once.
        message = HandoffMessage(
            source=verdict.sender,
            target=target,
            content=released.content,
            context=released.context,
            metadata=metadata,
        )
    else:
        message = HandoffMessage(
            source=verdict.sender, target=target, content=text, metadata=metadata
        )
    # Never given back to its sender, in whichever team around it the sender speaks.
    for each in _guards_within(team):
        each.deliver_privately(message, verdict.sender)
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


def _guards_within(team: Team) -> Iterator[TeamGuard]:
    """The guards of the team and of the guarded teams nested in it, outside in: a halt in a
    nested team with its own guard_team() stops this one too, and is resolved where it was said."""
    installed = _installed(team) if isinstance(team, BaseGroupChat) else None
    if installed is not None:
        yield installed.team_guard
    for participant in _speaking_in(team):
        nested = participant._team if isinstance(participant, SocietyOfMindAgent) else participant
        if isinstance(nested, Team):
            yield from _guards_within(nested)


def _agent_names(team: Team) -> list[str]:
    """Everyone a message in this team can reach: its participants, and the agents of the teams
    inside it (a nested team is not itself an agent)."""
    names: list[str] = []
    for participant in _speaking_in(team):
        if isinstance(participant, ChatAgent):
            names.append(participant.name)
            if isinstance(participant, SocietyOfMindAgent):
                names.extend(_agent_names(participant._team))
        elif isinstance(participant, Team):
            names.extend(_agent_names(participant))
    return list(dict.fromkeys(names))  # an agent also used as a tool is one recipient


def _speaking_in(team: Team) -> Iterator[ChatAgent | Team]:
    """The team's participants, and the agents and teams they use as tools (with theirs),
    which speak in it too: to their callers, through the tools' results."""
    for participant in getattr(team, "_participants", ()):
        yield participant
        if isinstance(participant, ChatAgent):
            yield from _tools_of(participant)


def _tools_of(agent: ChatAgent) -> Iterator[ChatAgent | Team]:
    for runner in _tool_runners(agent):
        yield runner
        if isinstance(runner, ChatAgent):
            yield from _tools_of(runner)


def _tool_runners(agent: ChatAgent) -> list[ChatAgent | Team]:
    """The agents and teams ``agent`` uses as tools (``AgentTool``, ``TeamTool``): they speak
    to it, through the tools' results."""
    if isinstance(agent, MessageFilterAgent):
        agent = agent._wrapped_agent
    workbenches = getattr(agent, "_workbench", None)
    if not isinstance(workbenches, list):
        return []
    runners: list[ChatAgent | Team] = []
    for workbench in workbenches:
        if isinstance(workbench, (GuardedWorkbench, GuardedStreamWorkbench)):
            workbench = workbench.inner
        for tool in getattr(workbench, "_tools", ()):
            if isinstance(tool, (AgentTool, TeamTool)):
                runners.append(tool._task_runner)
    return runners


def _guard_members(team: BaseGroupChat, tg: TeamGuard, installed: _Installed) -> None:
    """Guard one team's participants, and recursively the teams inside it, with ``tg``."""
    _add_halt_termination(team, tg, installed)
    tg.termination_words += termination_words(team._termination_condition)
    if isinstance(team, GraphFlow):
        resume_where_halted(team, tg, installed.patch)
    elif isinstance(team, MagenticOneGroupChat):
        resume_orchestrator(team, tg, installed.patch)
    if not team._message_factory.is_registered(KinGuardVerdictEvent):
        # The participants' containers log what the agents yield through this factory.
        team._message_factory.register(KinGuardVerdictEvent)
    for participant, container in zip(
        team._participants, team._participant_topic_types, strict=True
    ):
        if isinstance(participant, UserProxyAgent):
            continue  # a person: one of the principals kinguard protects, not an agent to watch
        if isinstance(participant, ChatAgent):
            _guard_agent(participant, tg, installed, turns=container)
            if isinstance(participant, SocietyOfMindAgent):
                inner = participant._team
                _guard_inner(inner, tg, installed)
                if isinstance(inner, BaseGroupChat) and _installed(inner) is not None:
                    # Its own model reads what its team delivers, which is for this team's
                    # policy to rule on first (its team's guard has its own policy).
                    guarded = GuardedTeamParticipant(tg, inner.run_stream, welcome=False)
                    installed.patch(inner, "run_stream", guarded)
        elif isinstance(participant, Team):
            _guard_inner(participant, tg, installed)
            installed.patch(
                participant, "run_stream", GuardedTeamParticipant(tg, participant.run_stream)
            )


def _guard_inner(team: Team, tg: TeamGuard, installed: _Installed) -> None:
    """A team inside the guarded one: its agents are guarded as the team's own, unless it has
    a guard_team() of its own (its output is then inspected once more where it is delivered)."""
    if not isinstance(team, BaseGroupChat):
        return
    if _installed(team) is None:
        _guard_members(team, tg, installed)
        return
    for inner in _guards_within(team):
        installed.patch(inner, "enclosing", (*inner.enclosing, tg))  # its nudges reach them
        if inner.stamp == tg.stamp:
            # The same guard and conversation: the guard inspects each message once, inside,
            # so there it must reach everyone this team's messages reach.
            installed.patch(inner, "participants", tg.participants)
            installed.patch(inner, "_recipients", {})


def _add_halt_termination(team: BaseGroupChat, tg: TeamGuard, installed: _Installed) -> None:
    """Make sure a halt stops ``team``: add a KinGuardTermination unless it has one."""
    termination = team._termination_condition
    if any(each.guard is not None for each in kinguard_terminations(termination)):
        raise ValueError(
            "the team's KinGuardTermination has its own guard, so it would inspect every message "
            "a second time: with guard_team() use KinGuardTermination() without a guard"
        )
    halt = find_kinguard_termination(termination, alone=True)
    if halt is None:
        if team._initialized:
            raise ValueError(
                f"team {team.name!r} has already run, so its termination condition is fixed: "
                "call guard_team() before the first run, or build the team with "
                "termination_condition=... | KinGuardTermination()"
            )
        halt = KinGuardTermination()
        combined = halt if termination is None else HaltOrTermination(halt, termination)
        installed.patch(team, "_termination_condition", combined)
    # The verdicts on this team's agents (a nested team's too, which stop it as well), for
    # one that the messages a condition is given do not show (see stopped_beside()): every
    # KinGuardTermination in the tree, the app's under ``&`` too, is told of them.
    names = frozenset(_agent_names(team))
    said = partial(_acted_by, tg, names)
    for each in kinguard_terminations(team._termination_condition):
        installed.patch(each, "verdicts_said", said)


def _acted_by(tg: TeamGuard, names: frozenset[str]) -> list[Verdict]:
    return [verdict for verdict in tg.acted.values() if verdict.sender in names]


def _guard_agent(
    agent: ChatAgent, tg: TeamGuard, installed: _Installed, *, turns: str | None = None
) -> None:
    """Stand in for the agent's turn and workbenches; give it its identity statement.
    ``turns``: the runtime agent type of the team container that runs its turns as a
    participant; ``None`` for another agent's tool (see ``GuardedParticipant``)."""
    name = agent.name
    current = agent.on_messages_stream
    if isinstance(current, GuardedParticipant) and current.tg is tg:
        # A participant another one also uses as a tool: guarded once, for both uses.
        if turns is not None:
            current.turns.add(turns)
        return
    if isinstance(current, GuardedParticipant):
        # Wrapped twice, its turn would be inspected twice and its halts filed with the team
        # that guarded it first.
        raise ValueError(
            f"agent {name!r} is already guarded as a participant of another guarded team: "
            "unguard_team() that team first, or give this team agents of its own"
        )
    turn = (
        GuardedSocietyOfMind(tg, agent)
        if isinstance(agent, SocietyOfMindAgent)
        else GuardedParticipant(tg, name, agent.on_messages_stream)
    )
    if turns is not None:
        turn.turns.add(turns)
    installed.patch(agent, "on_messages_stream", turn)
    # A MessageFilterAgent's turn is its wrapped agent's: the wrapped agent's tools run in it
    # and its model reads the system message.
    if isinstance(agent, MessageFilterAgent):
        installed.patch(agent, "_apply_filter", _passing_kinguards_own(agent._apply_filter))
        agent = agent._wrapped_agent
    unguarded: dict[str, object] = {}  # attributes patched here -> what they were
    # An agent or team used as a tool speaks to this agent in the tool's result: guarded as
    # the team's own, its words reach this agent's model as kinguard delivered them.
    for runner in _tool_runners(agent):
        if isinstance(runner, ChatAgent):
            _guard_agent(runner, tg, installed)
        else:
            _guard_inner(runner, tg, installed)
    workbenches = getattr(agent, "_workbench", None)
    if isinstance(workbenches, list) and workbenches:
        guarded = [guarded_workbench(tg, name, wb) for wb in workbenches]
        installed.patch(agent, "_workbench", guarded)
    if isinstance(agent, CodeExecutorAgent) and agent._model_client is not None:
        # Code its own model wrote runs inside its turn: read before it runs. (Without a model
        # it runs code from other agents' messages, which kinguard read when they were sent.)
        approval = agent._approval_func
        installed.patch(agent, "_approval_func", guarded_approval(tg, name, approval))
        installed.patch(agent, "_approval_func_is_async", True)
        # Dumped with the app's own function (a guarded agent's would not serialise): the
        # dump_component patch below restores it beside the system message.
        unguarded["_approval_func"] = approval
    declared = {profile.name for profile in tg.guard.agents}
    if declared and name not in declared:
        _log.warning(
            "kinguard.autogen.undeclared_agent",
            agent=name,
            detail="not in KinGuard(agents=...): kinship is unknown for it",
        )
    _give_identity(agent, name, tg, installed, unguarded)
    _dump_unguarded(agent, unguarded, installed)


def _passing_kinguards_own(
    apply: Callable[[Sequence[BaseChatMessage]], Sequence[BaseChatMessage]],
) -> Callable[[Sequence[BaseChatMessage]], Sequence[BaseChatMessage]]:
    """A MessageFilterAgent's filter that gives its wrapped agent kinguard's own messages for
    it (a reminder, an identity statement) first, whatever sources the filter keeps: it would
    drop them, kinguard being none of those."""

    def kept(messages: Sequence[BaseChatMessage]) -> Sequence[BaseChatMessage]:
        own = [m for m in messages if m.source == KINGUARD_SOURCE]
        if not own:
            return apply(messages)
        return [*own, *apply([m for m in messages if m.source != KINGUARD_SOURCE])]

    return kept


def _give_identity(
    agent: ChatAgent,
    name: str,
    tg: TeamGuard,
    installed: _Installed,
    unguarded: dict[str, object],
) -> None:
    """The identity statement of participant ``name`` in ``agent``'s instruction or system
    message (noting in ``unguarded`` what it patched), or with its first turn when it has
    neither. ``agent`` is the participant, or the agent a MessageFilterAgent wraps."""
    block = tg.guard.identity_block(name)
    if block is None:
        return
    if isinstance(agent, SocietyOfMindAgent):
        # The messages it is given become its team's task: its own model reads its instruction.
        own = agent._instruction
        installed.patch(agent, "_instruction", tg.guard.system_prompt(name, own))
        unguarded["_instruction"] = own
        return
    current = getattr(agent, "_system_messages", None)
    if not isinstance(current, list):
        tg.identity_messages[name] = block  # given with its first turn instead
        return
    first = current[0] if current else None
    if isinstance(first, SystemMessage) and isinstance(first.content, str):
        prompt = tg.guard.system_prompt(name, first.content)
        updated = [SystemMessage(content=prompt), *current[1:]]
    else:
        updated = [SystemMessage(content=tg.guard.system_prompt(name, None)), *current]
    installed.patch(agent, "_system_messages", updated)
    unguarded["_system_messages"] = current


def _dump_unguarded(agent: ChatAgent, originals: dict[str, object], installed: _Installed) -> None:
    """Patch, once, the agent's ``dump_component`` to dump its own attributes (``originals``:
    name -> what it was), not kinguard's: an identity block belongs to this guard, and a dump
    loaded elsewhere is guarded afresh. Once: a second patch would look foreign to
    ``unguard_team``."""
    if not originals:
        return
    dump = agent.dump_component

    def dump_component() -> ComponentModel:
        guarded = {attribute: getattr(agent, attribute) for attribute in originals}
        for attribute, original in originals.items():
            setattr(agent, attribute, original)
        try:
            return dump()
        finally:
            for attribute, value in guarded.items():
                setattr(agent, attribute, value)

    installed.patch(agent, "dump_component", dump_component)


def _patch_team(team: BaseGroupChat, tg: TeamGuard, installed: _Installed) -> None:
    """The team's own entry points: runs, resets and state carry kinguard's part too."""
    run_stream = team.run_stream
    reset = team.reset
    save = team.save_state
    load = team.load_state

    def guarded_run_stream(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        # ``run()`` goes through here too: it iterates ``self.run_stream``.
        task = kwargs.get("task")
        run = run_stream
        if (
            isinstance(task, HandoffMessage)
            and META_RESOLVED in task.metadata
            and task.target not in tg.participants  # a nested Swarm's agents are in it
        ):
            run = partial(_handing_out, team, tg, run_stream)
        tg.on_run_start()
        # The app's own run on a released message, not a nested team's run inside its outer
        # team's turn (whose task the outer team's guard has ruled on already).
        rulings = (
            []
            if inside_a_team()
            else [_rulings(team, m) for m in (task if isinstance(task, list) else [task])]
        )
        if any(rulings):
            stream = _with_task_inspected(rulings, run, args, kwargs)
        else:
            if isinstance(task, list) and tg.released:
                # Run inside the outer team's turn, on what its guard made of a message this
                # team's guard released: this team's own agents get it as released here, and
                # not at all while a guard around holds it for its own review (its halt notice
                # would stop this team as if the halt were its own).
                released = [_as_released(m, tg) for m in task if not _held_around(m, tg)]
                kwargs = {**kwargs, "task": released}
            stream = run(*args, **kwargs)
        # A participant of another team (run inside one of its message handlers, asking for no
        # task messages) whose team kinguard does not guard: that team could not take
        # kinguard's events. A user's own run_stream(output_task_messages=False) gets them.
        if (
            kwargs.get("output_task_messages") is False
            and inside_a_team()
            and not VERDICT_EVENTS_WELCOME.get()
        ):
            return without_verdict_events(stream)
        return stream

    async def guarded_reset() -> None:
        await reset()
        try:
            tg.on_reset()
            if not _in_a_society_of_minds_turn():
                # AgentChat forgets the conversation (the thread, the agents' contexts, the
                # speaker order; the teams inside too), so a halt from it has no conversation
                # left to be released into. A SocietyOfMindAgent resets its team at the end of
                # every turn, which ends no conversation of the app's: a halt said in the turn
                # stays for review.
                for each in _guards_within(team):
                    each.abandon_halts("the team was reset without resolve_halt()")
        except Exception as exc:  # kinguard's own failure must not fail the app's reset
            tg.adapter_failed(exc)

    async def save_state() -> Mapping[str, Any]:
        state = dict(await save())
        state[STATE_KEY] = tg.state_dict()
        return state

    async def load_state(state: Mapping[str, Any]) -> None:
        await load(state)
        saved = state.get(STATE_KEY)
        if isinstance(saved, Mapping):
            tg.load_state(saved, team._message_factory)
        else:
            _log.warning(
                "kinguard.autogen.state_without_guard",
                team=tg.team_name,
                detail="loaded a team state saved without kinguard; guard state left as is",
            )

    installed.patch(team, "run_stream", guarded_run_stream)
    installed.patch(team, "reset", guarded_reset)
    installed.patch(team, "save_state", save_state)
    installed.patch(team, "load_state", load_state)


def _in_a_society_of_minds_turn() -> bool:
    """Whether this runs inside a ``SocietyOfMindAgent``'s turn, in its team or run by the app
    on its own: its ``on_messages_stream`` is among the frames awaiting this one. (No context
    variable or runtime handler tells: run on its own, the agent is in neither.)"""
    turn = SocietyOfMindAgent.on_messages_stream.__code__
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is turn:
            return True
        frame = frame.f_back
    return False


def _guards_to(team: Team, agent: str) -> list[TeamGuard] | None:
    """The guards of the teams from ``team`` down to the one ``agent`` speaks in, outside in
    (``None``: the agent is in none of them). By name, so it holds for teams built afresh."""
    installed = _installed(team) if isinstance(team, BaseGroupChat) else None
    own = [installed.team_guard] if installed is not None else []
    for participant in _speaking_in(team):
        if getattr(participant, "name", None) == agent and isinstance(participant, ChatAgent):
            return own
        nested = participant._team if isinstance(participant, SocietyOfMindAgent) else participant
        if isinstance(nested, Team):
            below = _guards_to(nested, agent)
            if below is not None:
                return own + below
    return None


def _rulings(team: Team, message: object) -> tuple[list[TeamGuard], TeamGuard] | None:
    """For a message a person released after the halt of a team nested in ``team``: the guards
    that have not ruled on it yet, outside in (those of the teams around the halted one), and
    the guard that halted it. ``None`` for anything else. The halting guard is the one whose
    stamp the message bears or, in teams built afresh from a saved state (new stamps), the
    innermost guard around its sender."""
    if not isinstance(message, BaseChatMessage) or META_RESOLVED not in message.metadata:
        return None
    path = _guards_to(team, message.source)
    if not path:
        return None
    stamps = [g.stamp for g in path]
    stamp = message.metadata.get(META_GUARD)
    ruling = stamps.index(stamp) if stamp in stamps else len(path) - 1
    return (path[:ruling], path[ruling]) if ruling else None


def _as_released(message: object, tg: TeamGuard) -> object:
    """The message as this team's guard released or delivered it, for its own agents: not as
    a guard around it delivered it to that guard's team."""
    if isinstance(message, BaseChatMessage):
        return tg.released.get(message.id, message)
    return message


def _held_around(message: object, tg: TeamGuard) -> bool:
    """Whether ``message`` is the halt notice a guard around this team put in place of a
    message this team's guard released: the person who rules on it releases it to everyone."""
    return (
        isinstance(message, BaseChatMessage)
        and message.id in tg.released
        and kinguard_action(message) is Action.HALT
        and message.metadata.get(META_GUARD) != tg.stamp
    )


async def _with_task_inspected(
    rulings: list[tuple[list[TeamGuard], TeamGuard] | None],
    run_stream: Callable[..., AsyncGenerator[Any, None]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, None]:
    """The run, on released messages as the guards around the halted team deliver them, each
    in turn from the inside out, as they would have had nobody halted them: redacted, a notice
    in place of a blocked message, or a halt notice that stops the team at once for that
    guard's own review. Each guard's verdict event comes first; each guard's own agents get
    the message as it delivered it (:func:`_as_released`). ``rulings``: :func:`_rulings` of
    each task message, in order."""
    task = kwargs["task"]
    delivered: list[Any] = []
    for message, ruling in zip(task if isinstance(task, list) else [task], rulings, strict=True):
        if ruling is not None:
            around, halted_by = ruling
            halted_by.remember_released(message)  # again, after a restore
            for tg in reversed(around):
                verdict, message = await tg.inspect(message)
                tg.remember_released(message)
                event = tg.event_for(verdict)
                if event is not None:
                    yield event
        delivered.append(message)
    kwargs = {**kwargs, "task": delivered if isinstance(task, list) else delivered[0]}
    async for item in run_stream(*args, **kwargs):
        yield item


async def _handing_out(
    team: BaseGroupChat,
    tg: TeamGuard,
    run_stream: Callable[..., AsyncGenerator[Any, None]],
    *args: Any,
    **kwargs: Any,
) -> AsyncGenerator[Any, None]:
    """A run on a released handoff to someone outside the team (the ``"user"`` of AgentChat's
    ``HandoffTermination`` pattern). Had kinguard not halted it, it was the sender's message:
    in the team's thread (and saved state), given to the others, and the team stopped on it.
    As the run's task it is all that, but a Swarm refuses a task handing off to someone outside
    it: for this run, its manager takes the task unchecked."""
    manager_id = AgentId(team._group_chat_manager_topic_type, team._team_id)
    manager: object = await team._runtime.try_get_underlying_agent_instance(manager_id)
    accepting = _Installed(tg)
    accepting.patch(manager, "validate_group_state", _accept_any)
    try:
        async for item in run_stream(*args, **kwargs):
            yield item
    finally:
        accepting.restore()


async def _accept_any(messages: list[BaseChatMessage] | None) -> None:
    """A group chat manager's ``validate_group_state`` that accepts any start."""
