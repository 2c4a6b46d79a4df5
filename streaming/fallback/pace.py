"""How much longer than a busy feed a symbol's feed may stay silent: its own recent pace.

A silence alone cannot tell a quiet market from a stalled feed: both deliver nothing. What tells
them apart is how this feed usually behaves. A busy feed (Binance's book tickers arrive every few
milliseconds) that goes silent for a few seconds is broken; a sparse one (the synthetic market's
quiet spells pass tens of seconds without an order) is just quiet. So the age budgets, which fit
a busy feed, are extended for each symbol by its *quiet extension*: ``factor`` times the longest
silence the feed showed over the last ``window`` of its messages, at most ``cap``.

Silences are seen where the controller looks: at its decisions, as ``now − newest message``. A
silence is learned once it ends (a newer message arrives), and only if it never outlasted the
silence allowed while it lasted (``base`` plus the extension then): a stall, or a feed stuttering
back to life, must not teach the feed to be trusted through the next one. The silence under way
never extends its own allowance either.
"""

from __future__ import annotations

from collections import deque

from streaming.fallback.decision import NS_PER_S


class QuietExtension:
    """One symbol's quiet extension (see the module docstring), fed at every decision."""

    def __init__(self, base_s: float, factor: float, cap_s: float, window_s: float) -> None:
        self.base_ns = round(base_s * NS_PER_S)
        self.factor = factor
        self.cap_ns = round(cap_s * NS_PER_S)
        self.window_ns = round(window_s * NS_PER_S)
        self.extension_ns = 0
        self._newest_ns: int | None = None
        self._longest_ns = 0  # of the silence under way, so far
        self._outlasted = False  # whether the silence under way outlasted its allowance
        # Learned silences as (message that began it, length), their lengths decreasing: the
        # front is the longest in the window (a sliding maximum).
        self._learned: deque[tuple[int, int]] = deque()

    def observe(self, now_ns: int, newest_ns: int) -> float:
        """Take one decision's view (its time and the feed's newest message); returns the
        extension for this decision, in seconds."""
        if self._newest_ns is None or newest_ns > self._newest_ns:
            if self._newest_ns is not None:
                self._end_silence(self._newest_ns)
            self._newest_ns = newest_ns
        learned = self._learned
        while learned and learned[0][0] < newest_ns - self.window_ns:
            learned.popleft()
        longest = learned[0][1] if learned else 0
        self.extension_ns = min(self.cap_ns, round(self.factor * longest))
        silence_ns = now_ns - self._newest_ns
        self._longest_ns = max(self._longest_ns, silence_ns)
        self._outlasted |= silence_ns > self.base_ns + self.extension_ns
        return self.extension_ns / NS_PER_S

    def _end_silence(self, began_ns: int) -> None:
        learned, length = self._learned, self._longest_ns
        if not self._outlasted:
            while learned and learned[-1][1] <= length:
                learned.pop()
            learned.append((began_ns, length))
        self._longest_ns, self._outlasted = 0, False
