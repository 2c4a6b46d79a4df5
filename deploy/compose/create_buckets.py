"""Create the S3 buckets the settings name: docker compose's one-shot ``buckets`` service.

Every ``s3://`` location of the production settings (landing, models, the Iceberg warehouse,
Feast's exports), the Dagster instance's compute-log bucket and each ``--also`` URI (MLflow's
artifact destination) names a bucket. Each is made unless it exists, on the S3 server the
settings point at (SeaweedFS in compose), with the settings' own credentials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from trading_assets.lib.settings import Settings, SettingsError, load_settings

S3_LOCATIONS = (
    "TRADING_LANDING_URI",
    "TRADING_MODELS_URI",
    "ICEBERG_WAREHOUSE",
    "FEAST_OFFLINE_ROOT",
)
BUCKET_VARIABLES = ("DAGSTER_COMPUTE_LOGS_BUCKET",)
EXISTING = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def bucket_names(settings: Settings, also: Iterable[str] = ()) -> list[str]:
    """The buckets of the settings' ``s3://`` locations, the named buckets and ``also``."""
    uris = [settings.raw.get(name, "") for name in S3_LOCATIONS] + list(also)
    names = {urlsplit(uri).netloc for uri in uris if uri.startswith("s3://")}
    names |= {settings.raw[name] for name in BUCKET_VARIABLES if settings.raw.get(name)}
    return sorted(names)


def create_buckets(settings: Settings, names: Iterable[str]) -> list[str]:
    """Create each bucket unless it exists; the ones made by this call."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    path_style = {"addressing_style": "path"} if settings.s3.endpoint_url else {}
    client = boto3.client("s3", config=Config(s3=path_style), **settings.s3.boto3_options())
    made = []
    for name in names:
        try:
            client.create_bucket(Bucket=name)
            made.append(name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in EXISTING:
                raise
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="create_buckets.py", description="Create the S3 buckets the settings name."
    )
    parser.add_argument(
        "--also", action="append", default=[], metavar="S3_URI", help="another location's bucket"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"create_buckets.py: {error}", file=sys.stderr)
        return 2
    names = bucket_names(settings, args.also)
    made = create_buckets(settings, names)
    for name in names:
        print(f"s3://{name} {'created' if name in made else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
