"""``make run``: start the whole system, print where each service listens, stop it all on Ctrl-C.

``python -m trading_assets.launcher --sim-port 9100 --dagster-port 3000 ...`` (the Makefile passes
its variables) starts the exchange simulator, ``dagster dev``, the sidecar, the MLflow UI and, with
``--history-days`` above 0, the first-run bootstrap, each with this interpreter (no wrapper
process in between), under a :class:`~trading_assets.supervisor.Supervisor`: Ctrl-C ends every
process they started, and the exit status is 0 after a requested stop, 1 when a service ended on
its own (a failed bootstrap is reported and leaves the services running).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trading_assets.supervisor import GRACE_S, Service, Supervisor

# MLflow 3 starts one job runner and a huey consumer per GenAI job type (~170 MB each) unless told
# not to; the registry UI needs none of them, and one uvicorn worker serves it.
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
MLFLOW_WORKERS = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the whole system until Ctrl-C.")
    parser.add_argument("--market", choices=["sim", "binance"], default="sim")
    parser.add_argument("--sim-host", default="127.0.0.1")
    parser.add_argument("--sim-port", type=int, default=9100)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="the simulator's symbols")
    parser.add_argument("--replay", help="a recording the simulator replays on its live stream")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--sidecar-port", type=int, default=8700)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument(
        "--history-days", type=int, default=3, help="days the bootstrap backfills (0: no bootstrap)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("dagster_home/data"))
    parser.add_argument(
        "--market-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the processes that talk to the market (repeatable)",
    )
    parser.add_argument("--grace", type=float, default=GRACE_S, help="seconds before SIGKILL")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace, python: str = sys.executable) -> list[Service]:
    """The services ``make run`` starts, in order."""
    market_env = dict(item.split("=", 1) for item in args.market_env)
    local = "127.0.0.1"
    mlflow_dir = args.data_dir.resolve() / "mlflow"
    services = []
    if args.market == "sim":
        replay = ["--replay", args.replay] if args.replay else []
        services.append(
            Service(
                "simulator",
                [python, "-m", "streaming.simulator", "--host", args.sim_host,
                 "--port", str(args.sim_port), "--symbols", args.symbols, *replay],
                listens_on=(args.sim_host, args.sim_port),
            )
        )  # fmt: skip
    sidecar_url = {"SIDECAR_URL": f"http://{local}:{args.sidecar_port}"}
    services += [
        Service(
            "dagster",
            [python, "-m", "dagster", "dev", "-w", "workspace.yaml",
             "-h", local, "-p", str(args.dagster_port)],
            env=market_env | sidecar_url,
        ),
        Service(
            "sidecar",
            [python, "-m", "streaming", "--port", str(args.sidecar_port)],
            env=market_env,
        ),
        Service(
            "mlflow",
            [python, "-m", "mlflow", "server",
             "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
             "--host", local, "--port", str(args.mlflow_port),
             "--workers", str(MLFLOW_WORKERS)],
            env=MLFLOW_ENV,
            log=mlflow_dir / "server.log",
        ),
    ]  # fmt: skip
    if args.history_days > 0:
        services.append(
            Service(
                "bootstrap",
                [python, "-m", "trading_assets.bootstrap", "--days", str(args.history_days),
                 "--wait-for", f"http://{local}:{args.dagster_port}"],
                env=market_env,
                one_shot=True,
            )
        )  # fmt: skip
    return services


def banner(args: argparse.Namespace) -> str:
    local = "127.0.0.1"
    market = (
        "Binance"
        if args.market == "binance"
        else f"simulator on http://{args.sim_host}:{args.sim_port}"
    )
    mlflow_log = args.data_dir.resolve() / "mlflow" / "server.log"
    return "\n".join([
        "",
        f"  Dagster UI   http://{local}:{args.dagster_port}",
        f"  MLflow UI    http://{local}:{args.mlflow_port}  (model: "
        f"http://{local}:{args.mlflow_port}/#/models/signal; log: {mlflow_log})",
        f"  sidecar API  http://{local}:{args.sidecar_port}/predictions/latest"
        "  (/health /ready /metrics)",
        f"  market       {market}",
        "  bootstrap    " + (f"{args.history_days} days of history, then a first model"
                             if args.history_days > 0 else "skipped (HISTORY_DAYS=0)"),
        "  Ctrl-C stops everything",
        "",
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return Supervisor(plan(args), grace_s=args.grace).run(banner(args))


if __name__ == "__main__":
    sys.exit(main())
