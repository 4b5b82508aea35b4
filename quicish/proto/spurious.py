"""Spurious loss: packets declared lost that the peer acknowledges afterwards.

Loss recovery remembers the last packets it declared lost (per packet number space, with
how far below the largest acknowledged packet each one was). An ACK that covers one of
them shows the loss was reordering, not loss, and then:

* adaptive reordering (``adaptive``): the packet threshold grows to cover the distance
  seen (up to ``MAX_PACKET_THRESHOLD``) and the time threshold by 1/8 RTT (up to 2 RTTs),
  so the same reordering is not taken for loss again (RFC 9002 6.1 allows both);
* undo (``undo``): when every in-flight packet of the loss episode that reduced the
  congestion window turns out to have arrived, the controller goes back to its state
  before the reduction (``CongestionController.undo_congestion_event``).
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_PACKET_THRESHOLD = 31
MAX_TIME_THRESHOLD = 2.0  # RTTs
_REMEMBERED = 128  # lost packets remembered per space (the oldest are forgotten)
_NO_EPISODE: set[tuple[int, int]] = set()  # no episode: shared, never changed
#: No loss yet: shared empty tables, never changed (a connection's own are made at its
#: first loss: most connections have none).
NO_LOSSES: tuple[dict[int, int], dict[int, int], dict[int, int]] = ({}, {}, {})


class SpuriousLosses:
    """The lost packets that may still be acknowledged, and what their ACK changes."""

    __slots__ = (
        "adaptive",
        "episode",
        "lost",
        "packet_threshold",
        "spurious",
        "time_threshold",
        "undo",
        "undone",
    )

    def __init__(
        self, packet_threshold: int, time_threshold: float, *, adaptive: bool, undo: bool
    ) -> None:
        self.packet_threshold = packet_threshold
        self.time_threshold = time_threshold
        self.adaptive = adaptive
        self.undo = undo
        #: per space: packet number -> its distance below the largest acked when declared lost
        self.lost: tuple[dict[int, int], dict[int, int], dict[int, int]] = NO_LOSSES
        #: (space, pn) of the in-flight packets lost in the episode that reduced the window
        #: (while there is none, a shared empty set: only a non-empty one is changed)
        self.episode: set[tuple[int, int]] = _NO_EPISODE
        self.spurious = 0  # packets declared lost, then acknowledged
        self.undone = 0  # window reductions undone

    def on_lost(self, space: int, pns: Sequence[int], largest_acked: int, reduced: bool) -> None:
        """In-flight packets ``pns`` were declared lost; ``reduced``: this loss started a new
        window reduction (a new episode) rather than joining the current one."""
        if self.lost is NO_LOSSES:
            self.lost = ({}, {}, {})
        remembered = self.lost[space]
        for pn in pns:
            remembered[pn] = largest_acked - pn
        while len(remembered) > _REMEMBERED:
            del remembered[next(iter(remembered))]
        if not self.undo:
            return
        if reduced:
            self.episode = {(space, pn) for pn in pns}
        elif self.episode:
            self.episode.update((space, pn) for pn in pns)

    def on_ack(self, space: int, ranges_descending: Sequence[tuple[int, int]]) -> bool:
        """An ACK arrived with lost packets remembered in ``space``; returns True when it
        acknowledged the last packet of the reducing episode (time to undo)."""
        remembered = self.lost[space]
        found = [pn for pn in remembered if any(a <= pn < b for a, b in ranges_descending)]
        if not found:
            return False
        episode = self.episode
        undo = False
        for pn in found:
            distance = remembered.pop(pn)
            self.spurious += 1
            if self.adaptive:
                if distance + 1 > self.packet_threshold:
                    self.packet_threshold = min(distance + 1, MAX_PACKET_THRESHOLD)
                self.time_threshold = min(self.time_threshold + 0.125, MAX_TIME_THRESHOLD)
            if episode:
                episode.discard((space, pn))
                undo = undo or not episode
        if undo:
            self.undone += 1
        return undo

    def forget_episode(self) -> None:
        """The reduced window can no longer be undone (persistent congestion, new path)."""
        self.episode = _NO_EPISODE
