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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trading_assets.lib.settings import Settings, SettingsError
from trading_assets.servers import MLFLOW_ENV, MLFLOW_WORKERS
from trading_assets.servers.profile import BUCKET, ProdPorts, ProdProfile
from trading_assets.supervisor import GRACE_S, Service, Supervisor

LOCAL = "127.0.0.1"


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
    return run_profile(args).services(python)


@dataclass(frozen=True)
class LocalRun:
    """Embedded stores under the data folder; the MLflow UI reads the sqlite store."""

    args: argparse.Namespace

    def services(self, python: str) -> list[Service]:
        args = self.args
        mlflow = Service(
            "mlflow",
            [python, "-m", "mlflow", "server",
             "--backend-store-uri", f"sqlite:///{self.mlflow_log().parent / 'mlflow.db'}",
             "--host", LOCAL, "--port", str(args.mlflow_port),
             "--workers", str(MLFLOW_WORKERS)],
            env=MLFLOW_ENV,
            log=self.mlflow_log(),
        )  # fmt: skip
        system = system_services(args, python, {}, {})
        if args.history_days > 0:  # the bootstrap last
            return [*system[:-1], mlflow, *system[-1:]]
        return [*system, mlflow]

    def side_environments(self) -> list[dict[str, str]]:
        return [{}]

    def mlflow_log(self) -> Path:
        return self.args.data_dir.resolve() / "mlflow" / "server.log"

    def store_lines(self) -> list[str]:
        return []

    def prepare(self) -> None:
        """Nothing: every embedded store makes itself on first use."""


@dataclass(frozen=True)
class ProdRun:
    """The four servers first, then the system on them, the Dagster side and the sidecar each
    with a data folder of its own."""

    args: argparse.Namespace

    def profile(self) -> ProdProfile:
        args = self.args
        ports = ProdPorts(args.postgres_port, args.redis_port, args.s3_port, args.mlflow_port)
        return ProdProfile.under(args.data_dir, ports)

    def services(self, python: str) -> list[Service]:
        profile = self.profile()
        dagster_env = profile.environment("dagster") | {"DAGSTER_HOME": str(profile.dagster_home())}
        sidecar_env = profile.environment("sidecar")
        system = system_services(self.args, python, dagster_env, sidecar_env)
        return [*profile.services(python), *system]

    def side_environments(self) -> list[dict[str, str]]:
        return [self.profile().environment(side) for side in ("dagster", "sidecar")]

    def mlflow_log(self) -> Path:
        return self.profile().root / "servers" / "mlflow" / "server.log"

    def store_lines(self) -> list[str]:
        profile = self.profile()
        return [
            f"  PostgreSQL   {LOCAL}:{profile.postgres.port} (databases dagster, iceberg, feast, "
            "mlflow)",
            f"  Redis        {LOCAL}:{profile.redis.port} (Feast's online store)",
            f"  S3           {profile.s3.endpoint_url} (bucket {BUCKET}; SeaweedFS)",
            f"  secrets      {profile.root / 'secrets.json'} (mode 600)",
        ]

    def prepare(self) -> None:
        self.profile().prepare()


PROFILES: dict[str, Callable[[argparse.Namespace], LocalRun | ProdRun]] = {
    "local": LocalRun,
    "prod": ProdRun,
}


def run_profile(args: argparse.Namespace) -> LocalRun | ProdRun:
    return PROFILES[args.profile](args)


def system_services(
    args: argparse.Namespace,
    python: str,
    dagster_env: dict[str, str],
    sidecar_env: dict[str, str],
) -> list[Service]:
    """The market, Dagster, the sidecar and the bootstrap; ``*_env``: each side's settings."""
    market_env = market_environment(args)
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


def market_environment(args: argparse.Namespace) -> dict[str, str]:
    """The ``--market-env`` pairs: the environment of the processes that talk to the market."""
    return dict(item.split("=", 1) for item in args.market_env)


def instruments(args: argparse.Namespace) -> tuple[str, ...]:
    """The instruments the system ingests and serves (the market environment's, else this
    process's ``TRADING_INSTRUMENTS`` or its default)."""
    return Settings.from_environ(os.environ | market_environment(args)).instruments


def banner(args: argparse.Namespace) -> str:
    market = (
        "Binance"
        if args.market == "binance"
        else f"simulator on http://{args.sim_host}:{args.sim_port}"
    )
    profile = run_profile(args)
    lines = [
        "",
        f"  Dagster UI   http://{LOCAL}:{args.dagster_port}",
        f"  MLflow UI    http://{LOCAL}:{args.mlflow_port}  (model: "
        f"http://{LOCAL}:{args.mlflow_port}/#/models/signal; log: {profile.mlflow_log()})",
        f"  sidecar API  http://{LOCAL}:{args.sidecar_port}/predictions/latest"
        "  (/health /ready /metrics)",
        f"  market       {market}",
        f"  instruments  {', '.join(instruments(args))}",
        "  bootstrap    " + (f"{args.history_days} days of history, then a first model"
                             if args.history_days > 0 else "skipped (HISTORY_DAYS=0)"),
    ]  # fmt: skip
    return "\n".join([*lines, *profile.store_lines(), "  Ctrl-C stops everything", ""])


def check_settings(args: argparse.Namespace) -> str | None:
    """The settings every process will build, checked before anything starts: None when they
    hold, else the one-line error naming the variable."""
    for side in run_profile(args).side_environments():
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
    run_profile(args).prepare()
    return Supervisor(plan(args), grace_s=args.grace).run(banner(args))


if __name__ == "__main__":
    sys.exit(main())
