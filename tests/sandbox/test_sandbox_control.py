"""The sandbox's local control API (/_sandbox/...) and the `python -m sandbox follow|unfollow|write|dms`
commands, against a real XSandbox server over HTTP."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import tweepy

from sandbox import XSandbox
from sandbox.__main__ import main
from sandbox.control import is_loopback
from tests.sandbox.test_activity import Receiver, oauth, register, subscribe
from tests.sandbox.test_x_sandbox import make_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox():
    with XSandbox() as sb:
        yield sb


@pytest.fixture
def client(sandbox) -> tweepy.Client:
    return make_client(sandbox)


def control(sandbox, method, action, body=None) -> requests.Response:
    return requests.request(method, f"{sandbox.base_url}/_sandbox/{action}", json=body, timeout=5)


def follower_ids(client, sandbox) -> list[str]:
    """The account's followers as the function reads them: X's followers endpoint, newest first."""
    page = client.get_users_followers(sandbox.account_id, max_results=100, user_auth=True)
    return [str(u.id) for u in page.data or []]


def drive(sandbox, capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv, "--url", sandbox.base_url])
    out, err = capsys.readouterr()
    return code, out, err


# ---- the control API ------------------------------------------------------------------------------


def test_follow_puts_a_new_account_first_among_the_followers(client, sandbox):
    sandbox.add_followers(3)
    r = control(sandbox, "POST", "follow")
    assert r.status_code == 201
    fan = r.json()["data"]
    assert r.json()["followed"] is True and fan["username"].startswith("fan")
    assert follower_ids(client, sandbox)[0] == fan["id"]

    named = control(sandbox, "POST", "follow", {"username": "ada", "name": "Ada L"}).json()["data"]
    assert (named["username"], named["name"]) == ("ada", "Ada L")
    assert follower_ids(client, sandbox)[:2] == [named["id"], fan["id"]]
    # Following again while following changes nothing.
    again = control(sandbox, "POST", "follow", {"username": "@ADA"})
    assert again.status_code == 200 and again.json() == {"data": named, "followed": False}
    assert len(follower_ids(client, sandbox)) == 5


def test_unfollow_by_id_or_username_and_follow_again(client, sandbox):
    ada = control(sandbox, "POST", "follow", {"username": "ada"}).json()["data"]
    bob = control(sandbox, "POST", "follow", {"username": "bob"}).json()["data"]
    r = control(sandbox, "POST", "unfollow", {"user": "@ada"})
    assert r.status_code == 200 and r.json()["unfollowed"] is True
    assert follower_ids(client, sandbox) == [bob["id"]]
    assert control(sandbox, "POST", "unfollow", {"user": bob["id"]}).json()["unfollowed"] is True
    assert follower_ids(client, sandbox) == []
    assert control(sandbox, "POST", "unfollow", {"user": "@ada"}).json()["unfollowed"] is False
    # A known username follows again: the same user, at the front.
    back = control(sandbox, "POST", "follow", {"username": "ada"})
    assert back.status_code == 201 and back.json()["data"]["id"] == ada["id"]
    assert follower_ids(client, sandbox) == [ada["id"]]


def test_a_written_dm_is_in_the_accounts_dm_events_as_the_function_reads_them(client, sandbox):
    fan = control(sandbox, "POST", "follow").json()["data"]
    r = control(sandbox, "POST", "write", {"user": "@" + fan["username"], "text": "stop"})
    assert r.status_code == 201
    written = r.json()["data"]
    assert (written["sender_id"], written["recipient_id"], written["text"]) == (fan["id"], sandbox.account_id, "stop")
    events = client.get_direct_message_events(
        dm_event_fields=["id", "event_type", "text", "sender_id", "created_at", "dm_conversation_id"],
        event_types="MessageCreate",
        max_results=100,
        user_auth=True,
    ).data
    assert [(str(e.id), str(e.sender_id), e.text) for e in events] == [(written["dm_event_id"], fan["id"], "stop")]


def test_dms_lists_what_the_account_sent_newest_last(client, sandbox):
    assert control(sandbox, "GET", "dms").json() == {"data": [], "meta": {"result_count": 0}}
    ada = control(sandbox, "POST", "follow", {"username": "ada"}).json()["data"]
    bob = control(sandbox, "POST", "follow", {"username": "bob"}).json()["data"]
    control(sandbox, "POST", "write", {"user": bob["id"], "text": "hi"})  # received, not sent: not listed
    url = sandbox.base_url + "/2/dm_conversations/with/{}/messages"
    for user, text in ((ada, "Welcome, Ada!"), (bob, "Welcome, Bob!")):  # the account sends, OAuth 1.0a signed
        assert requests.post(url.format(user["id"]), json={"text": text}, auth=oauth(sandbox), timeout=5).status_code == 201
    dms = control(sandbox, "GET", "dms").json()["data"]
    assert [(d["recipient_id"], d["recipient_username"], d["text"]) for d in dms] == [
        (ada["id"], "ada", "Welcome, Ada!"),
        (bob["id"], "bob", "Welcome, Bob!"),
    ]
    assert [d["id"] for d in dms] == [d["dm_event_id"] for d in sandbox.dm_log]
    assert all(d["created_at"].endswith("Z") for d in dms)


def test_control_changes_fire_the_activity_apis_webhook_events(sandbox):
    receiver = Receiver(sandbox.credentials["consumer_secret"])
    try:
        webhook = register(sandbox, receiver.url)
        for event_type in ("follow.follow", "follow.unfollow"):
            assert subscribe(sandbox, webhook["id"], event_type).status_code == 200
        assert subscribe(sandbox, webhook["id"], "dm.received", auth=oauth(sandbox)).status_code == 200
        fan = control(sandbox, "POST", "follow").json()["data"]
        control(sandbox, "POST", "write", {"user": fan["id"], "text": "hello"})
        control(sandbox, "POST", "unfollow", {"user": fan["id"]})
        sandbox.deliver_events()
        assert [e["event_type"] for e in receiver.envelopes()] == ["follow.follow", "dm.received", "follow.unfollow"]
    finally:
        receiver.close()


def test_bad_requests_are_refused_plainly(sandbox):
    assert control(sandbox, "POST", "unfollow", {"user": "@nobody"}).status_code == 404
    assert control(sandbox, "POST", "write", {"user": "@nobody", "text": "hi"}).status_code == 404
    fan = sandbox.add_follower(username="fan")
    assert control(sandbox, "POST", "write", {"user": fan["id"]}).status_code == 400
    assert control(sandbox, "POST", "write", {"user": fan["id"], "text": "x" * 10_001}).status_code == 400
    assert control(sandbox, "POST", "follow", {"username": "not a name"}).status_code == 400
    assert control(sandbox, "POST", "follow", {"username": "courtesy_demo"}).status_code == 400  # the account itself
    assert control(sandbox, "GET", "follow").status_code == 404
    assert requests.post(sandbox.base_url + "/_sandbox/follow", data="{oops", timeout=5).status_code == 400
    assert sandbox.requests == []  # control traffic is not X API traffic


def test_only_loopback_clients_are_answered(sandbox):
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"))
    others = ("10.0.0.5", "192.168.1.20", "::ffff:10.0.0.5", "fe80::1", "0.0.0.0", "", None, "x")  # noqa: S104
    assert not any(is_loopback(a) for a in others)
    for path in ("/_sandbox/follow", "/_sandbox/anything"):
        status, _, body = sandbox.handle("POST", path, {}, b"{}", client="10.0.0.5")
        assert status == 403 and "loopback" in body["detail"]
    assert sandbox.handle("POST", "/_sandbox/follow", {}, b"{}")[0] == 403  # no client address: refused
    assert sandbox.follower_ids() == []
    assert sandbox.handle("POST", "/_sandbox/follow", {}, b"{}", client="127.0.0.1")[0] == 201


def test_the_control_api_is_not_part_of_the_x_surface(sandbox):
    # X's paths stay X's: /2/... under /_sandbox is nothing, and /2/... still wants credentials.
    assert control(sandbox, "POST", "2/users/me").status_code == 404
    assert requests.get(sandbox.base_url + "/2/_sandbox/dms", timeout=5).status_code in (401, 404)


# ---- the commands ---------------------------------------------------------------------------------


def test_the_commands_drive_a_running_sandbox(client, sandbox, capsys):
    code, out, _ = drive(sandbox, capsys, "follow", "--count", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and all(line.startswith("@fan") and line.endswith(" follows") for line in lines)
    code, out, _ = drive(sandbox, capsys, "follow", "--username", "ada", "--name", "Ada L")
    ada = sandbox.user(follower_ids(client, sandbox)[0])
    assert code == 0 and out == f"@ada (Ada L, id {ada['id']}) follows\n"
    assert len(follower_ids(client, sandbox)) == 3

    code, out, _ = drive(sandbox, capsys, "write", "@ada", "stop")
    assert code == 0 and out.startswith("@ada wrote 'stop' (DM event ")
    assert [d["text"] for d in sandbox.inbound_dms] == ["stop"]

    code, out, _ = drive(sandbox, capsys, "dms")
    assert code == 0 and out == "The account has sent no DMs.\n"
    client.create_direct_message(participant_id=ada["id"], text="Welcome, Ada!", user_auth=True)
    code, out, _ = drive(sandbox, capsys, "dms")
    assert code == 0 and out.endswith(f"  to @ada (id {ada['id']}): Welcome, Ada!\n")

    code, out, _ = drive(sandbox, capsys, "unfollow", "@ada")
    assert code == 0 and out == f"@ada (Ada L, id {ada['id']}) unfollowed\n"
    assert ada["id"] not in follower_ids(client, sandbox)

    code, out, err = drive(sandbox, capsys, "unfollow", "@nobody")
    assert code == 1 and out == "" and err == "python -m sandbox unfollow: the sandbox refused: No user @nobody.\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv", [["dms"], ["follow"], ["unfollow", "@ada"], ["write", "@ada", "hi"]])
def test_the_commands_exit_2_with_one_line_when_no_sandbox_answers(capsys, argv):
    url = f"http://127.0.0.1:{free_port()}"
    assert main([*argv, "--url", url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"no sandbox answers at {url}" in err and "Traceback" not in err


def test_something_else_at_the_url_is_not_taken_for_a_sandbox(capsys):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class NotASandbox(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Not Found")

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotASandbox)
    Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        assert main(["dms", "--url", f"http://127.0.0.1:{server.server_address[1]}"]) == 2
        assert "no sandbox answers" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()


def test_serve_is_still_the_default_and_has_a_name(monkeypatch):
    started = []
    monkeypatch.setattr("sandbox.__main__.serve", lambda argv: started.append(argv) or 0)
    assert main(["--port", "9", "--followers", "3"]) == 0
    assert main(["serve", "--port", "9"]) == 0
    assert main([]) == 0
    assert started == [["--port", "9", "--followers", "3"], ["--port", "9"], []]


def test_the_standalone_sandbox_can_be_driven_while_it_runs(capsys):
    port = free_port()
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--followers", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603 - our own sandbox
    try:
        banner = [proc.stdout.readline() for _ in range(2)]
        assert banner[0].startswith(f"X API v2 sandbox at http://127.0.0.1:{port} ")
        url = f"http://127.0.0.1:{port}"
        assert main(["follow", "--username", "ada", "--url", url]) == 0
        assert main(["dms", "--url", url]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("@ada (ada, id ") and out[0].endswith(" follows")
        assert out[1] == "The account has sent no DMs."
    finally:
        proc.terminate()
        proc.wait(timeout=10)
