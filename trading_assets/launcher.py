"""``make run``: start the whole system, print where each service listens, stop it all on Ctrl-C.

``python -m trading_assets.launcher --sim-port 9100 --dagster-port 3000 ...`` (the Makefile passes
its variables) starts the exchange simulator, ``dagster dev``, the sidecar, the MLflow UI and, with
``--history-days`` above 0, the first-run bootstrap, each with this interpreter (no wrapper
process in between), under a :class:`~trading_assets.supervisor.Supervisor`: Ctrl-C ends every
process they started, and the exit status is 0 after a requested stop, 1 when a service ended on
its own (a failed bootstrap is reported and leaves the services running).

``--profile prod`` (``make run-prod``) first starts PostgreSQL, Redis, S3 and the MLflow server
under the data folder (:mod:`trading_assets.servers.profile`) and runs the system on them with
``TRADING_ENV=prod``. Either way the settings every process will build are checked before anything
starts, and a bad value ends the launch with the settings' one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trading_assets.lib.settings import Settings, SettingsError
from trading_assets.servers import MLFLOW_ENV, MLFLOW_WORKERS
from trading_assets.servers.profile import BUCKET, ProdPorts, ProdProfile
from trading_assets.supervisor import GRACE_S, Service, Supervisor


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the whole system until Ctrl-C.")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="local",
        help="local: embedded stores; prod: PostgreSQL, Redis, S3 and an MLflow server it starts",
    )
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
    ports = ProdPorts()
    for name in ("postgres", "redis", "s3"):
        parser.add_argument(f"--{name}-port", type=int, default=getattr(ports, name))
    return parser.parse_args(argv)


def plan(args: argparse.Namespace, python: str = sys.executable) -> list[Service]:
    """The services ``make run`` starts, in order, for the chosen profile."""
    return PROFILES[args.profile](args, python)


def local_plan(args: argparse.Namespace, python: str) -> list[Service]:
    """Embedded stores under the data folder; the MLflow UI reads the sqlite store."""
    mlflow_dir = args.data_dir.resolve() / "mlflow"
    mlflow = Service(
        "mlflow",
        [python, "-m", "mlflow", "server",
         "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
         "--host", LOCAL, "--port", str(args.mlflow_port),
         "--workers", str(MLFLOW_WORKERS)],
        env=MLFLOW_ENV,
        log=mlflow_dir / "server.log",
    )  # fmt: skip
    system = system_services(args, python, {}, {})
    return [*system[:-1], mlflow, *system[-1:]] if args.history_days > 0 else [*system, mlflow]


def prod_plan(args: argparse.Namespace, python: str) -> list[Service]:
    """The four servers first, then the system on them, the Dagster side and the sidecar each
    with a data folder of its own."""
    profile = prod_profile(args)
    dagster_env = profile.environment("dagster") | {"DAGSTER_HOME": str(profile.dagster_home())}
    sidecar_env = profile.environment("sidecar")
    return [*profile.services(python), *system_services(args, python, dagster_env, sidecar_env)]


def prod_profile(args: argparse.Namespace) -> ProdProfile:
    ports = ProdPorts(args.postgres_port, args.redis_port, args.s3_port, args.mlflow_port)
    return ProdProfile.under(args.data_dir, ports)


def system_services(
    args: argparse.Namespace,
    python: str,
    dagster_env: dict[str, str],
    sidecar_env: dict[str, str],
) -> list[Service]:
    """The market, Dagster, the sidecar and the bootstrap; ``*_env``: each side's settings."""
    market_env = dict(item.split("=", 1) for item in args.market_env)
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
    sidecar_url = {"SIDECAR_URL": f"http://{LOCAL}:{args.sidecar_port}"}
    services += [
        Service(
            "dagster",
            [python, "-m", "dagster", "dev", "-w", "workspace.yaml",
             "-h", LOCAL, "-p", str(args.dagster_port)],
            env=market_env | sidecar_url | dagster_env,
        ),
        Service(
            "sidecar",
            [python, "-m", "streaming", "--port", str(args.sidecar_port)],
            env=market_env | sidecar_env,
        ),
    ]  # fmt: skip
    if args.history_days > 0:
        services.append(
            Service(
                "bootstrap",
                [python, "-m", "trading_assets.bootstrap", "--days", str(args.history_days),
                 "--wait-for", f"http://{LOCAL}:{args.dagster_port}"],
                env=market_env | dagster_env,
                one_shot=True,
            )
        )  # fmt: skip
    return services


PROFILES = {"local": local_plan, "prod": prod_plan}
LOCAL = "127.0.0.1"


def banner(args: argparse.Namespace) -> str:
    market = (
        "Binance"
        if args.market == "binance"
        else f"simulator on http://{args.sim_host}:{args.sim_port}"
    )
    data = args.data_dir.resolve()
    mlflow_log = (data / "servers" if args.profile == "prod" else data) / "mlflow" / "server.log"
    lines = [
        "",
        f"  Dagster UI   http://{LOCAL}:{args.dagster_port}",
        f"  MLflow UI    http://{LOCAL}:{args.mlflow_port}  (model: "
        f"http://{LOCAL}:{args.mlflow_port}/#/models/signal; log: {mlflow_log})",
        f"  sidecar API  http://{LOCAL}:{args.sidecar_port}/predictions/latest"
        "  (/health /ready /metrics)",
        f"  market       {market}",
        "  bootstrap    " + (f"{args.history_days} days of history, then a first model"
                             if args.history_days > 0 else "skipped (HISTORY_DAYS=0)"),
    ]  # fmt: skip
    if args.profile == "prod":
        profile = prod_profile(args)
        lines += [
            f"  PostgreSQL   {LOCAL}:{profile.postgres.port} (databases dagster, iceberg, feast, "
            "mlflow)",
            f"  Redis        {LOCAL}:{profile.redis.port} (Feast's online store)",
            f"  S3           {profile.s3.endpoint_url} (bucket {BUCKET}; SeaweedFS)",
            f"  secrets      {profile.root / 'secrets.json'} (mode 600)",
        ]
    return "\n".join([*lines, "  Ctrl-C stops everything", ""])


def check_settings(args: argparse.Namespace) -> str | None:
    """The settings every process will build, checked before anything starts: None when they
    hold, else the one-line error naming the variable."""
    sides = (
        [{}]
        if args.profile == "local"
        else [prod_profile(args).environment(side) for side in ("dagster", "sidecar")]
    )
    for side in sides:
        try:
            Settings.from_environ(os.environ | side)
        except SettingsError as error:
            return str(error)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if (problem := check_settings(args)) is not None:
        print(f"[run] {problem}", file=sys.stderr)
        return 2
    if args.profile == "prod":
        prod_profile(args).prepare()
    return Supervisor(plan(args), grace_s=args.grace).run(banner(args))


if __name__ == "__main__":
    sys.exit(main())
