"""Store outages while the system runs, and what the sidecar's API said through them.

:class:`Outages` stops a server for a while in a thread of its own and records when it was down;
:class:`ApiWatch` polls the sidecar's ``/health``, ``/ready`` and ``/predictions/latest`` with a
short client timeout the whole time, so a test can ask what every answer was during each outage.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from trading_assets.servers.addresses import Controls

POLL_TIMEOUT_S = 2.0  # a client that waits longer than this for an answer counts it as none
POLL_EVERY_S = 0.5
PATHS = ("/health", "/ready", "/predictions/latest", "/metrics")
TOGETHER_S = 1.0  # outages begun within this of each other are one incident
SETTLE_S = 2.0  # a prediction polled this soon after a stop may have been made before it
SHIP_FAILING = "sidecar_landing_ship_failing"
SHIP_BACKLOG = "sidecar_landing_ship_backlog_segments"
ONLINE_UP = "sidecar_online_store_up"
METRICS = (SHIP_FAILING, SHIP_BACKLOG, ONLINE_UP)


@dataclass(frozen=True)
class Window:
    """When a store was down (``time.monotonic()``): from ``start`` until it served again at
    ``end``; the same instants as ``time.time()`` (what Dagster's records carry) in ``*_wall``."""

    store: str
    start: float
    end: float
    start_wall: float
    end_wall: float

    def holds(self, at: float) -> bool:
        return self.start <= at <= self.end


def windows_of(windows: list[Window], at_wall: float, grace_s: float) -> list[Window]:
    """The windows an event at ``at_wall`` (``time.time()``) belongs to: of those begun before
    it and ended at most ``grace_s`` before it, the newest (with any begun together with it)."""
    begun = [w for w in windows if w.start_wall <= at_wall <= w.end_wall + grace_s]
    newest = max((w.start_wall for w in begun), default=0.0)
    return [w for w in begun if w.start_wall >= newest - TOGETHER_S]


@dataclass
class Outages:
    """Each store's outages: stopped, kept down ``seconds``, started again (on the same port and
    data), in a thread, so the caller keeps watching the system meanwhile."""

    windows: list[Window] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)

    def begin(
        self, name: str, server: Controls, seconds: float, start_takes_s: float = 0.0
    ) -> threading.Thread:
        """Stop ``server`` now and have it serve again about ``seconds`` later, in the
        background: it is started ``start_takes_s`` (its own start time) before that."""

        def cycle() -> None:
            start, start_wall = time.monotonic(), time.time()
            try:
                server.stop()
                time.sleep(max(0.0, seconds - start_takes_s - (time.monotonic() - start)))
            finally:
                try:
                    server.start()
                except BaseException as error:  # raised again by wait()
                    self._errors.append(error)
                window = Window(name, start, time.monotonic(), start_wall, time.time())
                self.windows.append(window)

        thread = threading.Thread(target=cycle, name=f"outage-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def wait(self) -> None:
        """Until every store is back; a store that did not start again fails here."""
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]

    def of(self, store: str) -> list[Window]:
        return [window for window in self.windows if window.store == store]


@dataclass(frozen=True)
class Answer:
    """One poll: what the path answered at ``at`` (``status`` None: no answer in time)."""

    at: float
    path: str
    status: int | None
    body: dict
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status is not None


@dataclass
class ApiWatch:
    """Polls the sidecar's API every ``POLL_EVERY_S`` from a thread until stopped."""

    base_url: str
    symbol: str
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def running(self) -> Iterator[ApiWatch]:
        thread = threading.Thread(target=self._poll, name="api-watch", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def during(self, window: Window, path: str) -> list[Answer]:
        return [a for a in self.answers if a.path == path and window.holds(a.at)]

    def _poll(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=POLL_TIMEOUT_S) as client:
            while not self._stop.is_set():
                for path in PATHS:
                    self.answers.append(self._ask(client, path))
                self._stop.wait(POLL_EVERY_S)

    def _ask(self, client: httpx.Client, path: str) -> Answer:
        params = {"symbol": self.symbol} if path.startswith("/predictions") else {}
        at = time.monotonic()
        try:
            response = client.get(path, params=params)
        except httpx.TimeoutException as error:
            return Answer(at, path, None, {}, f"{type(error).__name__} after {POLL_TIMEOUT_S} s")
        except httpx.TransportError as error:  # not listening yet (or any more)
            return Answer(at, path, None, {}, f"{type(error).__name__}: {error}")
        if path == "/metrics":
            return Answer(at, path, response.status_code, _metrics(response.text))
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:200]}
        return Answer(at, path, response.status_code, body if isinstance(body, dict) else {})


def _metrics(text: str) -> dict:
    """The shipping gauges of a Prometheus page, by name (absent: not exported yet)."""
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            values[name] = float(value)
    return values


@dataclass(frozen=True)
class Said:
    """What the sidecar's API answered while one store was down (its window), and after."""

    window: Window
    ready_reasons: frozenset[str]  # /ready's reasons during the window
    levels: tuple[int, ...]  # /predictions/latest's fallback levels during the window (settled)
    prediction_reasons: tuple[str, ...]
    shipping_failed: bool  # /metrics said the newest shipping attempt failed, during the window
    shipping_recovered: bool  # and said it succeeded again afterwards
    online_store_down: bool  # /metrics said the online store did not answer, during the window
    online_store_back: bool  # and said it answered again afterwards


def what_was_said(watch: ApiWatch, outages: Outages) -> dict[str, list[Said]]:
    """Per store, what the API answered during each of its outages (in order)."""
    said: dict[str, list[Said]] = defaultdict(list)
    for window in outages.windows:
        ready = watch.during(window, "/ready")
        predictions = [
            a
            for a in watch.during(window, "/predictions/latest")
            if a.at >= window.start + SETTLE_S
        ]
        metrics = watch.during(window, "/metrics")
        after = [a for a in watch.answers if a.path == "/metrics" and a.at > window.end]
        said[window.store].append(
            Said(
                window,
                frozenset(r for a in ready for r in a.body.get("reasons", ())),
                tuple(a.body["fallback_level"] for a in predictions if "fallback_level" in a.body),
                tuple(a.body.get("reason", "") for a in predictions if "fallback_level" in a.body),
                any(a.body.get(SHIP_FAILING) == 1 for a in metrics),
                any(a.body.get(SHIP_FAILING) == 0 for a in after),
                any(a.body.get(ONLINE_UP) == 0 for a in metrics),
                any(a.body.get(ONLINE_UP) == 1 for a in after),
            )
        )
    return dict(said)


def unanswered(watch: ApiWatch, outages: Outages) -> list[str]:
    """The polls no answer came to once the API first answered, with the stores down then."""
    answered = [a.at for a in watch.answers if a.answered]
    if not answered:
        return ["the API never answered"]
    missed = [a for a in watch.answers if not a.answered and a.at > answered[0]]
    return [
        f"{a.path} at {a.at - answered[0]:.1f} s: {a.error} (down: "
        f"{', '.join(w.store for w in outages.windows if w.holds(a.at)) or 'none'})"
        for a in missed
    ]
