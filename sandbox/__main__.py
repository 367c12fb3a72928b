"""Run the sandbox standalone, and drive it while it runs.

    python -m sandbox [serve] [--host H] [--port P] [--followers N]   start it (Ctrl-C stops it)
    python -m sandbox follow [--username U] [--name NAME] [--count N]  new accounts (or U again) follow
    python -m sandbox unfollow USER                                   USER (an id or @username) unfollows
    python -m sandbox write USER TEXT                                 USER DMs the account ("stop" too)
    python -m sandbox dms                                             the DMs the account sent, newest last

The driving commands talk to a running sandbox's local control API (control.py) at --url
(default http://127.0.0.1:8765); with no sandbox there they exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request

from .x_sandbox import XSandbox

DEFAULT_URL = "http://127.0.0.1:8765"
COMMANDS = ("follow", "unfollow", "write", "dms")
TIMEOUT_SECONDS = 5


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local X API v2 sandbox. While it runs, drive it with: python -m sandbox follow|unfollow|write|dms (each --help).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--followers", type=int, default=0, help="followers to create at start")
    parser.add_argument("--account-id", default="1000")
    parser.add_argument("--username", default="courtesy_demo")
    args = parser.parse_args(argv)

    sandbox = XSandbox(host=args.host, port=args.port, account_id=args.account_id, username=args.username)
    sandbox.add_followers(args.followers)
    sandbox.start()
    sandbox.start_auto_delivery()  # webhook events (if a webhook is registered) go out as they happen
    print(f"X API v2 sandbox at {sandbox.base_url} (account {sandbox.account_id}, {args.followers} followers)")
    print("OAuth 1.0a credentials:")
    print(json.dumps(sandbox.credentials, indent=2))
    control = f" --url http://127.0.0.1:{sandbox.port}" if sandbox.port != 8765 else ""
    print(f"Drive it from this machine: python -m sandbox follow|unfollow|write|dms{control}")
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


class NoSandbox(Exception):
    """Nothing (or something that is not the sandbox) answers at the URL."""


class Refused(Exception):
    """The sandbox answered with an error."""


def call(url: str, method: str, action: str, payload: dict | None = None) -> dict:
    """One control request; the sandbox's JSON answer."""
    if not url.startswith(("http://", "https://")):
        raise NoSandbox(f"no sandbox answers at {url} (--url must start with http:// or https://)")
    data = None if payload is None else json.dumps(payload).encode()
    target = url.rstrip("/") + "/_sandbox/" + action
    request = urllib.request.Request(target, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local sandbox: never through a proxy
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise NoSandbox(f"no sandbox answers at {url} ({reason}); start one with: python -m sandbox") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise NoSandbox(f"no sandbox answers at {url} (HTTP {status}, not the sandbox's answer)")
    if status >= 400:
        raise Refused(f"the sandbox refused: {answer.get('detail') or answer.get('title') or status}")
    return answer


def _who(user: dict) -> str:
    return f"@{user['username']} ({user['name']}, id {user['id']})"


def drive(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Drive a running sandbox (python -m sandbox serve).")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--url", default=DEFAULT_URL, help=f"the running sandbox (default {DEFAULT_URL})")
        return p

    follow = command("follow", "New accounts follow the account (or --username U, if known, follows again).")
    follow.add_argument("--username", help="the follower's username (default: a new fanN)")
    follow.add_argument("--name", help="the follower's display name")
    follow.add_argument("--count", type=int, default=1, help="how many new accounts follow (default 1)")
    unfollow = command("unfollow", "A follower unfollows the account.")
    unfollow.add_argument("user", metavar="USER", help="an id or @username")
    write = command("write", 'A user sends the account a DM ("stop" is just text).')
    write.add_argument("user", metavar="USER", help="an id or @username")
    write.add_argument("text", metavar="TEXT")
    command("dms", "The DMs the account sent, newest last.")
    args = parser.parse_args(argv)
    if args.command == "follow" and args.count < 1:
        parser.error("--count must be at least 1")
    if args.command == "follow" and args.count > 1 and args.username:
        parser.error("--username names one follower: leave out --count")

    try:
        if args.command == "follow":
            body = {k: v for k, v in (("username", args.username), ("name", args.name)) if v}
            for _ in range(args.count):
                answer = call(args.url, "POST", "follow", body)
                print(f"{_who(answer['data'])} {'follows' if answer['followed'] else 'already follows'}")
        elif args.command == "unfollow":
            answer = call(args.url, "POST", "unfollow", {"user": args.user})
            print(f"{_who(answer['data'])} {'unfollowed' if answer['unfollowed'] else 'was not following'}")
        elif args.command == "write":
            answer = call(args.url, "POST", "write", {"user": args.user, "text": args.text})
            dm = answer["data"]
            print(f"@{dm['sender_username']} wrote {dm['text']!r} (DM event {dm['dm_event_id']}, {dm['created_at']})")
        else:
            answer = call(args.url, "GET", "dms")
            if not answer["data"]:
                print("The account has sent no DMs.")
            for dm in answer["data"]:
                print(f"{dm['created_at']}  to @{dm['recipient_username']} (id {dm['recipient_id']}): {dm['text']}")
    except NoSandbox as e:
        print(f"python -m sandbox {args.command}: {e}", file=sys.stderr)
        return 2
    except Refused as e:
        print(f"python -m sandbox {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return drive(argv)
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
