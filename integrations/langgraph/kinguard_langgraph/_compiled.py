"""The compiled guarded graph: a ``CompiledStateGraph`` whose streams pass through the gate."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, cast

from langchain_core.runnables import RunnableConfig
from langgraph._internal._config import ensure_config
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph.state import CompiledStateGraph
from langgraph.typing import ContextT, InputT, OutputT, StateT

from kinguard import KinGuard
from kinguard.logs import get_logger
from kinguard_langgraph._core import EVENTS_KEY, GraphCore
from kinguard_langgraph._state import GUARD_KEY
from kinguard_langgraph._stream import EventGate, Item, StreamGate, StreamShape

__all__ = ["GuardedCompiledStateGraph"]

_log = get_logger("kinguard.langgraph")
_TASK_ID_KEY = "__pregel_task_id"  # langgraph's CONFIG_KEY_TASK_ID: set when run as a subgraph
_CHECKPOINTER_KEY = "__pregel_checkpointer"  # CONFIG_KEY_CHECKPOINTER: a parent's, lent
_MAP_KEY = "checkpoint_map"  # CONFIG_KEY_CHECKPOINT_MAP: {graph's namespace: its checkpoint id}
_NS_SEP, _NS_END = "|", ":"  # a subgraph's namespace: "<parent's>|<node>:<parent's task id>"
_RAW_KEY = "_kinguard_invoke"
"""Passed by our ``invoke`` through ``Pregel.invoke`` to ``stream``: the run is already restored
and only its final values and interrupts are returned, so the chunks need no cleaning."""


@dataclass(slots=True)
class _Runs:
    going: int = 0
    warned: bool = False


class _Threadless:
    """Counts a guard's top-level runs without a ``thread_id`` while they go on.

    Such runs are all the guard's one conversation: two at once (``graph.batch`` of unrelated
    inputs, ``asyncio.gather`` of ``ainvoke`` calls) give each other their risk, reminders and
    echo memory. Legitimate for one conversation split in two, far more often an app that
    forgot the thread id; as for AutoGen teams sharing a conversation, kinguard says so once.
    """

    _runs: ClassVar[weakref.WeakKeyDictionary[KinGuard, _Runs]] = weakref.WeakKeyDictionary()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, guard: KinGuard | None) -> None:
        self.guard = guard
        """``None``: a run with a thread id, or one inside another run (a subgraph's)."""

    def __enter__(self) -> None:
        if self.guard is None:
            return
        with self._lock:
            runs = self._runs.setdefault(self.guard, _Runs())
            runs.going += 1
            warn = runs.going > 1 and not runs.warned
            runs.warned = runs.warned or warn
        if warn:
            _log.warning(
                "kinguard.langgraph.shared_conversation",
                conversation_id=self.guard.conversation_id,
                detail="runs without a thread_id at once are one conversation (risk, reminders, "
                'echo memory); pass {"configurable": {"thread_id": ...}} per conversation',
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.guard is not None:
            with self._lock:
                self._runs[self.guard].going -= 1


class GuardedCompiledStateGraph(
    CompiledStateGraph[StateT, ContextT, InputT, OutputT],
    Generic[StateT, ContextT, InputT, OutputT],
):
    """What ``guard_graph(builder, guard).compile()`` returns. Use it like any compiled graph.

    ``stream``/``astream`` restore the guard's state for the thread from the checkpointer and
    deliver only inspected content in every stream mode; ``invoke``/``ainvoke``/``batch``
    restore it too. ``guard`` is the :class:`~kinguard.KinGuard` in use.
    """

    _kinguard: GraphCore

    def __init__(self, *, _kinguard: GraphCore | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if _kinguard is not None:
            self._kinguard = _kinguard

    @classmethod
    def adopt(
        cls, compiled: CompiledStateGraph[Any, Any, Any, Any], core: GraphCore
    ) -> GuardedCompiledStateGraph[Any, Any, Any, Any]:
        compiled.__class__ = cls
        guarded: GuardedCompiledStateGraph[Any, Any, Any, Any] = compiled  # type: ignore[assignment]
        guarded._kinguard = core
        channels = guarded.stream_channels_asis
        if not isinstance(channels, str):
            guarded.stream_channels = [c for c in channels if c != GUARD_KEY]
        return guarded

    @property
    def guard(self) -> KinGuard:
        return self._kinguard.guard

    # -- guard state from the checkpointer --------------------------------------------------

    def _saver(self, conf: Mapping[str, Any]) -> BaseCheckpointSaver[Any] | None:
        """The saver the run checkpoints to: a subgraph's is the one its parent lends it."""
        if self.checkpointer is False:
            return None
        saver = conf.get(_CHECKPOINTER_KEY, self.checkpointer)
        return saver if isinstance(saver, BaseCheckpointSaver) else None

    def _restore_steps(
        self, conf: Mapping[str, Any]
    ) -> Generator[RunnableConfig, CheckpointTuple | None, None]:
        """Restore the guard's state for the run: yields each checkpoint to read and is sent the
        saver's answer, so the sync and async runs share the lookup."""
        thread_id = str(conf["thread_id"])
        if _TASK_ID_KEY not in conf:
            target: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
            if conf.get("checkpoint_id"):
                target["checkpoint_id"] = conf["checkpoint_id"]
            found = yield RunnableConfig(configurable=target)
            self._kinguard.restore(_guard_channel(found), thread_id)
            return
        # A subgraph: the checkpoint its run resumes from (a halt it waits on, or the one history
        # of a ``checkpointer=True`` subgraph), else its latest earlier run on the thread.
        ns = str(conf.get("checkpoint_ns") or "")
        checkpoint_map: Mapping[str, Any] = conf.get(_MAP_KEY) or {}
        own = self._own_checkpoint_config(
            RunnableConfig(configurable={"thread_id": thread_id, "checkpoint_ns": ns})
        )
        own_ns = own["configurable"]["checkpoint_ns"]
        if checkpoint_map.get(own_ns):
            own["configurable"]["checkpoint_id"] = checkpoint_map[own_ns]
        channel = _guard_channel((yield own))
        if channel is None:
            channel = yield from _earlier_run(thread_id, ns, checkpoint_map)
        self._kinguard.restore(channel, thread_id, unless_behind=True)

    def _restore(self, config: RunnableConfig | None) -> None:
        try:
            conf = ensure_config(self.config, config)["configurable"]
            saver = self._saver(conf)
            if saver is None or not conf.get("thread_id"):
                return
            steps = self._restore_steps(conf)
            request = next(steps)
            while True:
                request = steps.send(saver.get_tuple(request))
        except StopIteration:
            pass
        except Exception as exc:
            _log.error("kinguard.restore_failed", error=self._kinguard.guard.describe_error(exc))

    async def _arestore(self, config: RunnableConfig | None) -> None:
        try:
            conf = ensure_config(self.config, config)["configurable"]
            saver = self._saver(conf)
            if saver is None or not conf.get("thread_id"):
                return
            steps = self._restore_steps(conf)
            request = next(steps)
            while True:
                try:
                    found = await saver.aget_tuple(request)
                except NotImplementedError:
                    found = await asyncio.to_thread(saver.get_tuple, request)
                request = steps.send(found)
        except StopIteration:
            pass
        except Exception as exc:
            _log.error("kinguard.restore_failed", error=self._kinguard.guard.describe_error(exc))

    def _threadless(self, config: RunnableConfig | None) -> _Threadless:
        """What counts the run among the guard's runs without a thread id, if it is one."""
        try:
            conf = (config or {}).get("configurable") or {}
            if not (conf.get("thread_id") or _TASK_ID_KEY in conf):
                # The graph's own config (``with_config``) or the run's context may name one.
                conf = ensure_config(self.config, config)["configurable"]
        except Exception:  # LangGraph will say what is wrong with the config, not kinguard
            return _Threadless(None)
        # A subgraph's run is part of its parent's: only the outermost run counts.
        nested = conf.get("thread_id") or _TASK_ID_KEY in conf
        return _Threadless(None if nested else self.guard)

    # -- streaming ----------------------------------------------------------------------------

    def _shape(
        self, config: RunnableConfig | None, stream_mode: Any, subgraphs: bool, version: str
    ) -> StreamShape:
        nested = config is not None and _TASK_ID_KEY in (config.get("configurable") or {})
        return StreamShape(
            stream_mode=stream_mode,
            subgraphs=subgraphs,
            version=version,
            default_mode="values" if nested else self.stream_mode,
            config=config,
        )

    def _emit(self, shape: StreamShape, gate: StreamGate, raw: Any) -> list[Any]:
        try:
            items: list[Item] = gate.feed(shape.parse(raw, inner=True))
        except Exception as exc:  # a gate bug must not leak uninspected content
            _log.error("kinguard.stream_gate_error", error=self._kinguard.guard.describe_error(exc))
            return []
        return [shape.format(item) for item in items if item.mode != "custom" or shape.wants_custom]

    def _clean(self, shape: StreamShape, raw: Any) -> Any:
        try:
            return shape.clean(raw)
        except Exception as exc:
            _log.error(
                "kinguard.stream_clean_error", error=self._kinguard.guard.describe_error(exc)
            )
            return raw

    # -- invoke: values and interrupts only ----------------------------------------------------

    @staticmethod
    def _plain_invoke(stream_mode: Any, print_mode: Any, kwargs: dict[str, Any]) -> bool:
        """An ``invoke`` that returns only the final values (and interrupts): kinguard's channel
        is not among the values, and nothing else of the run reaches the caller."""
        return stream_mode == "values" and not print_mode and not kwargs.get("subgraphs")

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = "values",
        print_mode: Any = (),
        **kwargs: Any,
    ) -> Any:
        if not self._plain_invoke(stream_mode, print_mode, kwargs):
            return super().invoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )
        with self._threadless(config):
            self._restore(config)
            kwargs[_RAW_KEY] = True
            return super().invoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = "values",
        print_mode: Any = (),
        **kwargs: Any,
    ) -> Any:
        if not self._plain_invoke(stream_mode, print_mode, kwargs):
            return await super().ainvoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )
        with self._threadless(config):
            await self._arestore(config)
            kwargs[_RAW_KEY] = True
            return await super().ainvoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )

    # -- streaming ------------------------------------------------------------------------------

    def stream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        subgraphs: bool = False,
        version: Any = "v1",
        **kwargs: Any,
    ) -> Iterator[Any]:
        if kwargs.pop(_RAW_KEY, False):  # from our ``invoke``, already restored
            return super().stream(
                input,
                config,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            )
        return self._guarded_stream(
            input, config, stream_mode=stream_mode, subgraphs=subgraphs, version=version, **kwargs
        )

    def _guarded_stream(
        self,
        input: Any,
        config: RunnableConfig | None,
        *,
        stream_mode: Any,
        subgraphs: bool,
        version: Any,
        **kwargs: Any,
    ) -> Iterator[Any]:
        with self._threadless(config):
            self._restore(config)
            shape = self._shape(config, stream_mode, subgraphs, version)
            if not shape.gated:
                for raw in super().stream(
                    input,
                    config,
                    stream_mode=shape.requested,
                    subgraphs=subgraphs,
                    version=version,
                    **kwargs,
                ):
                    yield self._clean(shape, raw)
                return
            gate = StreamGate(self._kinguard, shape)
            try:
                for raw in super().stream(
                    input,
                    shape.config,
                    stream_mode=cast(Any, shape.inner_modes),
                    subgraphs=subgraphs,
                    version=version,
                    **kwargs,
                ):
                    yield from self._emit(shape, gate, raw)
            finally:
                gate.close()

    def astream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        subgraphs: bool = False,
        version: Any = "v1",
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        if kwargs.pop(_RAW_KEY, False):  # from our ``ainvoke``, already restored
            return super().astream(
                input,
                config,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            )
        return self._guarded_astream(
            input, config, stream_mode=stream_mode, subgraphs=subgraphs, version=version, **kwargs
        )

    async def _guarded_astream(
        self,
        input: Any,
        config: RunnableConfig | None,
        *,
        stream_mode: Any,
        subgraphs: bool,
        version: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        with self._threadless(config):
            await self._arestore(config)
            shape = self._shape(config, stream_mode, subgraphs, version)
            if not shape.gated:
                async for raw in super().astream(
                    input,
                    config,
                    stream_mode=shape.requested,
                    subgraphs=subgraphs,
                    version=version,
                    **kwargs,
                ):
                    yield self._clean(shape, raw)
                return
            gate = StreamGate(self._kinguard, shape)
            try:
                async for raw in super().astream(
                    input,
                    shape.config,
                    stream_mode=cast(Any, shape.inner_modes),
                    subgraphs=subgraphs,
                    version=version,
                    **kwargs,
                ):
                    for out in self._emit(shape, gate, raw):
                        yield out
            finally:
                gate.close()

    def astream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Any = "v2",
        **kwargs: Any,
    ) -> Any:
        """``astream_events``: v1/v2 token events are gated like ``stream_mode="messages"``.

        (``version="v3"`` runs through :meth:`astream`, so it is gated there.)
        """
        if version not in ("v1", "v2"):
            return super().astream_events(input, config, version=version, **kwargs)
        return self._guarded_events(input, config, version=version, **kwargs)

    async def _guarded_events(
        self, input: Any, config: RunnableConfig | None, *, version: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        conf = dict((config or {}).get("configurable") or {})
        base = len([p for p in str(conf.get("checkpoint_ns") or "").split("|") if p])
        conf[EVENTS_KEY] = True
        patched = cast(RunnableConfig, {**(config or {}), "configurable": conf})
        gate = EventGate(self._kinguard, base)
        try:
            async for event in super().astream_events(input, patched, version=version, **kwargs):
                try:
                    released = gate.feed(event)
                except Exception as exc:
                    _log.error(
                        "kinguard.event_gate_error", error=self._kinguard.guard.describe_error(exc)
                    )
                    continue
                for out in released:
                    yield out
        finally:
            gate.close()


def _guard_channel(found: CheckpointTuple | None) -> Mapping[str, Any] | None:
    """kinguard's channel in a checkpoint, if it holds the guard's state."""
    if found is None:
        return None
    channel = (found.checkpoint.get("channel_values") or {}).get(GUARD_KEY)
    return channel if channel and channel.get("guard") is not None else None


def _earlier_run(
    thread_id: str, ns: str, checkpoint_map: Mapping[str, Any]
) -> Generator[RunnableConfig, CheckpointTuple | None, Mapping[str, Any] | None]:
    """The guard's state at the end of the subgraph's latest earlier run on the thread.

    Each run is stored under a namespace naming the parent's task, a new one each time: the
    parent's checkpoints, from the one this step runs from back, list their tasks' ids in
    their writes. The walk ends with the checkpoint the node's first run started from (its
    ``versions_seen`` has no entry for the node yet): a first run reads one parent checkpoint.
    """
    parent_ns, _, segment = ns.rpartition(_NS_SEP)
    node = segment.partition(_NS_END)[0]
    prefix = f"{parent_ns}{_NS_SEP}" if parent_ns else ""
    current = checkpoint_map.get(parent_ns)
    if not current:
        return None
    thread = {"thread_id": thread_id, "checkpoint_ns": parent_ns}
    parent = yield RunnableConfig(configurable={**thread, "checkpoint_id": current})
    if parent is None:
        # ``durability="async"`` may not have saved the parent's checkpoint for this step yet:
        # start from the latest saved, unless it is newer (ids sort by time): another run's.
        parent = yield RunnableConfig(configurable=thread)
        if parent is None or str(parent.config["configurable"]["checkpoint_id"]) > str(current):
            return None
    while parent is not None:
        for task_id in dict.fromkeys(write[0] for write in parent.pending_writes or ()):
            run_ns = f"{prefix}{node}{_NS_END}{task_id}"
            if run_ns == ns:
                continue
            run = RunnableConfig(configurable={"thread_id": thread_id, "checkpoint_ns": run_ns})
            channel = _guard_channel((yield run))
            if channel is not None:
                return channel
        if node not in (parent.checkpoint.get("versions_seen") or {}) or not parent.parent_config:
            return None
        parent = yield parent.parent_config
    return None
