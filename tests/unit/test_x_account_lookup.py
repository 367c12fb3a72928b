"""The users lookup (GET /2/users?ids=) and the followers count (GET /2/users/me) read from X's
answers, with tweepy's client replaced by canned answers: no network."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from courtesy.domain import Follower, follows_account
from courtesy.errors import RateLimited, UnexpectedAnswer
from courtesy.x_account import FOLLOWER_FIELDS, LOOKUP_FIELDS, USERS_LOOKUP_MAX_IDS, XAccount

CREDENTIALS = {"consumer_key": "ck", "consumer_secret": "cs", "access_token": "1-at", "access_token_secret": "ats"}
NOW = 1_800_000_000.0


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def user(user_id: str, *relations: str, **fields: Any) -> dict[str, Any]:
    return {"id": user_id, "username": f"u{user_id}", "name": f"User {user_id}", "connection_status": list(relations), **fields}


def not_found(user_id: str, title: str = "Not Found Error") -> dict[str, Any]:
    return {
        "value": user_id,
        "detail": f"Could not find user with ids: [{user_id}].",
        "title": title,
        "resource_type": "user",
        "parameter": "ids",
        "resource_id": user_id,
        "type": "https://api.twitter.com/2/problems/resource-not-found",
    }


class Client:
    """tweepy.Client's get_users and get_me, answering from a list and recording each call."""

    def __init__(self, *answers: requests.Response):
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def get_users(self, **kwargs: Any) -> requests.Response:
        self.calls.append(kwargs)
        return self.answers.pop(0)

    get_me = get_users


def account_with(*answers: requests.Response) -> tuple[XAccount, Client]:
    account = XAccount(CREDENTIALS, base_url="http://x.invalid", clock=lambda: NOW)
    client = Client(*answers)
    account._client = client  # type: ignore[assignment]
    return account, client


def test_each_distinct_id_gets_a_follower_or_none_when_x_lists_it_in_errors():
    account, client = account_with(
        answer(
            {
                "data": [user("11", "followed_by", receives_your_dm=False, protected=True), user("12", "following")],
                "errors": [not_found("13"), not_found("14", "Forbidden")],
            }
        )
    )
    found = account.lookup_users(["11", "12", "13", "11", "14"])
    assert list(found) == ["11", "12", "13", "14"] and found["13"] is None and found["14"] is None
    first, second = found["11"], found["12"]
    assert isinstance(first, Follower) and isinstance(second, Follower)
    assert (first.username, first.name) == ("u11", "User 11")
    assert first.profile == {"connection_status": ["followed_by"], "receives_your_dm": False, "protected": True}
    assert follows_account(first) and not follows_account(second)
    [call] = client.calls
    assert call == {"ids": ["11", "12", "13", "14"], "user_fields": LOOKUP_FIELDS, "user_auth": True}
    assert LOOKUP_FIELDS == [*FOLLOWER_FIELDS, "connection_status"]


def test_more_than_a_hundred_ids_go_in_batches_of_a_hundred():
    ids = [str(100 + i) for i in range(2 * USERS_LOOKUP_MAX_IDS + 50)]
    batches = [ids[i : i + USERS_LOOKUP_MAX_IDS] for i in range(0, len(ids), USERS_LOOKUP_MAX_IDS)]
    account, client = account_with(*(answer({"data": [user(i, "followed_by") for i in batch]}) for batch in batches))
    found = account.lookup_users(ids)
    assert [len(call["ids"]) for call in client.calls] == [100, 100, 50]
    assert list(found) == ids and all(follows_account(f) for f in found.values() if f)
    assert account.lookup_users([]) == {} and len(client.calls) == 3


def test_all_ids_unknown_is_an_answer_too():
    account, _ = account_with(answer({"errors": [not_found("21"), not_found("22")]}))
    assert account.lookup_users(["21", "22"]) == {"21": None, "22": None}


@pytest.mark.parametrize(
    "body, says",
    [
        ({"data": [user("31")]}, "says nothing of 1 of the 2 ids"),
        ({"data": [user("31")], "errors": [{**not_found("32"), "resource_type": "tweet"}]}, "says nothing of 1"),
        ({"data": [user("31"), user("99")]}, "says nothing of 1"),  # an id not asked answers nothing
        ({"data": {"id": "31"}, "errors": [not_found("32")]}, "no data list"),
        ({"data": [user("31")], "errors": "32"}, "no data list"),
        ({"data": [user("31"), {**user("32"), "id": 32}]}, "without a numeric string id"),
        ({"data": [user("31"), {**user("32"), "id": "@32"}]}, "without a numeric string id"),
        ({"data": [user("31"), {**user("32"), "connection_status": "followed_by"}]}, "connection_status that is not a list"),
    ],
)
def test_an_answer_that_cannot_settle_every_id_decides_nothing(body, says):
    account, _ = account_with(answer(body))
    with pytest.raises(UnexpectedAnswer, match=says):
        account.lookup_users(["31", "32"])


def test_the_lookup_window_is_kept_from_the_headers_and_spent_means_no_request():
    reset = str(int(NOW) + 600)
    account, client = account_with(
        answer({"data": [user("41")]}, headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}),
    )
    assert account.users_lookup_spent() is None
    account.lookup_users(["41"])
    spent = account.users_lookup_spent()
    assert isinstance(spent, RateLimited) and spent.reset_at == float(reset)
    with pytest.raises(RateLimited):
        account.lookup_users(["42"])
    assert len(client.calls) == 1


def test_follows_account_reads_only_a_followed_by_in_a_list():
    assert follows_account(Follower("1", "a", "A", {"connection_status": ["following", "followed_by"]}))
    assert not follows_account(Follower("1", "a", "A", {"connection_status": ["following"]}))
    assert not follows_account(Follower("1", "a", "A", {}))
    assert not follows_account(Follower("1", "a", "A", {"connection_status": "followed_by"}))


def test_the_followers_count_is_read_from_public_metrics():
    account, client = account_with(answer({"data": {"id": "1", "public_metrics": {"followers_count": 1234, "following_count": 5}}}))
    assert account.followers_count() == 1234
    assert client.calls == [{"user_auth": True, "user_fields": ["public_metrics"]}]


@pytest.mark.parametrize(
    "data",
    [
        {"id": "1"},
        {"id": "1", "public_metrics": {}},
        {"id": "1", "public_metrics": {"followers_count": -1}},
        {"id": "1", "public_metrics": {"followers_count": "12"}},
        {"id": "1", "public_metrics": {"followers_count": 12.0}},
        {"id": "1", "public_metrics": {"followers_count": True}},
        {"id": "1", "public_metrics": [12]},
        None,
    ],
)
def test_a_followers_count_that_is_not_a_count_is_unexpected(data):
    account, _ = account_with(answer({"data": data}))
    with pytest.raises(UnexpectedAnswer, match="followers_count"):
        account.followers_count()
