"""The browser test's real parts: the exchange simulator, `dagster dev` (webserver + daemon) on a
free port with a throwaway DAGSTER_HOME and warehouse, and Debian's Chromium driven by Playwright.

Deselect with ``-m "not e2e"``; it runs by default in ``make test``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streaming.simulator.server import run_simulator_in_thread
from tests.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"

SEED, TRADES_PER_DAY, SYMBOL = 11, 2_000, "BTCUSDT"  # as the simulator names it
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the partitions' instrument
HISTORY_DAYS = 6  # partitions from six days ago to today: a short date bar in the pickers
STARTUP_TIMEOUT_S = 240


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: drives the Dagster UI in Chromium against a real dagster dev instance"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so the page fixture knows when a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@dataclass(frozen=True)
class DagsterUI:
    url: str
    home: Path
    data: Path
    log: Path
    symbol: str  # the simulator's (and the bulk files')
    instrument: str  # the partitions', the feature store's and the sidecar's
    history_start: dt.date
    seed: int = SEED
    trades_per_day: int = TRADES_PER_DAY

    def day(self, offset: int) -> dt.date:
        """A history day, counted from the first partition."""
        return self.history_start + dt.timedelta(days=offset)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium (`make test` installs it with apt-get); no browser download at run time."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium not found on PATH (`make services` installs Debian's chromium)")
    return found


def _wait_for_webserver(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:]
    raise TimeoutError(f"the Dagster webserver did not answer in {STARTUP_TIMEOUT_S} s:\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C to dagster dev's own process group, then SIGKILL to whatever is left of it
    (its webserver, daemon and code servers can hang in shutdown on a busy machine)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def dagster_ui(chromium_executable: str, tmp_path_factory) -> Iterator[DagsterUI]:
    """`dagster dev` as `make run` starts it, on a free port, fed by the simulator's bulk files."""
    root = tmp_path_factory.mktemp("dagster_e2e")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data, log = root / "data", root / "dagster_dev.log"
    history_start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=HISTORY_DAYS)
    port = free_port()
    with run_simulator_in_thread(
        symbols=[SYMBOL], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "TRADING_DATA_DIR": str(data),
            "TRADING_HISTORY_START": history_start.isoformat(),
            "TRADING_INSTRUMENTS": INSTRUMENT,
            "BINANCE_BULK_BASE_URL": sim.http_url,
            # Dagster's own knob: evaluate freshness every 5 s instead of 30 s.
            "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",
        }
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    str(BIN / "dagster"), "dev", "-w", "workspace.yaml",
                    "-h", "127.0.0.1", "-p", str(port),
                ],
                cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_for_webserver(url, process, log)
                yield DagsterUI(url, home, data, log, SYMBOL, INSTRUMENT, history_start)
            finally:
                _stop(process)


class Screenshots:
    """PNGs in pytest's tmp dir always; also in docs/screenshots with SAVE_SCREENSHOTS=1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.publish = os.environ.get("SAVE_SCREENSHOTS") == "1"

    def save(self, page, name: str, **options) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), **options)
        if self.publish:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_SCREENSHOTS / path.name)
        return path


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Screenshots:
    return Screenshots(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def browser(chromium_executable: str):
    """Module-scoped on purpose: while it is open, Playwright's sync API marks an asyncio loop as
    running on the main thread, which would break every pytest-asyncio test collected after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, dagster_ui: DagsterUI, screenshots: Screenshots, request):
    """A fresh tab on the Dagster UI; a failing test leaves a screenshot of where it stood."""
    context = browser.new_context(viewport={"width": 1400, "height": 850}, base_url=dagster_ui.url)
    context.set_default_timeout(60_000)
    tab = context.new_page()
    # Dagster's one-time "Join the Dagster community" prompt can cover any page.
    tab.add_locator_handler(
        tab.get_by_role("dialog").filter(has_text="Join the Dagster community"),
        lambda dialog: dialog.get_by_role("button", name="Skip").click(),
    )
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        failed = screenshots.folder / f"FAILED-{request.node.name}.png"
        tab.screenshot(path=str(failed), full_page=True)
        print(f"screenshot of the failure: {failed}; dagster dev log: {dagster_ui.log}")
    context.close()
