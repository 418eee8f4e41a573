"""Who the Locust chargers are: their charge point ids and id tag pool, and the CSVs that
register them with a CSMS that rejects strangers.

A charger's id is `{prefix}{worker}-{number:05d}`: the Locust worker's index (0 when Locust
runs alone) and the user's number within its process, counted from 1. Ids are unique across
users and workers, and a rerun with the same options reuses the same ids. The token pool is
`{token_prefix}{k:04d}` for k below the pool size (the same tags as `loadtest.loadgen`).

    python -m loadtest.locust_fleet stations --workers 2 --users 500 > stations.csv
    python -m loadtest.locust_fleet tokens --tokens 1000 > tokens.csv
    csms stations import stations.csv && csms tokens import tokens.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

DEFAULT_ID_PREFIX = "LT-"
DEFAULT_TOKEN_PREFIX = "TAG"
DEFAULT_TOKENS = 1000


def charge_point_id(prefix: str, worker: int, number: int) -> str:
    return f"{prefix}{worker}-{number:05d}"


def worker_of(charge_point_id_: str, prefix: str) -> int:
    """The worker index an id was made by (for checks across workers)."""
    return int(charge_point_id_.removeprefix(prefix).split("-", 1)[0])


def token_pool(prefix: str = DEFAULT_TOKEN_PREFIX, size: int = DEFAULT_TOKENS) -> list[str]:
    if size < 1:
        raise ValueError("the token pool needs at least one token")
    return [f"{prefix}{k:04d}" for k in range(size)]


def station_ids(prefix: str, workers: int, users: int) -> Iterator[str]:
    for worker in range(workers):
        for number in range(1, users + 1):
            yield charge_point_id(prefix, worker, number)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="CSVs registering the Locust chargers.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    stations = kinds.add_parser("stations", help="`csms stations import` CSV (header: id)")
    stations.add_argument("--prefix", default=DEFAULT_ID_PREFIX)
    stations.add_argument("--workers", type=int, default=1, help="Locust worker processes")
    stations.add_argument(
        "--users", type=int, required=True, help="users per worker (count respawns too)"
    )
    tokens = kinds.add_parser("tokens", help="`csms tokens import` CSV (all Accepted)")
    tokens.add_argument("--prefix", default=DEFAULT_TOKEN_PREFIX)
    tokens.add_argument("--tokens", type=int, default=DEFAULT_TOKENS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    out = sys.stdout
    if args.kind == "stations":
        out.write("id\n")
        out.writelines(f"{sid}\n" for sid in station_ids(args.prefix, args.workers, args.users))
    else:
        out.write("id_tag,status\n")
        out.writelines(f"{tag},Accepted\n" for tag in token_pool(args.prefix, args.tokens))


if __name__ == "__main__":
    main()
