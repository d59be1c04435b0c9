"""The `hakon` command: thin wrappers over library functions.

hakon serve [flags]            run the service (flags from the settings table)
hakon token create ...         mint a token offline with the data dir's secret
hakon query 'EXPR' [...]       run PromQL against a running server, print a table
hakon rules check FILE...      validate Prometheus rule files, like `promtool check rules`
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hakon import __version__
from hakon.auth.secret import SecretError, read_secret
from hakon.auth.tokens import SCOPES, TokenAuthority
from hakon.config import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    flag_help,
    parse_duration,
    setting_fields,
)
from hakon.errors import InvalidRequest


def _serve_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="run Hakon",
        description="Run the whole service in one process. Every flag can also be set "
        f"with a {ENV_PREFIX}* environment variable; flags win over the environment.",
    )
    for f in setting_fields():
        flag = "--" + f.name.replace("_", "-")
        if f.metadata.get("repeatable"):
            p.add_argument(
                flag, dest=f.name, action="append", default=None, metavar="PATH", help=flag_help(f)
            )
        elif f.type in ("bool", bool):
            p.add_argument(
                flag,
                dest=f.name,
                action="store_const",
                const="true",
                default=None,
                help=flag_help(f),
            )
        else:
            p.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=flag_help(f)
            )


def _token_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("token", help="manage tokens offline")
    tsub = p.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser(
        "create",
        help="mint a token with the data dir's secret; prints only the token",
        description="Mint a token offline with the data dir's secret (or HAKON_AUTH_SECRET).",
    )
    c.add_argument("--data-dir", default=os.environ.get(ENV_PREFIX + "DATA_DIR", "hakon-data"))
    c.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        dest="scopes",
        help="a scope to grant; repeat for several",
    )
    c.add_argument("--ttl", default="24h", help="lifetime, e.g. 30m, 24h, 7d (default 24h)")
    c.add_argument("--subject", default=None, help="the token's subject (default: derived)")
    c.add_argument("--node-id", default=None, help="bind the token to one node")
    c.add_argument("--cluster-id", default=None, help="bind the token to one cluster")


def _query_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "query",
        help="run a PromQL query against a running Hakon and print a table",
        description="Instant query at --time (default now), or a range query with "
        "--start/--end/--step. Times: RFC 3339, Unix seconds, now, now-1h.",
    )
    p.add_argument("expr", help="PromQL expression")
    p.add_argument("--time", help="evaluation time (instant query)")
    p.add_argument("--start", help="range start (default now-1h when --end or --step is given)")
    p.add_argument("--end", help="range end (default now)")
    p.add_argument("--step", help="range step, e.g. 15s or 1m (default: about 250 points)")
    p.add_argument(
        "--url",
        default=os.environ.get(ENV_PREFIX + "URL", "http://127.0.0.1:9420"),
        help="the server (default $HAKON_URL or http://127.0.0.1:9420)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get(ENV_PREFIX + "TOKEN"),
        help="a token with metrics:read (default $HAKON_TOKEN)",
    )


def _rules_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rules", help="work with Prometheus rule files")
    rsub = p.add_subparsers(dest="rules_command", required=True)
    c = rsub.add_parser("check", help="validate rule files (exit 1 on any problem)")
    c.add_argument("files", nargs="+", help="rule files (YAML, Prometheus format)")


def _rules_check(files: list[str]) -> int:
    from hakon.alerting.rules import RuleFileError, load_file

    failed = False
    for path in files:
        print(f"Checking {path}")
        try:
            groups = load_file(path)
        except RuleFileError as exc:
            failed = True
            print("  FAILED:")
            for problem in exc.problems:
                print(f"    {problem}")
            continue
        count = sum(len(g.rules) for g in groups)
        print(f"  SUCCESS: {count} rules found")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hakon", description="Hakon metrics and alerting.")
    parser.add_argument("--version", action="version", version=f"hakon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _token_parser(sub)
    _query_parser(sub)
    _rules_parser(sub)
    return parser


def _token_create(args: argparse.Namespace) -> int:
    env_secret = os.environ.get(ENV_PREFIX + "AUTH_SECRET", "")
    try:
        secret = env_secret.encode() if env_secret else read_secret(Path(args.data_dir))
        ttl = parse_duration(args.ttl)
        if ttl <= 0:
            raise ValueError("expected a positive duration")
        subject = args.subject or (
            f"node:{args.node_id}"
            if args.node_id
            else f"cluster:{args.cluster_id}"
            if args.cluster_id
            else None
        )
        token, _ = TokenAuthority(secret).mint(
            subject=subject,
            scopes=args.scopes,
            ttl_seconds=ttl,
            node_id=args.node_id,
            cluster_id=args.cluster_id,
        )
    except (SecretError, InvalidRequest) as exc:
        print(f"hakon: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"hakon: invalid --ttl {args.ttl!r}: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        flags = {f.name: getattr(args, f.name) for f in setting_fields()}
        try:
            settings = Settings.load(flags, os.environ)
        except SettingsError as exc:
            print(f"hakon: {exc}", file=sys.stderr)
            return 2
        from hakon.server import serve

        return serve(settings)
    if args.command == "token" and args.token_command == "create":
        return _token_create(args)
    if args.command == "rules" and args.rules_command == "check":
        return _rules_check(args.files)
    if args.command == "query":
        from hakon.query.cli import run

        if args.step and not args.start:
            args.start = "now-1h"
        return run(args)
    return 2
