"""Fan-out: one redacted stream to several sinks, where one failing does not stop the others."""
from __future__ import annotations

import logging

import av

from ..errors import SinkError
from ..types import Frame
from .sink import Sink

log = logging.getLogger(__name__)


def copy_packet(packet: av.Packet) -> av.Packet:
    """A new packet with the same data, timestamps, time base and source stream.
    Sinks rebase and restamp the packets they mux, so each needs its own."""
    out = av.Packet(bytes(packet))
    out.pts, out.dts, out.time_base = packet.pts, packet.dts, packet.time_base
    out.is_keyframe = packet.is_keyframe
    out.stream = packet.stream
    return out


class FanOut:
    """Every frame and audio packet goes to each of ``sinks`` (StreamSink or
    FileSink), e.g. two RTMP servers plus a local recording.

    A sink that raises SinkError is aborted and left out from then on, and the others
    go on; SinkError is raised only when no sink is left. Each sink gets its own copy
    of each audio packet (sinks restamp them); frames are shared, and only read.
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        if not self.sinks:
            raise ValueError("FanOut needs at least one sink")
        self.failures: list[SinkError] = []

    @property
    def backlog(self) -> int:
        """Frames the furthest-behind sink still holds (see StreamSink.backlog)."""
        return max((getattr(sink, "backlog", 0) for sink in self.sinks), default=0)

    @property
    def frame_s(self) -> float:
        """Seconds per frame of the slowest sink's own thread."""
        return max((getattr(sink, "frame_s", 0.0) for sink in self.sinks), default=0.0)

    def write_frame(self, frame: Frame) -> None:
        self._each(lambda sink: sink.write_frame(frame))

    def write_audio(self, packet: av.Packet) -> None:
        self._each(lambda sink: sink.write_audio(copy_packet(packet)))

    def commit(self) -> None:
        """Commit every sink; raises only if none succeeded (see ``failures``)."""
        self._each(lambda sink: sink.commit())

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()

    def _each(self, call) -> None:
        for sink in list(self.sinks):
            try:
                call(sink)
            except SinkError as exc:
                log.error("one destination failed, the others go on: %s", exc)
                self.failures.append(exc)
                self.sinks.remove(sink)
                sink.abort()
        if not self.sinks:
            raise self.failures[-1]
