"""Drive the X API v2 sandbox through real tweepy calls and plain requests over HTTP."""

import re
import threading
import time

import pytest
import requests
import tweepy
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1

from sandbox import DM_FORBIDDEN_BODY, USAGE_CAPPED_BODY, XSandbox
from sandbox.x_sandbox import paginate

X_HOST = "https://api.twitter.com"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class RedirectAdapter(HTTPAdapter):
    """Sends tweepy's hard-coded https://api.twitter.com requests to the sandbox instead."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def send(self, request, **kwargs):
        request.url = self.base_url + request.url[len(X_HOST) :]
        return super().send(request, **kwargs)


def make_client(sandbox: XSandbox, return_type=tweepy.Response, **credentials) -> tweepy.Client:
    client = tweepy.Client(**{**sandbox.credentials, **credentials}, return_type=return_type)
    client.session.mount(X_HOST + "/", RedirectAdapter(sandbox.base_url))
    return client


def oauth(sandbox: XSandbox) -> OAuth1:
    c = sandbox.credentials
    return OAuth1(c["consumer_key"], c["consumer_secret"], c["access_token"], c["access_token_secret"])


@pytest.fixture
def sandbox():
    with XSandbox() as sb:
        yield sb


@pytest.fixture
def client(sandbox):
    return make_client(sandbox)


@pytest.fixture
def raw(sandbox):
    """A tweepy client that returns requests.Response, to read headers and raw bodies."""
    return make_client(sandbox, return_type=requests.Response)


def followers(client, sandbox, **params):
    return client.get_users_followers(sandbox.account_id, user_auth=True, **params)


def send(client, participant_id, text="Welcome!"):
    return client.create_direct_message(participant_id=participant_id, text=text, user_auth=True)


# ---- users/me and auth ------------------------------------------------------------------------


def test_get_me(client, sandbox):
    me = client.get_me(user_auth=True).data
    assert (me.id, me.username, me.name) == (1000, "courtesy_demo", "Courtesy Demo")


def test_signature_for_sandbox_url_is_accepted_too(sandbox):
    r = requests.get(sandbox.base_url + "/2/users/me", auth=oauth(sandbox), timeout=5, params={"user.fields": "created_at"})
    assert r.status_code == 200
    assert r.json()["data"] == {
        "id": "1000",
        "name": "Courtesy Demo",
        "username": "courtesy_demo",
        "created_at": "2020-01-01T00:00:00.000Z",
    }


@pytest.mark.parametrize(
    "override", [{"consumer_secret": "wrong"}, {"access_token_secret": "wrong"}, {"access_token": "2000-other"}, {"consumer_key": "other"}]
)
def test_wrong_credentials_are_401(sandbox, override):
    client = make_client(sandbox, **override)
    with pytest.raises(tweepy.Unauthorized) as exc:
        client.get_me(user_auth=True)
    assert exc.value.response.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}


def test_missing_or_bearer_auth_is_401(sandbox):
    assert requests.get(sandbox.base_url + "/2/users/me", timeout=5).status_code == 401
    bearer = requests.get(sandbox.base_url + "/2/users/me", headers={"Authorization": "Bearer x"}, timeout=5)
    assert bearer.status_code == 401


def test_unknown_path_is_404_problem(sandbox):
    r = requests.get(sandbox.base_url + "/2/tweets", auth=oauth(sandbox), timeout=5)
    assert r.status_code == 404
    assert r.json()["type"].endswith("/resource-not-found")


# ---- followers ---------------------------------------------------------------------------------


def test_followers_paging_newest_first(client, sandbox):
    added = sandbox.add_followers(25)
    expected = [u["id"] for u in reversed(added)]
    assert sandbox.follower_ids() == expected

    seen, token, pages = [], None, []
    while True:
        resp = followers(client, sandbox, max_results=10, pagination_token=token)
        pages.append(resp.meta)
        seen += [str(u.id) for u in resp.data]
        token = resp.meta.get("next_token")
        if not token:
            break
    assert seen == expected
    assert [m["result_count"] for m in pages] == [10, 10, 5]
    assert "previous_token" not in pages[0] and "previous_token" in pages[1]
    assert sandbox.users_returned == 25


def test_pagination_tokens_stable_under_insertions_and_removals(client, sandbox):
    sandbox.add_followers(30)
    before = sandbox.follower_ids()
    first = followers(client, sandbox, max_results=10)
    sandbox.add_followers(5, prefix="late")  # new followers land at the front
    sandbox.remove_follower(before[12])  # someone on page 2 unfollows
    second = followers(client, sandbox, max_results=10, pagination_token=first.meta["next_token"])
    assert [str(u.id) for u in second.data] == before[10:12] + before[13:21]

    # previous_token from page 2 leads back to the 10 users just newer than page 2
    back = followers(client, sandbox, max_results=10, pagination_token=second.meta["previous_token"])
    assert [str(u.id) for u in back.data] == before[:10]


def test_refollow_goes_to_front(sandbox):
    users = sandbox.add_followers(3)
    sandbox.remove_follower(users[0]["id"])
    assert users[0]["id"] not in sandbox.follower_ids()
    sandbox.add_follower(users[0]["id"])
    assert sandbox.follower_ids() == [users[0]["id"], users[2]["id"], users[1]["id"]]


def test_user_fields_filtering(client, sandbox):
    sandbox.add_follower(
        "42",
        username="alice",
        name="Alice",
        protected=True,
        public_metrics={"followers_count": 7, "following_count": 3, "tweet_count": 1, "listed_count": 0},
    )
    sandbox.add_follower("43", username="bob", receives_dm=False)
    plain = make_client(sandbox, return_type=dict)
    default = plain.get_users_followers(sandbox.account_id, user_auth=True)
    assert default["data"][1] == {"id": "42", "name": "Alice", "username": "alice"}

    rich = plain.get_users_followers(sandbox.account_id, user_auth=True, user_fields=["protected", "public_metrics", "receives_your_dm"])
    bob, alice = rich["data"]
    assert set(alice) == {"id", "name", "username", "protected", "public_metrics", "receives_your_dm"}
    assert alice["protected"] is True and alice["public_metrics"]["followers_count"] == 7
    assert (alice["receives_your_dm"], bob["receives_your_dm"]) == (True, False)

    with pytest.raises(tweepy.BadRequest):
        followers(client, sandbox, user_fields=["shoe_size"])


def test_users_returned_and_request_log(client, sandbox):
    sandbox.add_followers(7)
    followers(client, sandbox, max_results=5)
    followers(client, sandbox, max_results=5, pagination_token=followers(client, sandbox, max_results=5).meta["next_token"])
    assert sandbox.users_returned == 5 + 5 + 2
    log = sandbox.requests
    assert [r["status"] for r in log] == [200, 200, 200]
    assert log[0]["path"] == "/2/users/1000/followers" and log[0]["query"]["max_results"] == "5"

    sandbox.reset_counters()
    assert sandbox.users_returned == 0 and sandbox.requests == []


def test_empty_followers_page_has_no_data_key(sandbox):
    body = make_client(sandbox, return_type=dict).get_users_followers(sandbox.account_id, user_auth=True)
    assert body == {"meta": {"result_count": 0}}


@pytest.mark.parametrize("value", [0, 1001])
def test_max_results_out_of_range_is_400(client, sandbox, value):
    with pytest.raises(tweepy.BadRequest) as exc:
        followers(client, sandbox, max_results=value)
    body = exc.value.response.json()
    assert body["title"] == "Invalid Request"
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert body["errors"][0]["parameters"] == {"max_results": [str(value)]}


@pytest.mark.parametrize("token", ["garbage!", "ZZZZZZZZ", "MRXDUMZR"])
def test_garbled_pagination_token_is_400(client, sandbox, token):
    sandbox.add_followers(3)
    with pytest.raises(tweepy.BadRequest) as exc:
        followers(client, sandbox, pagination_token=token)
    assert "pagination_token" in exc.value.response.json()["errors"][0]["parameters"]


def test_followers_of_unknown_user_is_200_with_errors(sandbox):
    body = make_client(sandbox, return_type=dict).get_users_followers("999999", user_auth=True)
    assert "data" not in body
    assert body["errors"][0]["type"] == "https://api.twitter.com/2/problems/resource-not-found"


# ---- sending DMs -------------------------------------------------------------------------------


def test_send_dm_201_and_dm_log(raw, client, sandbox):
    fan = sandbox.add_follower("2500")
    r = raw.create_direct_message(participant_id=fan["id"], text="Hi there", user_auth=True)
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["dm_conversation_id"] == "1000-2500"
    assert data["dm_event_id"].isdigit()

    second = send(client, fan["id"], "Again").data
    assert int(second["dm_event_id"]) > int(data["dm_event_id"])
    log = sandbox.dm_log
    assert [d["text"] for d in log] == ["Hi there", "Again"]
    assert log[0] == {
        "dm_event_id": data["dm_event_id"],
        "dm_conversation_id": "1000-2500",
        "sender_id": "1000",
        "recipient_id": "2500",
        "text": "Hi there",
        "created_at": log[0]["created_at"],
    }
    assert ISO_MS.match(log[0]["created_at"])
    assert sandbox.dms_to("2500") == log and sandbox.dms_to("1") == []


def test_conversation_id_is_smaller_then_larger(client, sandbox):
    sandbox.add_follower("7")
    assert send(client, "7").data["dm_conversation_id"] == "7-1000"


def test_dm_forbidden_when_recipient_refuses_or_does_not_follow(client, sandbox):
    closed = sandbox.add_follower(receives_dm=False)
    later = sandbox.add_follower()
    sandbox.set_receives_dm(later["id"], False)
    gone = sandbox.add_follower()
    sandbox.remove_follower(gone["id"])
    for user in (closed, later, gone):
        with pytest.raises(tweepy.Forbidden) as exc:
            send(client, user["id"])
        assert exc.value.response.json() == {
            "detail": "You are not permitted to send Direct Messages to this user.",
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
        }
    assert sandbox.dm_log == []


def test_dm_text_limits(client, sandbox):
    fan = sandbox.add_follower()
    with pytest.raises(tweepy.BadRequest) as exc:
        send(client, fan["id"], "x" * 10_001)
    assert exc.value.response.json()["type"].endswith("/invalid-request")
    with pytest.raises(tweepy.BadRequest):
        send(client, fan["id"], "")
    assert send(client, fan["id"], "x" * 10_000).data["dm_event_id"]
    assert len(sandbox.dm_log) == 1


def test_dm_bad_bodies_and_unknown_participant(sandbox):
    url = sandbox.base_url + "/2/dm_conversations/with/{}/messages"
    sandbox.add_follower("55")
    assert requests.post(url.format("55"), json={"text": "a", "extra": 1}, auth=oauth(sandbox), timeout=5).status_code == 400
    assert (
        requests.post(
            url.format("55"), data="{oops", auth=oauth(sandbox), timeout=5, headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert requests.post(url.format("abc"), json={"text": "a"}, auth=oauth(sandbox), timeout=5).status_code == 400
    assert requests.post(url.format("987654"), json={"text": "a"}, auth=oauth(sandbox), timeout=5).status_code == 404
    assert sandbox.dm_log == []


def test_concurrent_sends_get_unique_ids(sandbox):
    fans = sandbox.add_followers(10)
    sandbox.set_rate_limit("send_dm", 100)
    results = []

    def worker(uid):
        results.append(send(make_client(sandbox), uid).data["dm_event_id"])

    threads = [threading.Thread(target=worker, args=(f["id"],)) for f in fans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 10 and len(sandbox.dm_log) == 10


# ---- rate limits -------------------------------------------------------------------------------


def test_rate_limit_headers_429_and_window_reset(raw, client, sandbox):
    sandbox.set_rate_limit("followers", 3)
    start = sandbox.now()
    remaining = []
    for _ in range(3):
        r = raw.get_users_followers(sandbox.account_id, user_auth=True)
        assert r.headers["x-rate-limit-limit"] == "3"
        remaining.append(r.headers["x-rate-limit-remaining"])
    assert remaining == ["2", "1", "0"]
    reset = int(r.headers["x-rate-limit-reset"])
    assert start + 900 <= reset <= start + 902

    with pytest.raises(tweepy.TooManyRequests) as exc:
        followers(client, sandbox)
    assert exc.value.reset_time == reset
    assert exc.value.response.headers["x-rate-limit-remaining"] == "0"
    assert exc.value.response.json() == {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}

    sandbox.advance(901)
    r = raw.get_users_followers(sandbox.account_id, user_auth=True)
    assert r.status_code == 200 and r.headers["x-rate-limit-remaining"] == "2"


def test_send_dm_default_limits_and_24_hour_cap(raw, client, sandbox):
    fan = sandbox.add_follower()
    r = raw.create_direct_message(participant_id=fan["id"], text="1", user_auth=True)
    assert (r.headers["x-rate-limit-limit"], r.headers["x-rate-limit-remaining"]) == ("15", "14")
    assert (r.headers["x-user-limit-24hour-limit"], r.headers["x-user-limit-24hour-remaining"]) == ("1440", "1439")
    assert int(r.headers["x-user-limit-24hour-reset"]) >= sandbox.now() + 86399

    sandbox.set_rate_limit("send_dm", 2, window_seconds=86400)
    send(client, fan["id"], "2")
    send(client, fan["id"], "3")
    with pytest.raises(tweepy.TooManyRequests) as exc:
        send(client, fan["id"], "4")
    assert exc.value.response.headers["x-user-limit-24hour-remaining"] == "0"
    assert exc.value.response.headers["x-rate-limit-remaining"] == "12"
    sandbox.advance(900)  # the 15-minute window resets, the daily cap does not
    with pytest.raises(tweepy.TooManyRequests):
        send(client, fan["id"], "5")
    sandbox.advance(86400)
    send(client, fan["id"], "6")
    assert [d["text"] for d in sandbox.dm_log] == ["1", "2", "3", "6"]


def test_exhaust_rate_limit(client, sandbox):
    sandbox.exhaust_rate_limit("me")
    with pytest.raises(tweepy.TooManyRequests):
        client.get_me(user_auth=True)
    sandbox.advance(900)
    assert client.get_me(user_auth=True).data.username == "courtesy_demo"


# ---- injected faults ---------------------------------------------------------------------------


def test_fail_next_503_with_empty_body(client, sandbox):
    fan = sandbox.add_follower()
    sandbox.fail_next("send_dm", 503, body="")
    with pytest.raises(tweepy.TwitterServerError) as exc:
        send(client, fan["id"])
    assert exc.value.response.status_code == 503 and exc.value.response.text == ""
    assert sandbox.dm_log == []
    send(client, fan["id"])  # only the next request failed
    assert len(sandbox.dm_log) == 1


def test_fail_next_malformed_json(client, sandbox):
    sandbox.add_followers(2)
    sandbox.fail_next("followers", 502, body="{not json")
    with pytest.raises(tweepy.TwitterServerError) as exc:
        followers(client, sandbox)
    assert exc.value.response.text == "{not json"
    sandbox.fail_next("followers", 200, body="{not json")
    with pytest.raises(requests.JSONDecodeError):
        followers(client, sandbox)
    assert sandbox.users_returned == 0
    assert len(followers(client, sandbox).data) == 2


def test_fail_next_count_and_usage_capped(client, sandbox):
    sandbox.fail_next("me", 429, count=2, body=USAGE_CAPPED_BODY, headers={"x-extra": "1"})
    for _ in range(2):
        with pytest.raises(tweepy.TooManyRequests) as exc:
            client.get_me(user_auth=True)
        assert exc.value.response.json()["type"] == "https://api.twitter.com/2/problems/usage-capped"
        assert exc.value.response.headers["x-extra"] == "1"
    assert client.get_me(user_auth=True).data.id == 1000
    with pytest.raises(ValueError):
        sandbox.fail_next("tweets", 500)


def test_drop_after_store_next(client, sandbox):
    fan = sandbox.add_follower()
    sandbox.drop_after_store_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client, fan["id"], "lost reply")
    assert [d["text"] for d in sandbox.dm_log] == ["lost reply"]  # stored exactly once
    assert send(client, fan["id"], "next").data["dm_conversation_id"].endswith(fan["id"])
    assert len(sandbox.dms_to(fan["id"])) == 2
    assert [r["status"] for r in sandbox.requests] == [None, 201]


def test_latency(client, sandbox):
    sandbox.latency_seconds = 0.2
    t0 = time.monotonic()
    client.get_me(user_auth=True)
    assert time.monotonic() - t0 >= 0.2


def test_handler_bug_is_500_and_server_survives(client, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox, "_h_me", lambda **kw: 1 / 0)
    with pytest.raises(tweepy.TwitterServerError):
        client.get_me(user_auth=True)
    monkeypatch.undo()
    assert client.get_me(user_auth=True).data.id == 1000


# ---- DM event lookups --------------------------------------------------------------------------


def test_dm_events_lookup(client, sandbox):
    a, b = sandbox.add_follower("11"), sandbox.add_follower("12")
    sent_a = send(client, a["id"], "welcome a").data["dm_event_id"]
    send(client, b["id"], "welcome b")
    reply = sandbox.receive_dm(a["id"], "thanks!")
    assert sandbox.inbound_dms == [reply] and len(sandbox.dm_log) == 2

    events = client.get_direct_message_events(
        dm_event_fields=["sender_id", "created_at", "dm_conversation_id"], event_types="MessageCreate", user_auth=True
    )
    assert [e.text for e in events.data] == ["thanks!", "welcome b", "welcome a"]
    assert events.data[0].sender_id == 11 and events.data[2].id == int(sent_a)
    assert events.data[0].dm_conversation_id == "11-1000"
    assert events.meta["result_count"] == 3

    with_a = client.get_direct_message_events(participant_id=a["id"], user_auth=True)
    assert [e.text for e in with_a.data] == ["thanks!", "welcome a"]
    by_conv = client.get_direct_message_events(dm_conversation_id="12-1000", user_auth=True)
    assert [e.text for e in by_conv.data] == ["welcome b"]

    raw = make_client(sandbox, return_type=dict).get_direct_message_events(user_auth=True)
    assert set(raw["data"][0]) == {"id", "event_type", "text"}


def test_dm_events_expand_their_senders_once_each(sandbox):
    fan = sandbox.add_follower("11", username="fan11", name="Fan Eleven")
    stranger = sandbox.add_user("13", username="stranger13", name="Sam Stranger")
    sandbox.receive_dm(fan["id"], "hi")
    sandbox.receive_dm(stranger["id"], "hello")
    sandbox.receive_dm(stranger["id"], "hello?")
    raw = make_client(sandbox, return_type=dict).get_direct_message_events(
        expansions=["sender_id"], user_fields=["username", "name"], user_auth=True
    )
    assert raw["includes"]["users"] == [
        {"id": "13", "name": "Sam Stranger", "username": "stranger13"},
        {"id": "11", "name": "Fan Eleven", "username": "fan11"},
    ]
    with pytest.raises(tweepy.BadRequest):
        make_client(sandbox).get_direct_message_events(expansions=["nonsense"], user_auth=True)


def test_dm_events_paging_and_retention(client, sandbox):
    fan = sandbox.add_follower()
    sandbox.set_rate_limit("send_dm", 100)
    sandbox.set_rate_limit("dm_events", 100)
    for i in range(5):
        send(client, fan["id"], f"m{i}")
    first = client.get_direct_message_events(max_results=2, user_auth=True)
    second = client.get_direct_message_events(max_results=2, user_auth=True, pagination_token=first.meta["next_token"])
    assert [e.text for e in first.data + second.data] == ["m4", "m3", "m2", "m1"]
    with pytest.raises(tweepy.BadRequest):
        client.get_direct_message_events(max_results=101, user_auth=True)

    sandbox.advance(31 * 86400)  # events older than 30 days are gone
    assert client.get_direct_message_events(user_auth=True).meta == {"result_count": 0}
    assert len(sandbox.dm_log) == 5  # the sandbox's own record keeps them


def test_dm_events_rate_limit_is_shared_by_both_lookups(client, sandbox):
    sandbox.set_rate_limit("dm_events", 2)
    client.get_direct_message_events(user_auth=True)
    client.get_direct_message_events(participant_id="1", user_auth=True)
    with pytest.raises(tweepy.TooManyRequests):
        client.get_direct_message_events(user_auth=True)


def test_dm_event_reads_are_counted_and_billed_once_per_utc_day(client, sandbox):
    sandbox.advance(-sandbox.now() + 1_893_456_000)  # 2030-01-01T00:00:00Z
    sandbox.set_rate_limit("dm_events", 100)
    fan = sandbox.add_follower("21")
    send(client, fan["id"], "welcome")
    sandbox.receive_dm(fan["id"], "thanks")
    sandbox.receive_dm(sandbox.add_user("22")["id"], "hello")

    client.get_direct_message_events(user_auth=True)  # 3 events
    client.get_direct_message_events(participant_id="21", user_auth=True)  # the same 2 again
    client.get_direct_message_events(dm_conversation_id="22-1000", max_results=1, user_auth=True)  # 1 again
    assert sandbox.dm_events_returned == 3 + 2 + 1
    assert sandbox.billed_dm_events_per_day() == {"2030-01-01": 3}

    sandbox.advance(86400)  # a new UTC day bills the same events again
    client.get_direct_message_events(participant_id="22", user_auth=True)
    assert sandbox.billed_dm_events_per_day() == {"2030-01-01": 3, "2030-01-02": 1}
    assert sandbox.billed_users_per_day() == {}  # DM reads are not follower reads

    sandbox.reset_counters()
    assert sandbox.dm_events_returned == 0 and sandbox.billed_dm_events_per_day() == {}


def test_a_non_follower_can_write_and_be_answered_but_not_messaged_first(client, sandbox):
    stranger = sandbox.add_user(username="stranger", name="Stranger")
    assert stranger["id"] not in sandbox.follower_ids()
    with pytest.raises(tweepy.Forbidden):  # nobody follows, nobody wrote: a cold DM is refused
        send(client, stranger["id"])

    sandbox.receive_dm(stranger["id"], "stop")
    events = client.get_direct_message_events(dm_event_fields=["sender_id"], user_auth=True).data
    assert [(e.sender_id, e.text) for e in events] == [(int(stranger["id"]), "stop")]
    assert send(client, stranger["id"], "You will not hear from us again.").data["dm_event_id"]
    assert [d["text"] for d in sandbox.dms_to(stranger["id"])] == ["You will not hear from us again."]

    sandbox.set_receives_dm(stranger["id"], False)  # their DM settings still win
    with pytest.raises(tweepy.Forbidden):
        send(client, stranger["id"])

    # add_user never makes anyone a follower, also for a user who already exists
    assert sandbox.add_user(stranger["id"], name="Renamed")["name"] == "Renamed"
    assert stranger["id"] not in sandbox.follower_ids()
    with pytest.raises(KeyError):
        sandbox.receive_dm("424242", "hi")  # a sender must exist


# ---- user lookup: GET /2/users?ids= ------------------------------------------------------------

LOOKUP_FIELDS = ["connection_status", "receives_your_dm", "protected", "public_metrics"]


def lookup(sandbox, ids, **params):
    return make_client(sandbox, return_type=dict).get_users(ids=ids, user_auth=True, **params)


def not_found(user_id):
    return {
        "value": user_id,
        "detail": f"Could not find user with ids: [{user_id}].",
        "title": "Not Found Error",
        "resource_type": "user",
        "parameter": "ids",
        "resource_id": user_id,
        "type": "https://api.twitter.com/2/problems/resource-not-found",
    }


def test_users_lookup_says_followed_by_for_followers_only(client, sandbox):
    metrics = {"followers_count": 9, "following_count": 2, "tweet_count": 4, "listed_count": 1}
    sandbox.add_follower("31", username="fan", name="Fan", protected=True, public_metrics=metrics)
    sandbox.add_user("32", username="stranger", receives_dm=False)
    sandbox.add_follower("33", username="gone")
    sandbox.remove_follower("33")
    sandbox.rename("31", name="Fan Renamed")

    body = lookup(sandbox, ["31", "32", "33"], user_fields=LOOKUP_FIELDS)
    assert set(body) == {"data"}
    fan, stranger, gone = body["data"]
    assert fan == {
        "id": "31",
        "name": "Fan Renamed",
        "username": "fan",
        "connection_status": ["followed_by"],
        "receives_your_dm": True,
        "protected": True,
        "public_metrics": metrics,
    }
    assert (stranger["connection_status"], stranger["receives_your_dm"]) == ([], False)
    assert gone["connection_status"] == []  # unfollowed: no longer followed_by
    assert "following" not in fan["connection_status"]  # the sandbox account follows nobody

    # Without connection_status asked for, only the default keys; through tweepy's objects too.
    assert lookup(sandbox, ["31"])["data"] == [{"id": "31", "name": "Fan Renamed", "username": "fan"}]
    users = client.get_users(ids=[31, 32], user_fields=["connection_status"], user_auth=True).data
    assert [(u.id, u.connection_status) for u in users] == [(31, ["followed_by"]), (32, [])]
    assert sandbox.requests[-1]["path"] == "/2/users"


def test_users_lookup_unknown_and_suspended_ids_are_partial_errors_with_200(raw, client, sandbox):
    sandbox.add_follower("41")
    sandbox.add_follower("42")
    sandbox.suspend_user("42")
    r = raw.get_users(ids=["41", "999999", "42"], user_fields=["connection_status"], user_auth=True)
    assert r.status_code == 200
    assert r.json() == {
        "data": [{"id": "41", "name": "user41", "username": "user41", "connection_status": ["followed_by"]}],
        "errors": [
            not_found("999999"),
            {
                "value": "42",
                "detail": "User has been suspended: [42].",
                "title": "Forbidden",
                "resource_type": "user",
                "parameter": "ids",
                "resource_id": "42",
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            },
        ],
    }
    assert lookup(sandbox, ["999998", "999999"]) == {"errors": [not_found("999998"), not_found("999999")]}

    # A suspended follower leaves the followers list (and the count), cannot be messaged,
    # and comes back in place when the suspension is lifted.
    assert sandbox.follower_ids() == ["41"]
    assert [u.id for u in followers(client, sandbox).data] == [41]
    assert client.get_me(user_fields=["public_metrics"], user_auth=True).data.public_metrics["followers_count"] == 1
    with pytest.raises(tweepy.Forbidden):
        send(client, "42")
    sandbox.unsuspend_user("42")
    assert sandbox.follower_ids() == ["42", "41"]
    assert lookup(sandbox, ["42"], user_fields=["connection_status"])["data"][0]["connection_status"] == ["followed_by"]
    with pytest.raises(KeyError):
        sandbox.suspend_user("777777")


@pytest.mark.parametrize(
    ("ids", "param"),
    [([str(n) for n in range(1, 102)], "ids"), (["12", "abc"], "ids"), (["1" * 20], "ids")],
)
def test_users_lookup_rejects_what_x_rejects(sandbox, ids, param):
    with pytest.raises(tweepy.BadRequest) as exc:
        make_client(sandbox).get_users(ids=ids, user_auth=True)
    body = exc.value.response.json()
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert param in body["errors"][0]["parameters"]


def test_users_lookup_limits_of_the_ids_list_and_other_params(client, sandbox):
    hundred = lookup(sandbox, [str(n) for n in range(1, 101)])  # 100 is allowed
    assert len(hundred["errors"]) == 100 and "data" not in hundred
    with pytest.raises(tweepy.BadRequest) as exc:
        client.get_users(ids=[str(n) for n in range(1, 102)], user_auth=True)
    message = exc.value.response.json()["errors"][0]["message"]
    assert message == "The number of values in the `ids` query parameter list [101] is not between 1 and 100"
    url = sandbox.base_url + "/2/users"
    for params in ({"ids": ""}, {}, {"ids": "1", "usernames": "x"}, {"ids": "1", "user.fields": "shoe_size"}):
        assert requests.get(url, params=params, auth=oauth(sandbox), timeout=5).status_code == 400
    with pytest.raises(tweepy.BadRequest):  # connection_status is a lookup field, not a followers one
        followers(client, sandbox, user_fields=["connection_status"])
    assert client.get_me(user_auth=True).data.username == "courtesy_demo"  # /2/users/me still routed


def test_users_lookup_rate_limit_headers_429_and_faults(raw, client, sandbox):
    sandbox.add_follower("51")
    start = sandbox.now()
    r = raw.get_users(ids=["51"], user_auth=True)
    assert (r.headers["x-rate-limit-limit"], r.headers["x-rate-limit-remaining"]) == ("900", "899")
    assert start + 900 <= int(r.headers["x-rate-limit-reset"]) <= start + 902

    sandbox.set_rate_limit("users_lookup", 2)
    client.get_users(ids=["51"], user_auth=True)
    client.get_users(ids=["51"], user_auth=True)
    with pytest.raises(tweepy.TooManyRequests) as exc:
        client.get_users(ids=["51"], user_auth=True)
    assert exc.value.response.headers["x-rate-limit-remaining"] == "0"
    assert exc.value.response.json()["title"] == "Too Many Requests"
    sandbox.advance(901)
    assert client.get_users(ids=["51"], user_auth=True).data[0].id == 51

    sandbox.exhaust_rate_limit("users_lookup")
    with pytest.raises(tweepy.TooManyRequests):
        client.get_users(ids=["51"], user_auth=True)
    sandbox.advance(900)
    sandbox.fail_next("users_lookup", 503)
    with pytest.raises(tweepy.TwitterServerError):
        client.get_users(ids=["51"], user_auth=True)
    assert client.get_users(ids=["51"], user_auth=True).data[0].id == 51
    assert sandbox.lookup_users_returned == 5 and sandbox.users_returned == 0


def test_users_lookup_is_billed_per_user_returned_once_per_utc_day(client, sandbox):
    sandbox.advance(-sandbox.now() + 1_893_456_000)  # 2030-01-01T00:00:00Z
    a, b = sandbox.add_follower("61"), sandbox.add_user("62")
    client.get_users(ids=[a["id"], b["id"], "999999"], user_auth=True)  # 2 returned, 1 error
    client.get_users(ids=[a["id"], b["id"]], user_auth=True)  # the same 2 again
    client.get_users(ids=[a["id"], a["id"]], user_auth=True)  # a repeated id is returned once
    assert sandbox.lookup_users_returned == 2 + 2 + 1
    assert sandbox.billed_lookup_users_per_day() == {"2030-01-01": 2}
    assert sandbox.billed_users_per_day() == {}  # lookups are not follower reads

    followers(client, sandbox)
    assert sandbox.billed_users_per_day() == {"2030-01-01": 1}
    assert sandbox.billed_lookup_users_per_day() == {"2030-01-01": 2}

    sandbox.advance(86400)  # a new UTC day bills the same user again
    client.get_users(ids=[b["id"]], user_auth=True)
    assert sandbox.billed_lookup_users_per_day() == {"2030-01-01": 2, "2030-01-02": 1}

    sandbox.reset_counters()
    assert sandbox.lookup_users_returned == 0 and sandbox.billed_lookup_users_per_day() == {}


def test_users_me_public_metrics_counts_current_followers(client, sandbox):
    def me_metrics():
        return client.get_me(user_fields=["public_metrics"], user_auth=True).data.public_metrics

    assert me_metrics()["followers_count"] == 0
    fans = sandbox.add_followers(3)
    metrics = me_metrics()
    assert metrics["followers_count"] == 3
    assert all(isinstance(metrics[k], int) and metrics[k] >= 0 for k in ("following_count", "tweet_count", "listed_count"))
    sandbox.remove_follower(fans[0]["id"])
    assert me_metrics()["followers_count"] == 2

    sandbox.set_followers_count_override(40)  # X's count disagrees with the list
    assert me_metrics()["followers_count"] == 40
    assert len(followers(client, sandbox).data) == 2
    sandbox.set_followers_count_override(None)
    assert me_metrics()["followers_count"] == 2
    assert "public_metrics" not in make_client(sandbox, return_type=dict).get_me(user_auth=True)["data"]


# ---- an empty followers page and an account barred from DMs ------------------------------------


def test_an_injected_empty_followers_page_is_exactly_xs_empty_page(raw, client, sandbox):
    real = raw.get_users_followers(sandbox.account_id, user_auth=True)  # nobody follows yet
    assert (real.status_code, real.content) == (200, b'{"meta": {"result_count": 0}}')
    sandbox.add_followers(3)

    sandbox.fail_next("followers", 200, body={"meta": {"result_count": 0}})
    faulted = raw.get_users_followers(sandbox.account_id, user_auth=True)
    assert (faulted.status_code, faulted.content) == (200, real.content)
    assert {k.lower() for k in faulted.headers} == {k.lower() for k in real.headers}
    assert faulted.headers["x-rate-limit-remaining"] == real.headers["x-rate-limit-remaining"]  # fail_next spends nothing

    sandbox.empty_followers_next(count=2)
    helper = raw.get_users_followers(sandbox.account_id, user_auth=True)
    assert (helper.status_code, helper.content) == (200, real.content)
    assert {k.lower() for k in helper.headers} == {k.lower() for k in real.headers}
    assert int(helper.headers["x-rate-limit-remaining"]) == int(real.headers["x-rate-limit-remaining"]) - 1  # as X: spent
    empty = followers(client, sandbox)
    assert (empty.data, empty.meta) == (None, {"result_count": 0})
    with pytest.raises(tweepy.BadRequest):  # a bad request is still refused while an empty page is pending
        followers(client, sandbox, max_results=0)
    assert len(followers(client, sandbox).data) == 3
    assert sandbox.users_returned == 3


def test_an_account_barred_from_dms_gets_the_same_403_as_a_closed_recipient(raw, client, sandbox):
    fan = sandbox.add_follower("71")
    closed = sandbox.add_follower("72", receives_dm=False)
    with pytest.raises(tweepy.Forbidden) as per_recipient:
        raw.create_direct_message(participant_id=closed["id"], text="hi", user_auth=True)

    sandbox.restrict_dm_sending()
    with pytest.raises(tweepy.Forbidden) as account_level:
        raw.create_direct_message(participant_id=fan["id"], text="hi", user_auth=True)
    a, b = per_recipient.value.response, account_level.value.response
    assert (a.status_code, a.content) == (b.status_code, b.content) == (403, a.content)
    assert a.json() == DM_FORBIDDEN_BODY and a.headers["Content-Type"] == b.headers["Content-Type"]
    # Both are counted against both send windows, as X counts every request that reaches it.
    assert (a.headers["x-rate-limit-remaining"], b.headers["x-rate-limit-remaining"]) == ("14", "13")
    assert b.headers["x-user-limit-24hour-remaining"] == "1438"
    assert sandbox.dm_log == []

    with pytest.raises(tweepy.NotFound):  # an unknown participant is still a 404
        send(client, "987654")
    sandbox.restrict_dm_sending(detail="You are restricted from sending Direct Messages.")
    with pytest.raises(tweepy.Forbidden) as other:
        send(client, fan["id"])
    assert other.value.response.json() == {**DM_FORBIDDEN_BODY, "detail": "You are restricted from sending Direct Messages."}
    sandbox.lift_dm_restriction()
    assert send(client, fan["id"], "now it works").data["dm_event_id"]
    assert [d["text"] for d in sandbox.dm_log] == ["now it works"]


# ---- cursor property (pure function, no HTTP) --------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(initial=st.integers(0, 40), page_size=st.integers(1, 12), arrivals=st.lists(st.integers(0, 5), max_size=8))
def test_paging_sees_every_original_follower_once_despite_arrivals(initial, page_size, arrivals):
    seqs = list(range(initial, 0, -1))  # newest-first follow sequence numbers
    newest, seen, token = initial, [], None
    for arriving in arrivals + [0] * 50:
        page, meta = paginate(seqs, lambda s: s, token, page_size, "f")
        seen += page
        token = meta.get("next_token")
        if not token:
            break
        new = list(range(newest + arriving, newest, -1))
        newest += arriving
        seqs = new + seqs
    # every follower present at the start, exactly once, newest-first; no later arrival slips in
    assert seen == list(range(initial, 0, -1))


# --- OAuth 2.0 user context --------------------------------------------------------------------


def refresh(sandbox: XSandbox, refresh_token: str, client_id: str = "sandbox-oauth2-confidential", *, basic: bool = True, **form):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    auth = None
    if basic:
        auth = (client_id, sandbox.oauth2_clients[client_id] or "")
    else:
        data["client_id"] = client_id
    return requests.post(sandbox.base_url + "/2/oauth2/token", data=data, auth=auth, timeout=5)


def bearer_client(sandbox: XSandbox, access_token: str) -> tweepy.Client:
    client = tweepy.Client(bearer_token=access_token, return_type=requests.Response)
    client.session.mount(X_HOST + "/", RedirectAdapter(sandbox.base_url))
    return client


def test_an_issued_oauth2_access_token_works_as_a_bearer_user_token_for_two_hours(sandbox):
    secret = sandbox.issue_oauth2_tokens()
    assert set(secret) == {"client_id", "client_secret", "access_token", "refresh_token", "expires_at"}
    assert secret["expires_at"] == int(sandbox.now()) + 7200
    client = bearer_client(sandbox, secret["access_token"])
    assert client.get_me(user_auth=False).json()["data"]["id"] == sandbox.account_id
    sandbox.add_followers(2)
    assert len(client.get_users_followers(sandbox.account_id, user_auth=False).json()["data"]) == 2
    sandbox.advance(7200)
    with pytest.raises(tweepy.Unauthorized):
        client.get_me(user_auth=False)
    with pytest.raises(tweepy.Unauthorized):
        bearer_client(sandbox, "not-a-token").get_me(user_auth=False)


def test_a_public_client_has_no_secret_and_names_itself_in_the_body(sandbox):
    secret = sandbox.issue_oauth2_tokens("sandbox-oauth2-public")
    assert "client_secret" not in secret
    answer = refresh(sandbox, secret["refresh_token"], "sandbox-oauth2-public", basic=False)
    assert answer.status_code == 200
    # A confidential client may not skip its authentication.
    confidential = sandbox.issue_oauth2_tokens()
    assert refresh(sandbox, confidential["refresh_token"], basic=False).json()["error"] == "invalid_client"


def test_a_refresh_rotates_the_refresh_token_and_answers_as_x_documents(sandbox):
    secret = sandbox.issue_oauth2_tokens()
    answer = refresh(sandbox, secret["refresh_token"])
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert set(body) == {"token_type", "expires_in", "access_token", "scope", "refresh_token"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 7200 and "offline.access" in body["scope"]
    assert body["refresh_token"] != secret["refresh_token"] and body["access_token"] != secret["access_token"]
    assert bearer_client(sandbox, body["access_token"]).get_me(user_auth=False).status_code == 200
    # The spent refresh token is refused, every time; the new one works once.
    for _ in range(2):
        spent = refresh(sandbox, secret["refresh_token"])
        assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    assert refresh(sandbox, body["refresh_token"]).status_code == 200
    assert sandbox.token_calls(secret["refresh_token"]) == 3 and sandbox.token_calls(body["refresh_token"]) == 1
    assert not sandbox.refresh_token_live(secret["refresh_token"])


def test_the_token_endpoint_refuses_what_x_refuses(sandbox):
    secret = sandbox.issue_oauth2_tokens()
    wrong_secret = requests.post(
        sandbox.base_url + "/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": secret["refresh_token"]},
        auth=("sandbox-oauth2-confidential", "wrong"),
        timeout=5,
    )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert refresh(sandbox, "unknown").json()["error"] == "invalid_grant"
    assert refresh(sandbox, secret["refresh_token"], grant_type="authorization_code").json()["error"] == "unsupported_grant_type"
    as_json = requests.post(sandbox.base_url + "/2/oauth2/token", json={"grant_type": "refresh_token"}, timeout=5)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    # Another client's refresh token is not this client's.
    public = sandbox.issue_oauth2_tokens("sandbox-oauth2-public")
    assert refresh(sandbox, public["refresh_token"]).json()["error"] == "invalid_grant"
    assert sandbox.refresh_token_live(secret["refresh_token"]) and sandbox.refresh_token_live(public["refresh_token"])


def test_token_faults_fail_without_spending_or_spend_and_drop_the_answer(sandbox):
    secret = sandbox.issue_oauth2_tokens()
    sandbox.fail_next_token_request(503)
    assert refresh(sandbox, secret["refresh_token"]).status_code == 503
    assert sandbox.refresh_token_live(secret["refresh_token"])
    sandbox.drop_token_answer_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(sandbox, secret["refresh_token"])
    assert not sandbox.refresh_token_live(secret["refresh_token"]), "the refresh happened; only its answer was lost"
