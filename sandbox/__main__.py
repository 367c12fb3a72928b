"""Run the sandbox standalone: python -m sandbox --port 8765 --followers 50"""

import argparse
import json
import threading

from .x_sandbox import XSandbox


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local X API v2 sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--followers", type=int, default=0, help="followers to create at start")
    parser.add_argument("--account-id", default="1000")
    parser.add_argument("--username", default="courtesy_demo")
    args = parser.parse_args()

    sandbox = XSandbox(host=args.host, port=args.port, account_id=args.account_id, username=args.username)
    sandbox.add_followers(args.followers)
    sandbox.start()
    print(f"X API v2 sandbox at {sandbox.base_url} (account {sandbox.account_id}, {args.followers} followers)")
    print("OAuth 1.0a credentials:")
    print(json.dumps(sandbox.credentials, indent=2))
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
