"""``KinGuardMiddleware``: the same guard inside one LangChain ``create_agent`` agent.

* ``wrap_model_call`` puts the agent's identity block (and any pending nudge) into the system
  message of every model call, then inspects what the model returned before it enters the
  agent's state: redacted copies keep the message id, a blocked message becomes a signed
  notice without its tool calls (so the tools it asked for never run), and a halted message
  is withheld in a private state key (held after tool results, with a stand-in notice in the
  history until the decision).
* ``after_model`` (its own graph node, so resuming never repeats the model call) asks the
  human through ``interrupt()`` and delivers the approved or edited message, or ends the
  agent's turn on a rejection. If other ``after_model`` hooks ran while it waited, or another
  ``KinGuardMiddleware`` wraps this one's model call, the released message goes through the
  model node once more, as the model's reply, for them to see.
* each model call first restores the guard's state for the thread from the agent's
  checkpointed state, so a new process resumes with the same risk (never over a live state
  that has seen as many messages: another agent on the thread may have added risk since this
  one saved).

That state (and a withheld reply, until the decision) is in the agent's ``kinguard`` key.
``invoke()`` leaves it out of its output, but a middleware cannot take a key out of the agent
graph's streams: ``get_state()`` and the ``values``, ``updates``, ``tasks``, ``debug`` and
``checkpoints`` streams show it, withheld and blocked text included. A UI should get the
``messages`` stream or ``invoke()`` output, or the state without ``kinguard``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from typing import Annotated, Any, NotRequired, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
from langchain.agents.middleware.types import (
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from kinguard import Action, HumanDecision, KinGuard, Message, Verdict
from kinguard.logs import describe_error, get_logger
from kinguard_langgraph._core import (
    TaskVerdicts,
    calls_withheld,
    can_hold,
    halt_payload,
    parse_decision,
    unreviewable_halt,
    warn_undeclared,
)
from kinguard_langgraph._messages import (
    HELD_REPLY_NOTICE,
    delivered_as,
    guard_token,
    inspected_text,
    is_identity_message,
    mark_inspected,
    message_text,
    notice_message,
    released_as,
    tool_call_ids,
)
from kinguard_langgraph._state import GUARD_KEY, GuardStateChannel, Revisions, import_state
from kinguard_langgraph._stream import TokenHold

__all__ = ["KinGuardMiddleware"]

_log = get_logger("kinguard.langgraph")

_MODEL_CALLS = "thread_model_call_count"
"""``ModelCallLimitMiddleware``'s count of the thread's model calls (a private state key)."""

_guarding: ContextVar[bool] = ContextVar("kinguard_middleware_guarding", default=False)
"""Set while a ``KinGuardMiddleware`` waits for the model call it wraps: a halt held inside
it is released where that one cannot see the reply (see ``after_model``)."""


class KinGuardState(AgentState[Any]):
    """``create_agent`` state plus kinguard's private key (hidden from input and output)."""

    # The channel instance, not the reducer: LangGraph takes only the last annotation for a
    # reducer, and that is PrivateStateAttr (the key was a LastValue, and an update of the
    # pending halts alone dropped the guard's state).
    kinguard: NotRequired[Annotated[dict[str, Any], GuardStateChannel(), PrivateStateAttr]]


class KinGuardMiddleware(AgentMiddleware[KinGuardState, Any]):
    """Guard one ``create_agent`` agent: identity injection, inspection, actions, halts.

    ``agent_name`` is the agent's profile name in ``guard``; ``recipients`` the agents its
    messages reach (default: every other agent the guard knows). Two of them on one agent
    (say an org's guard and a team's, under different ``name``s) each hold and ask about
    their own halts, and each guard reads every reply, the one the other released after a
    halt too. They share the agent's one saved guard state: after a restart only the one
    guard's saved risk comes back, into both. Give such guards one policy instead.

    ``after_model`` hooks run in reverse order: those of middleware listed after this one run
    while it holds a reply for a person. A reply held after tool results has a stand-in in
    the history meanwhile (a notice, under its own id, gone at the decision), so that a hook
    looking for the last reply's tool calls (``HumanInTheLoopMiddleware``,
    ``ToolCallLimitMiddleware``) does not take the calls that already ran. Once the person
    approves, the reply goes through the model node again (the model is not called) for
    those hooks, and for a ``KinGuardMiddleware`` listed before this one, to see it once:
    ``HumanInTheLoopMiddleware`` asks the app's reviewer about its tool calls in either
    order, and ``ModelCallLimitMiddleware`` counts the model call once. That pass runs the
    ``before_model`` hooks again and is a step of its own in the graph's streams. Listed after
    every other middleware with an ``after_model`` hook, and alone on its agent, this one
    needs no such pass.
    """

    state_schema = KinGuardState

    def __init__(
        self,
        guard: KinGuard,
        *,
        agent_name: str,
        recipients: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(guard, KinGuard):  # else a failure deep inside the first model call
            raise TypeError(
                f"KinGuardMiddleware() takes a KinGuard as guard, not {type(guard).__name__}"
            )
        if agent_name not in {profile.name for profile in guard.agents}:
            warn_undeclared(agent_name, "give agent_name as its profile is named")
        super().__init__()
        self.guard = guard
        self._token = guard_token(guard)
        self.agent_name = agent_name
        self._recipients = tuple(recipients) if recipients is not None else None
        self._name = name or f"KinGuardMiddleware[{agent_name}]"
        self._revisions = Revisions(guard.policy.max_conversations)
        # Per middleware: another one on the agent (another guard's policy, under another
        # name) holds and asks about its own halts. The default name keeps the key halts
        # saved before had.
        self._pending_key = (
            f"middleware:{agent_name}" if name is None else f"middleware:{agent_name}:{name}"
        )

    @property
    def name(self) -> str:
        return self._name

    # -- helpers ------------------------------------------------------------------------------

    def _conversation_id(self) -> str:
        try:
            thread = (get_config().get("configurable") or {}).get("thread_id")
        except RuntimeError:
            thread = None
        return str(thread or self.guard.conversation_id)

    @staticmethod
    def _can_hold() -> bool:
        """A halt here can wait for its decision (see ``can_hold``)."""
        try:
            return can_hold(get_config())
        except RuntimeError:  # not run in a graph: nothing could resume it
            return False

    def _recipient_names(self) -> tuple[str, ...]:
        if self._recipients is not None:
            return self._recipients
        return tuple(p.name for p in self.guard.agents if p.name != self.agent_name)

    def _restore(self, state: Any) -> None:
        """Restore the guard's state for the thread from the agent's (checkpointed) state.

        At each model call, before the prompt's nudge is read: not in a ``before_agent`` hook,
        which LangGraph runs as a node of its own on every run of the agent (≈ 0.16 ms a turn
        on fast models). A live state that has seen as many messages is kept (see
        ``import_state``), so after the first call in a process this only compares counts.
        """
        try:
            channel = state.get("kinguard")
            if channel and channel.get("guard") is not None:
                conversation_id = self._conversation_id()
                import_state(self.guard, conversation_id, channel["guard"], unless_behind=True)
                self._revisions.seen(conversation_id, int(channel.get("rev", 0)))
        except Exception as exc:
            _log.error(
                "kinguard.restore_failed",
                agent=self.agent_name,
                error=self.guard.describe_error(exc),
            )

    def _with_identity(self, request: ModelRequest[Any]) -> tuple[ModelRequest[Any], str | None]:
        """The request with the agent's identity and pending nudge in its system prompt, and the
        nudge (read, not taken: a call that fails and is retried must get it again)."""
        try:
            if any(is_identity_message(m) for m in request.messages):
                # A guarded graph around this agent already put the identity in.
                return request, None
            nudge = self.guard.peek_nudge(self.agent_name, self._conversation_id())
            current = request.system_message
            base = message_text(current) if current is not None else None
            prompt = self.guard.system_prompt(self.agent_name, base)
            if nudge:
                prompt = f"{prompt.rstrip()}\n\n{nudge}" if prompt.strip() else nudge
            if prompt == (base or ""):
                return request, nudge
            if current is not None and not isinstance(current.content, str):
                added = prompt[len(base or "") :].strip()
                content = [*current.content, {"type": "text", "text": added}]
                system = current.model_copy(update={"content": content})
            else:
                system = SystemMessage(content=prompt)
            return request.override(system_message=system), nudge
        except Exception as exc:
            _log.error(
                "kinguard.adapter_error",
                agent=self.agent_name,
                stage="identity",
                error=self.guard.describe_error(exc),
            )
            return request, None  # not shown: still pending

    def _nudged(self, nudge: str | None) -> None:
        """The model answered a prompt with ``nudge``: the guard no longer holds it for the
        agent (unless the agent has earned another meanwhile)."""
        if nudge is not None:
            conversation_id = self._conversation_id()
            if self.guard.peek_nudge(self.agent_name, conversation_id) == nudge:
                self.guard.pop_nudge(self.agent_name, conversation_id)

    def _messages(self, response: Any) -> tuple[ModelResponse[Any], Command[Any] | None]:
        if isinstance(response, ExtendedModelResponse):
            return response.model_response, response.command
        if isinstance(response, AIMessage):
            return ModelResponse(result=[response]), None
        return response, None

    def _to_message(self, message: BaseMessage, turn: int, conversation_id: str) -> Message:
        return Message(
            conversation_id=conversation_id,
            sender=self.agent_name,
            recipients=self._recipient_names(),
            text=inspected_text(message)[0],
            turn=turn,
            metadata={"framework": "langchain", "message_id": message.id},
        )

    def _apply(
        self,
        response: ModelResponse[Any],
        command: Command[Any] | None,
        verdicts: list[tuple[int, Verdict]],
        conversation_id: str,
        state: KinGuardState,
        *,
        outer: bool,
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        result: list[BaseMessage] = []
        withheld: list[dict[str, Any]] = []
        by_index = dict(verdicts)
        dropped_calls: set[str] = set()
        stand_in: str | None = None
        # A structured response is parsed from the reply (its text, or a tool call's
        # arguments): it stands only while every inspected message goes out as it was.
        intact = True
        for index, message in enumerate(response.result):
            verdict = by_index.get(index)
            if withheld:
                withheld.append({"message": message, "verdict": None})
                continue
            if verdict is None:
                if isinstance(message, ToolMessage) and message.tool_call_id in dropped_calls:
                    continue  # e.g. "Returning structured response: ..." of a blocked call
                result.append(message)
                continue
            halt = verdict.action is Action.HALT
            if halt and self._can_hold():
                if _answered_calls(state["messages"]):
                    # Hooks that look for the reply's tool calls (HumanInTheLoopMiddleware,
                    # ToolCallLimitMiddleware) take the last reply in the history: without
                    # one here, the one whose calls already ran, asked about or counted again.
                    # Its own id, not the held reply's: a ``messages`` stream shows no message
                    # twice, and the reply must show once released.
                    notice = notice_message(
                        message, HELD_REPLY_NOTICE, sender=self.agent_name, action="halt"
                    )
                    stand_in = notice.id
                    result.append(notice)
                withheld.append(
                    {
                        "message": mark_inspected(message, verdict.action.value, self._token),
                        "verdict": verdict.model_dump(mode="json"),
                    }
                )
                continue
            # A halt that no one could review fails closed (see ``unreviewable_halt``).
            delivered = None if halt else delivered_as(message, verdict.delivered_text)
            intact = intact and delivered is message
            if delivered is None:  # blocked, or a change to what a tool call says
                if halt:
                    unreviewable_halt(self.guard, verdict, agent=self.agent_name)
                elif verdict.delivered_text is not None:
                    calls_withheld(verdict, message, agent=self.agent_name)
                dropped_calls.update(tool_call_ids(message))
                # A halt's notice says that a person reviews the message: none does here.
                said = None if halt else verdict.notice
                result.append(
                    notice_message(
                        message,
                        said or f"[kinguard blocked a message from {self.agent_name}]",
                        sender=self.agent_name,
                        action=verdict.action.value,
                    )
                )
            else:
                result.append(mark_inspected(delivered, verdict.action.value, self._token))
        if not verdicts:
            return response if command is None else ExtendedModelResponse(response, command)
        rev, snapshot = self._revisions.snapshot(self.guard, conversation_id)
        # A halt still pending here was skipped: the app sent new input instead of a decision.
        # The key merges updates, so the record is cleared, or ``after_model`` would ask about
        # (and deliver) that old reply after this one.
        channel: dict[str, Any] = {
            "rev": rev,
            "guard": snapshot,
            "pending": {self._pending_key: None},
        }
        structured = response.structured_response if intact else None
        record: dict[str, Any] = {
            "agent": self.agent_name,
            "conversation_id": conversation_id,
            "step": _graph_step(),
        }
        if withheld:
            record["entries"] = withheld
            record["model_calls"] = cast("dict[str, Any]", state).get(_MODEL_CALLS, 0)
            if outer:
                record["outer"] = True
            if stand_in is not None:
                record["stand_in"] = stand_in
            if response.structured_response is not None:
                # Given back if the human approves the reply as it is (None: it cannot be);
                # otherwise ``after_model`` ends the turn, as below.
                record["structured_response"] = structured
                structured = None
            channel["pending"] = {self._pending_key: record}
        elif not intact and response.structured_response is not None:
            # The agent would call the model again for the structured response it now lacks (a
            # stubborn model forever): ``after_model`` ends the turn on the delivered reply.
            record["entries"] = []
            channel["pending"] = {self._pending_key: record}
        new_response = ModelResponse(result=result, structured_response=structured)
        return _with_channel(new_response, command, channel)

    def _inspectable(self, response: ModelResponse[Any]) -> list[tuple[int, BaseMessage]]:
        return [(i, m) for i, m in enumerate(response.result) if isinstance(m, AIMessage)]

    # -- hooks ------------------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        replayed = self._replayed(request)
        if replayed is not None:
            return replayed
        self._restore(request.state)
        outer = _guarding.get()
        held = _hold_stream()
        guarding = _guarding.set(True)
        try:
            prompted, nudge = self._with_identity(request)
            raw = handler(prompted)
        finally:
            _guarding.reset(guarding)
            _stop_holding(held)
        self._nudged(nudge)
        response, command = self._messages(raw)
        try:
            conversation_id = self._conversation_id()
            turn = len(request.messages)
            verdicts = [
                (i, self.guard.inspect(self._to_message(m, turn + n, conversation_id)))
                for n, (i, m) in enumerate(self._inspectable(response))
            ]
            state = cast("KinGuardState", request.state)
            out = self._apply(response, command, verdicts, conversation_id, state, outer=outer)
        except Exception as exc:
            out = self._failed(response, command, exc)
        self._release(held, request, response, out)
        return out

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        replayed = self._replayed(request)
        if replayed is not None:
            return replayed
        self._restore(request.state)
        outer = _guarding.get()
        held = _hold_stream()
        guarding = _guarding.set(True)
        try:
            prompted, nudge = self._with_identity(request)
            raw = await handler(prompted)
        finally:
            _guarding.reset(guarding)
            _stop_holding(held)
        self._nudged(nudge)
        response, command = self._messages(raw)
        try:
            conversation_id = self._conversation_id()
            turn = len(request.messages)
            verdicts = [
                (i, await self.guard.ainspect(self._to_message(m, turn + n, conversation_id)))
                for n, (i, m) in enumerate(self._inspectable(response))
            ]
            state = cast("KinGuardState", request.state)
            out = self._apply(response, command, verdicts, conversation_id, state, outer=outer)
        except Exception as exc:
            out = self._failed(response, command, exc)
        self._release(held, request, response, out)
        return out

    def _replayed(self, request: ModelRequest[Any]) -> ExtendedModelResponse[Any] | None:
        """The reply ``after_model`` released late, as this model call's reply (see there).

        Only while the history is as it was at the release: after new input the model is called.
        """
        state = cast("KinGuardState", request.state)
        record = ((state.get("kinguard") or {}).get("pending") or {}).get(self._pending_key)
        if not record or "replay" not in record or _last_id(state["messages"]) != record["after"]:
            return None
        response = ModelResponse(
            result=list(record["replay"]),
            structured_response=record.get("structured_response"),
        )
        return _with_channel(response, None, {"pending": {self._pending_key: None}})

    def _release(
        self,
        held: _Held | None,
        request: ModelRequest[Any],
        response: ModelResponse[Any],
        out: ModelResponse[Any] | ExtendedModelResponse[Any],
    ) -> None:
        """Let the held tokens of the model call out as its messages were delivered."""
        if held is None:
            return
        try:
            result = out.model_response if isinstance(out, ExtendedModelResponse) else out
            delivered = {m.id: message_text(m) for m in result.result if m.id is not None}
            inspected = [m for _, m in self._inspectable(response) if m.id is not None]
            replacements: dict[str, str | None] = {
                str(m.id): delivered.get(str(m.id)) for m in inspected
            }
            held[0].release(
                TaskVerdicts(
                    task="",
                    replacements=replacements,
                    known_ids=frozenset(m.id for m in request.messages if m.id is not None),
                    modified=any(replacements[str(m.id)] != message_text(m) for m in inspected),
                    is_agent=True,
                )
            )
        except Exception as exc:  # never break the agent: what was held stays unshown
            _log.warning(
                "kinguard.stream_report_failed",
                agent=self.agent_name,
                error=self.guard.describe_error(exc),
            )

    def _failed(
        self, response: ModelResponse[Any], command: Command[Any] | None, error: BaseException
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        _log.error(
            "kinguard.adapter_error",
            agent=self.agent_name,
            error=self.guard.describe_error(error),
            on_error=self.guard.policy.error_mode,
        )
        if self.guard.policy.error_mode == "closed":
            response = ModelResponse(
                result=[
                    notice_message(
                        m,
                        f"[kinguard blocked a message from {self.agent_name}: inspection failure]",
                        sender=self.agent_name,
                        action=Action.BLOCK.value,
                    )
                    if isinstance(m, AIMessage)
                    else m
                    for m in response.result
                ],
                structured_response=None,
            )
        # As in ``_apply``: a skipped halt must not come back after this reply.
        return _with_channel(response, command, {"pending": {self._pending_key: None}})

    @hook_config(can_jump_to=["end", "model"])
    def after_model(self, state: KinGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        channel = state.get("kinguard") or {}
        record = (channel.get("pending") or {}).get(self._pending_key)
        if not record or "replay" in record:
            return None
        delivered: list[BaseMessage] = []
        rejected = False
        unchanged = True
        dropped_calls: set[str] = set()
        decided: list[tuple[Verdict, HumanDecision]] = []
        for entry in record.get("entries", ()):
            message = entry["message"]
            if entry.get("verdict") is None:
                if not rejected and not (
                    isinstance(message, ToolMessage) and message.tool_call_id in dropped_calls
                ):
                    delivered.append(message)
                continue
            verdict = Verdict.model_validate(entry["verdict"])
            decision = parse_decision(
                interrupt(halt_payload(verdict, message, self.name, record)),
                quote=self.guard.telemetry.capture_content,
            )
            decided.append((verdict, decision))
            text = self.guard.resolve_halt(verdict, decision)
            released = released_as(message, text, edited=decision.type == "edit")
            if released is None:  # rejected, or approved while another rule blocks it
                rejected = True
                continue
            if released is not message:
                unchanged = False
                # Calls the released message no longer makes: their results go too.
                dropped_calls.update(set(tool_call_ids(message)) - set(tool_call_ids(released)))
            # Marked again: the guard that ruled may be another process's, with another token.
            delivered.append(mark_inspected(released, verdict.action.value, self._token))
        # Here, not at each interrupt: the hook re-runs from the start for every answer.
        for verdict, decision in decided:
            self.guard.record_decision(verdict, decision)
        # The stand-in goes, whatever the decision (checked: removing a missing id raises).
        history = state["messages"]
        kept = [m for m in history if m.id != record.get("stand_in")]
        removed = [RemoveMessage(id=record["stand_in"])] if len(kept) < len(history) else []
        update: dict[str, Any] = {
            "messages": [*removed, *delivered],
            GUARD_KEY: {"pending": {self._pending_key: None}},
        }
        lacks_structured = "structured_response" in record
        if not rejected and unchanged and record.get("structured_response") is not None:
            update["structured_response"] = record["structured_response"]
            lacks_structured = False
        # Without its structured response the agent would call the model again (and a model
        # that insists would be halted again, forever): the turn ends on the delivered reply.
        if (rejected and not delivered) or not record.get("entries") or lacks_structured:
            update["jump_to"] = "end"
        elif delivered and (_ran_late(record) or record.get("outer")):
            # The reply reaches the history as the model's reply, through the model node again
            # (``_replayed`` gives it instead of calling the model), for those that did not see
            # it. The ``after_model`` hooks of middleware listed after this one ran between the
            # model call and here, on a history without it: HumanInTheLoopMiddleware found no
            # tool call to ask the app's reviewer about, and the calls would run unreviewed.
            # Another KinGuardMiddleware listed before this one inspected the model call's
            # reply without it: its guard would never read it (nor block or hold it).
            replay: dict[str, Any] = {"replay": delivered, "after": _last_id(kept)}
            if "structured_response" in update:
                replay["structured_response"] = update.pop("structured_response")
            update["messages"] = removed
            update[GUARD_KEY]["pending"] = {self._pending_key: replay}
            if _MODEL_CALLS in state:
                # Back to the count before the model call, which the pass counts (again, if
                # its hook already did), and is checked against the limit it already passed:
                # the replay is no model call.
                update[_MODEL_CALLS] = record.get("model_calls", 0)
            update["jump_to"] = "model"
        return update

    @hook_config(can_jump_to=["end", "model"])
    async def aafter_model(
        self, state: KinGuardState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        return self.after_model(state, runtime)


def _graph_step() -> int | None:
    """The agent graph's step the running hook is in (each ``after_model`` hook is a step)."""
    try:
        step = (get_config().get("metadata") or {}).get("langgraph_step")
    except RuntimeError:  # outside a graph run
        return None
    return step if isinstance(step, int) else None


def _answered_calls(history: Sequence[BaseMessage]) -> bool:
    """Whether the last reply in ``history`` makes tool calls (their results follow it)."""
    for message in reversed(history):
        if isinstance(message, AIMessage):
            return bool(message.tool_calls)
    return False


def _last_id(history: Sequence[BaseMessage]) -> str | None:
    return history[-1].id if history else None


def _ran_late(record: dict[str, Any]) -> bool:
    """Whether other ``after_model`` hooks ran after the model call that ``record`` holds."""
    called, now = record.get("step"), _graph_step()
    return isinstance(called, int) and now is not None and now > called + 1


def _with_channel(
    response: ModelResponse[Any], command: Command[Any] | None, channel: dict[str, Any]
) -> ExtendedModelResponse[Any]:
    """``response`` with an update of kinguard's key, merged into the model call's own."""
    update: dict[str, Any] = {GUARD_KEY: channel}
    if command is not None and isinstance(command.update, dict):
        update = {**command.update, **update}
    return ExtendedModelResponse(model_response=response, command=Command(update=update))


_Held = tuple[TokenHold, Token[Any]]


def _hold_stream() -> _Held | None:
    """Hold what the agent graph's token streams would show of the model call until its
    messages are inspected: the call reads its callbacks from the running config."""
    config = var_child_runnable_config.get()
    if not config:
        return None
    try:
        installed = TokenHold.install(config)
    except Exception as exc:  # the reply is still inspected; only its tokens go unheld
        _log.error("kinguard.adapter_error", stage="hold", error=describe_error(exc, quote=True))
        return None
    if installed is None:
        return None
    hold, held_config = installed
    return hold, var_child_runnable_config.set(held_config)


def _stop_holding(held: _Held | None) -> None:
    if held is not None:
        var_child_runnable_config.reset(held[1])
