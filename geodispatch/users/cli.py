"""``geodispatch users add``: create or reset a console user."""

from __future__ import annotations

import argparse
import getpass


def _add(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.settings import get_settings
    from geodispatch.users.service import upsert_user

    password = args.password or getpass.getpass(f"password for {args.username}: ")
    engine = app_engine(get_settings())
    with transaction(session_factory(engine)) as session:
        upsert_user(session=session, username=args.username, password=password, role=args.role,
                    region=args.region)
    engine.dispose()
    print(f"user {args.username} ({args.role}, region {args.region or 'all'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("users", help="console users")
    s = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    a = s.add_parser("add", help="create or reset a user")
    a.add_argument("username")
    a.add_argument("--role", required=True)
    a.add_argument("--region", default=None, help="region code; omit for all regions")
    a.add_argument("--password", default=None)
    a.set_defaults(func=_add)
