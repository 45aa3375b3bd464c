"""What a core commit changed, and what control messages name, told to every process that
serves evaluations.

A gateway caches profile views for flag evaluations and holds open evaluation streams. When the
core runs in the same process it tells them directly. When it runs elsewhere the same notice
travels: over plain NATS from `consentgate core` processes (`announce_changes`: pseudonyms
only, never stored), or through a pipe from the core child `serve` starts in the embedded
shape (`core_process`). Each notice is one (source_id, pseudonym, segments_changed) per
profile: the view is forgotten and, when the subject's segments changed, its streams refetch.
A notice lost (NATS down, a full pipe) costs freshness only: the views expire by themselves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable

import msgspec
import structlog

from bus import BusMessage, ConsentChanged, Erase, OptOut, decode_payload
from gateway.evaluation_events import EvaluationEvents
from personalization import ViewCache

log = structlog.get_logger("consentgate.core_changes")

Change = tuple[str, str, bool]  # (source_id, pseudonym, whether its segments changed)
Sink = Callable[[bytes], Awaitable[None]]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[tuple[str, str, bool]])
# changes per notice: an encoded notice stays under PIPE_BUF (4,096 bytes), so that each write
# to the pipe is atomic (a pseudonym is 25 characters, a source id about as long)
_PER_NOTICE = 32
HELLO = b"[]"  # what a core child writes once its runtime is open: an empty notice


def collect(
    touched: Iterable[tuple[str, str]], segments_changed: Iterable[tuple[str, str]]
) -> list[Change]:
    changes = dict.fromkeys(touched, False)
    for source_id, subject in segments_changed:
        changes[(source_id, subject)] = True
    return [(source_id, pseudonym, flag) for (source_id, pseudonym), flag in changes.items()]


def apply(changes: Iterable[Change], views: ViewCache, streams: EvaluationEvents) -> None:
    for source_id, pseudonym, segments_changed in changes:
        views.forget(source_id, pseudonym)
        if segments_changed:
            streams.changed(source_id, [pseudonym])


async def announce(sink: Sink | None, changes: list[Change]) -> None:
    """Tell the other processes, a notice per `_PER_NOTICE` changes (no sink: there are none)."""
    if sink is None:
        return
    for start in range(0, len(changes), _PER_NOTICE):
        await sink(_encoder.encode(changes[start : start + _PER_NOTICE]))


def listener(views: ViewCache, streams: EvaluationEvents) -> Callable[[bytes], Awaitable[None]]:
    async def heard(payload: bytes) -> None:
        _apply_notice(payload, views, streams)

    return heard


def control_listener(
    views: ViewCache, streams: EvaluationEvents
) -> Callable[[BusMessage], Awaitable[None]]:
    """What this process forgets when any process publishes a control message (scaled out):
    cached profile views, and the evaluation streams of the subjects it names refetch."""

    async def heard(message: BusMessage) -> None:
        payload = decode_payload(message)
        match payload:
            case ConsentChanged() | OptOut():
                subjects: tuple[str, ...] = payload.subjects
            case Erase():
                subjects = (payload.subject, *payload.others)
            case _:
                return
        for subject in subjects:
            views.forget(payload.source_id, subject)
        streams.changed(payload.source_id, list(subjects))

    return heard


def _apply_notice(payload: bytes, views: ViewCache, streams: EvaluationEvents) -> None:
    try:
        changes = _decoder.decode(payload)
    except msgspec.DecodeError:
        log.warning("core_changes_undecodable", size=len(payload))
        return
    apply(changes, views, streams)


class PipeSink:
    """The core child's end: a notice per line, never blocking the child (a full pipe drops
    the notice: the gateway is not reading, and its views expire by themselves)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd

    async def __call__(self, payload: bytes) -> None:
        try:
            os.write(self._fd, payload + b"\n")
        except BlockingIOError:
            log.warning("core_changes_dropped", reason="pipe_full")
        except OSError as exc:  # the gateway is gone: the child stops on its own (parent watch)
            log.warning("core_changes_dropped", reason=type(exc).__name__)


class PipeReader:
    """The gateway's end: applies each notice the core child writes; `heard` once the child
    has said it is running (its first notice)."""

    def __init__(self, fd: int, views: ViewCache, streams: EvaluationEvents) -> None:
        self.heard = False
        self._fd = fd
        self._views = views
        self._streams = streams
        self._pending = bytearray()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def stop(self) -> None:
        self._loop.remove_reader(self._fd)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:  # every write end closed: no core child will write again
            self.stop()
            return
        self._pending.extend(data)
        while (end := self._pending.find(b"\n")) != -1:
            self.heard = True
            _apply_notice(bytes(self._pending[:end]), self._views, self._streams)
            del self._pending[: end + 1]
