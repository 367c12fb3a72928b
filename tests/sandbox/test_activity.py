"""The sandbox's X Activity API over real HTTP: webhooks with CRC, subscriptions, signed deliveries,
faults, replay and billing.  A tiny local receiver stands in for the app's webhook endpoint."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests_oauthlib import OAuth1

from sandbox import XSandbox

SIGNATURE = "x-twitter-webhooks-signature"
ENVELOPE_KEYS = {"event_uuid", "filter", "event_type", "tag", "payload", "includes"}


def hmac_b64(secret: str, data: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


class Receiver:
    """The app's webhook: answers CRC with the documented algorithm (keyed by `crc_secret`) and
    records every POST (headers and raw body), answering `post_status`."""

    def __init__(self, crc_secret: str):
        self.crc_secret, self.post_status = crc_secret, 200
        self.crc_status = 200  # 3xx: a redirect elsewhere; 4xx/5xx: an error page
        self.posts: list[tuple[dict, bytes]] = []
        self.crc_tokens: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                token = parse_qs(urlsplit(self.path).query).get("crc_token", [""])[0]
                receiver.crc_tokens.append(token)
                if receiver.crc_status != 200:
                    self.send_response(receiver.crc_status)
                    self.send_header("Location", "https://elsewhere.example/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = {"response_token": hmac_b64(receiver.crc_secret, token.encode())}
                self._reply(200, json.dumps(answer).encode())

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self._reply(receiver.post_status)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        # X requires https and no port; the sandbox accepts a local http URL for tests.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/x"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def envelopes(self) -> list[dict]:
        return [json.loads(body)["data"] for _, body in self.posts]


@pytest.fixture
def sandbox():
    with XSandbox() as sb:
        yield sb


@pytest.fixture
def receiver(sandbox):
    r = Receiver(sandbox.credentials["consumer_secret"])
    yield r
    r.close()


def app_auth(sandbox) -> dict:
    return {"Authorization": "Bearer " + sandbox.credentials["bearer_token"]}


def oauth(sandbox) -> OAuth1:
    c = sandbox.credentials
    return OAuth1(c["consumer_key"], c["consumer_secret"], c["access_token"], c["access_token_secret"])


def api(sandbox, method, path, *, json_body=None, auth=None, headers=None):
    if auth is None and headers is None:
        headers = app_auth(sandbox)
    return requests.request(method, sandbox.base_url + path, json=json_body, auth=auth, headers=headers, timeout=15)


def register(sandbox, url) -> dict:
    r = api(sandbox, "POST", "/2/webhooks", json_body={"url": url})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def subscribe(sandbox, webhook_id, event_type, user_id=None, *, auth=None, tag="courtesy") -> requests.Response:
    body = {"event_type": event_type, "filter": {"user_id": user_id or sandbox.account_id}, "tag": tag, "webhook_id": webhook_id}
    return api(sandbox, "POST", "/2/activity/subscriptions", json_body=body, auth=auth)


@pytest.fixture
def hook(sandbox, receiver):
    """A valid webhook with follow.follow, follow.unfollow (app token) and dm.received (user context)."""
    webhook = register(sandbox, receiver.url)
    for event_type in ("follow.follow", "follow.unfollow"):
        assert subscribe(sandbox, webhook["id"], event_type).status_code == 200
    assert subscribe(sandbox, webhook["id"], "dm.received", auth=oauth(sandbox)).status_code == 200
    return webhook


def assert_signed(sandbox, receiver) -> None:
    for headers, body in receiver.posts:
        assert hmac.compare_digest(headers[SIGNATURE], hmac_b64(sandbox.credentials["consumer_secret"], body))


# ---- webhooks and CRC ----------------------------------------------------------------------------


def test_correct_crc_answer_makes_the_webhook_valid(sandbox, receiver):
    webhook = register(sandbox, receiver.url)
    assert webhook["valid"] is True and webhook["url"] == receiver.url
    assert len(receiver.crc_tokens) == 1 and receiver.crc_tokens[0]
    listed = api(sandbox, "GET", "/2/webhooks").json()
    assert listed["data"] == [webhook] and set(webhook) == {"id", "url", "valid", "created_at"}


def test_wrong_crc_answer_makes_it_invalid_and_put_rechecks(sandbox, receiver):
    receiver.crc_secret = "not-the-consumer-secret"
    webhook = register(sandbox, receiver.url)
    assert webhook["valid"] is False
    receiver.crc_secret = sandbox.credentials["consumer_secret"]
    r = api(sandbox, "PUT", f"/2/webhooks/{webhook['id']}")
    assert r.status_code == 200 and r.json()["data"]["valid"] is True
    assert sandbox.webhooks()[0]["valid"] is True and len(receiver.crc_tokens) == 2
    assert len(set(receiver.crc_tokens)) == 2  # a fresh random token each time


HOUR = 3600


def periodic_checks(sandbox, hours: float) -> list[dict]:
    """Move the sandbox clock `hours` on, half an hour at a time, delivering (and so re-checking) as X would."""
    before = len(sandbox.crc_requests)
    for _ in range(round(hours * 2)):
        sandbox.advance(HOUR / 2)
        sandbox.deliver_events()
    return [c for c in sandbox.crc_requests[before:] if c["periodic"]]


def test_a_valid_webhook_is_checked_again_after_24_hours_then_not_for_another_day(sandbox, receiver):
    register(sandbox, receiver.url)
    assert periodic_checks(sandbox, 23.5) == []
    [check] = periodic_checks(sandbox, 0.5)
    assert check["valid"] is True and len(receiver.crc_tokens) == 2
    assert periodic_checks(sandbox, 23.5) == []
    assert sandbox.webhooks()[0]["valid"] is True


def test_a_receiver_that_errors_stays_valid_until_28_hours_without_validating(sandbox, receiver, hook):
    periodic_checks(sandbox, 23.5)
    receiver.crc_status = 503  # transient, as X counts it: checked every 30 minutes
    checks = periodic_checks(sandbox, 4)  # at 24, 24.5, ... 27.5 hours
    assert [c["status"] for c in checks] == [503] * 8
    assert sandbox.webhooks()[0]["valid"] is True
    periodic_checks(sandbox, 0.5)
    assert sandbox.webhooks()[0]["valid"] is False  # 28 hours since the last validation
    sandbox.add_follower()
    [attempt] = sandbox.deliver_events()
    assert attempt["error"] == "webhook invalid" and receiver.posts == []
    receiver.crc_status = 200  # fixed: PUT re-enables it
    assert api(sandbox, "PUT", f"/2/webhooks/{hook['id']}").json()["data"]["valid"] is True


def test_transient_failures_before_28_hours_keep_the_webhook_delivering(sandbox, receiver, hook):
    periodic_checks(sandbox, 23.5)
    receiver.crc_status = 500
    periodic_checks(sandbox, 2)
    assert sandbox.webhooks()[0]["valid"] is True
    receiver.crc_status = 200
    periodic_checks(sandbox, 0.5)
    sandbox.add_follower()
    [attempt] = sandbox.deliver_events()
    assert attempt["status"] == 200 and len(receiver.posts) == 1


@pytest.mark.parametrize("fault", ["wrong answer", "redirect"])
def test_a_wrong_answer_or_a_redirect_invalidates_at_once(sandbox, receiver, fault):
    register(sandbox, receiver.url)
    periodic_checks(sandbox, 23.5)
    if fault == "redirect":
        receiver.crc_status = 302
    else:
        receiver.crc_secret = "not-the-consumer-secret"
    [check] = periodic_checks(sandbox, 0.5)
    assert check["valid"] is False
    assert sandbox.webhooks()[0]["valid"] is False


def test_webhook_endpoints_need_the_app_bearer_token(sandbox, receiver):
    assert api(sandbox, "GET", "/2/webhooks", headers={}).status_code == 401
    assert api(sandbox, "GET", "/2/webhooks", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api(sandbox, "GET", "/2/webhooks", auth=oauth(sandbox)).status_code == 401  # user context is not enough
    assert receiver.crc_tokens == []


def test_duplicate_url_limit_and_delete(sandbox, receiver):
    webhook = register(sandbox, receiver.url)
    dup = api(sandbox, "POST", "/2/webhooks", json_body={"url": receiver.url})
    assert dup.status_code == 400 and dup.json()["errors"][0]["message"].startswith("DuplicateUrlFailed")
    over = api(sandbox, "POST", "/2/webhooks", json_body={"url": receiver.url + "/other"})
    assert over.status_code == 400 and over.json()["errors"][0]["message"].startswith("WebhookLimitExceeded")
    assert subscribe(sandbox, webhook["id"], "follow.follow").status_code == 200
    assert api(sandbox, "DELETE", f"/2/webhooks/{webhook['id']}").json() == {"data": {"deleted": True}}
    assert api(sandbox, "GET", "/2/webhooks").json() == {"meta": {"result_count": 0}}
    assert api(sandbox, "GET", "/2/activity/subscriptions").json() == {"meta": {"result_count": 0}}
    assert api(sandbox, "DELETE", f"/2/webhooks/{webhook['id']}").status_code == 404


# ---- subscriptions -----------------------------------------------------------------------------


def test_subscriptions_list_update_delete_and_validation(sandbox, receiver):
    webhook = register(sandbox, receiver.url)
    sub = subscribe(sandbox, webhook["id"], "follow.follow").json()["data"]
    assert (sub["event_type"], sub["filter"], sub["tag"], sub["webhook_id"]) == (
        "follow.follow",
        {"user_id": sandbox.account_id},
        "courtesy",
        webhook["id"],
    )
    assert api(sandbox, "GET", "/2/activity/subscriptions").json()["data"] == [sub]
    updated = api(sandbox, "PUT", f"/2/activity/subscriptions/{sub['subscription_id']}", json_body={"tag": "v2"}).json()["data"]
    assert updated["tag"] == "v2"
    assert api(sandbox, "PUT", f"/2/activity/subscriptions/{sub['subscription_id']}", json_body={"event_type": "x"}).status_code == 400
    assert subscribe(sandbox, webhook["id"], "follow.follow").status_code == 400  # already there
    assert subscribe(sandbox, webhook["id"], "tweet.create").status_code == 400
    assert subscribe(sandbox, "999", "follow.unfollow").status_code == 400
    assert subscribe(sandbox, webhook["id"], "dm.received").status_code == 403  # private: needs user context
    assert api(sandbox, "DELETE", f"/2/activity/subscriptions/{sub['subscription_id']}").status_code == 200
    assert api(sandbox, "DELETE", f"/2/activity/subscriptions/{sub['subscription_id']}").status_code == 404


# ---- deliveries --------------------------------------------------------------------------------


def test_follow_unfollow_and_dm_arrive_signed_in_the_documented_envelope(sandbox, receiver, hook):
    fan = sandbox.add_follower("31", username="fan31")
    sandbox.remove_follower("31")
    sandbox.add_user("32", username="writer")
    sandbox.receive_dm("32", "Hello there")
    attempts = sandbox.deliver_events()
    assert [a["status"] for a in attempts] == [200, 200, 200]
    assert_signed(sandbox, receiver)
    events = receiver.envelopes()
    assert [e["event_type"] for e in events] == ["follow.follow", "follow.unfollow", "dm.received"]
    for e in events:
        assert set(e) == ENVELOPE_KEYS
        assert e["filter"] == {"user_id": sandbox.account_id} and e["tag"] == "courtesy"
        assert isinstance(e["event_uuid"], str) and e["event_uuid"].lstrip("-").isdigit()
    follow = events[0]["payload"]
    assert follow["source"]["data"]["id"] == "31" and follow["target"]["data"]["id"] == sandbox.account_id
    for key in ("public_metrics", "created_at", "protected", "verified", "profile_image_url", "username"):
        assert follow["source"]["data"][key] == fan[key]
    assert events[1]["payload"]["source"]["data"]["id"] == "31"
    dm = events[2]["payload"]
    [message] = dm["direct_message_events"]
    assert message["type"] == "message_create" and message["id"] == sandbox.inbound_dms[0]["dm_event_id"]
    assert message["message_create"]["sender_id"] == "32"
    assert message["message_create"]["target"]["recipient_id"] == sandbox.account_id
    assert message["message_create"]["message_data"]["text"] == "Hello there"
    assert abs(int(message["created_timestamp"]) / 1000 - sandbox.now()) < 5
    assert set(dm["users"]) == {"32", sandbox.account_id}
    assert [d["event_uuid"] for d in sandbox.webhook_deliveries] == [e["event_uuid"] for e in events]
    assert sandbox.deliver_events() == []  # nothing left


def test_the_account_following_someone_is_a_follow_with_the_account_as_source(sandbox, receiver, hook):
    sandbox.add_user("40")
    sandbox.follow_user("40")
    sandbox.deliver_events()
    [event] = receiver.envelopes()
    assert event["event_type"] == "follow.follow"
    assert (event["payload"]["source"]["data"]["id"], event["payload"]["target"]["data"]["id"]) == (sandbox.account_id, "40")


def test_no_subscription_no_delivery(sandbox, receiver):
    register(sandbox, receiver.url)
    sandbox.add_follower("31")
    assert sandbox.deliver_events() == [] and receiver.posts == []


def test_duplicate_fault_delivers_the_same_event_uuid_twice(sandbox, receiver, hook):
    sandbox.duplicate_next_events()
    sandbox.add_follower("31")
    sandbox.deliver_events()
    uuids = [e["event_uuid"] for e in receiver.envelopes()]
    assert len(uuids) == 2 and uuids[0] == uuids[1]
    assert [d["duplicate"] for d in sandbox.webhook_deliveries] == [False, True]
    assert_signed(sandbox, receiver)


def test_delay_and_reorder(sandbox, receiver, hook):
    sandbox.delay_next_events(60)
    sandbox.add_follower("31")
    sandbox.add_follower("32")
    sandbox.deliver_events()
    assert [e["payload"]["source"]["data"]["id"] for e in receiver.envelopes()] == ["32"]
    sandbox.advance(61)
    sandbox.add_follower("33")
    sandbox.reorder_next_delivery()
    sandbox.deliver_events()
    assert [e["payload"]["source"]["data"]["id"] for e in receiver.envelopes()] == ["32", "33", "31"]


def test_failed_deliveries_are_recorded(sandbox, receiver, hook):
    sandbox.fail_next_deliveries()  # unreachable: nothing reaches the receiver
    sandbox.add_follower("31")
    sandbox.deliver_events()
    receiver.post_status = 503  # the receiver itself answers 5xx
    sandbox.add_follower("32")
    sandbox.deliver_events()
    [unreachable, error] = sandbox.webhook_deliveries
    assert (unreachable["status"], unreachable["event_type"]) == (None, "follow.follow") and unreachable["error"]
    assert error["status"] == 503 and len(receiver.posts) == 1
    assert sandbox.billed_activity_events_per_day() == {}  # nothing delivered, nothing billed


def test_a_receiver_that_is_gone_is_recorded_as_unreachable(sandbox, receiver, hook):
    receiver.close()
    sandbox.add_follower("31")
    [attempt] = sandbox.deliver_events()
    assert attempt["status"] is None and attempt["error"].startswith("unreachable")


def test_replay_redelivers_delivered_and_attempted_events(sandbox, receiver, hook):
    sandbox.add_follower("31")
    sandbox.deliver_events()
    sandbox.fail_next_deliveries(status=500)
    sandbox.add_follower("32")
    sandbox.deliver_events()
    first_uuids = [d["event_uuid"] for d in sandbox.webhook_deliveries]
    minute, earlier = (time.strftime("%Y%m%d%H%M", time.gmtime(sandbox.now() - s)) for s in (0, 60))  # a minute may turn
    r = api(sandbox, "POST", "/2/webhooks/replay", json_body={"webhook_id": hook["id"], "from_date": earlier, "to_date": minute})
    assert r.status_code == 200 and set(r.json()) == {"created_at", "job_id"}
    replayed = sandbox.deliver_events()
    assert [a["event_uuid"] for a in replayed] == first_uuids and all(a["replay"] for a in replayed)
    assert [e["event_uuid"] for e in receiver.envelopes()] == [first_uuids[0], *first_uuids]
    assert_signed(sandbox, receiver)
    old = time.strftime("%Y%m%d%H%M", time.gmtime(sandbox.now() - 2 * 86400))
    too_old = api(sandbox, "POST", "/2/webhooks/replay", json_body={"webhook_id": hook["id"], "from_date": old, "to_date": minute})
    assert too_old.status_code == 400
    bad = api(sandbox, "POST", "/2/webhooks/replay", json_body={"webhook_id": hook["id"], "from_date": "yesterday", "to_date": minute})
    assert bad.status_code == 400


# ---- billing ------------------------------------------------------------------------------------


def test_billing_counts_each_event_uuid_once_per_day(sandbox, receiver, hook):
    day = time.strftime("%Y-%m-%d", time.gmtime(sandbox.now()))
    sandbox.duplicate_next_events()
    sandbox.add_follower("31")
    sandbox.receive_dm("31", "hi")
    sandbox.deliver_events()
    assert len(receiver.posts) == 3
    assert sandbox.billed_activity_events_per_day() == {day: 2}
    minute, earlier = (time.strftime("%Y%m%d%H%M", time.gmtime(sandbox.now() - s)) for s in (0, 60))
    api(sandbox, "POST", "/2/webhooks/replay", json_body={"webhook_id": hook["id"], "from_date": earlier, "to_date": minute})
    sandbox.deliver_events()
    assert len(receiver.posts) == 5
    assert sandbox.billed_activity_events_per_day() == {day: 2}
    assert sandbox.activity_cost_usd() == pytest.approx(0.02)


def test_auto_delivery_mode(sandbox, receiver, hook):
    sandbox.start_auto_delivery(interval=0.02)
    sandbox.add_follower("31")
    deadline = time.monotonic() + 5
    while not receiver.posts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e["event_type"] for e in receiver.envelopes()] == ["follow.follow"]
