"""The demo's mailbox move: prints what New-MoveRequest would do, and proves it holds the
Exchange credential without ever printing it."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="move_mailbox")
    parser.add_argument("--identity", required=True)
    parser.add_argument("--target-database", required=True)
    parser.add_argument("--suspend", default="")
    args = parser.parse_args()
    token = os.environ.get("EXCHANGE_TOKEN", "")
    if not token:
        print("no Exchange credential was given to the task", file=sys.stderr)
        return 2
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
    print(f"New-MoveRequest -Identity {args.identity} -TargetDatabase {args.target_database}")
    if args.suspend == "true":
        print("  the move will stop before completing (SuspendWhenReadyToComplete)")
    print(f"  queued the move of {args.identity} to {args.target_database}")
    print(f"  as the Exchange service account (credential fingerprint {fingerprint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
