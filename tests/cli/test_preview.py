"""`courtesy preview`: the real cycle, dry, against the sandbox; the ledger is never written."""

from __future__ import annotations

import json

from tests.cli.conftest import OUTPUTS
from tests.cli.test_status import rows


def test_preview_shows_who_would_get_which_message_and_writes_nothing(world):
    world.run()  # baseline
    world.x.add_followers(3, prefix="queued")
    world.run(MAX_WELCOMES_PER_RUN="1")  # one welcomed, two still pending
    newcomers = world.x.add_followers(2, prefix="newcomer")  # not seen by any run yet
    before, dms_before, pending_before = world.items(), len(world.x.dm_log), world.queued()

    code, out, err = world.cli(
        "--ledger-table", OUTPUTS["LedgerTableName"], "--secret", OUTPUTS["XCredentialsSecretArn"],
        "preview", "--x-api-base-url", world.x.base_url,
    )  # fmt: skip

    assert code == 0, err
    assert f"X API: {world.x.base_url}" in out and f"X API: {world.x.base_url}" in err  # where the credentials went
    assert world.items() == before, "the preview wrote to the ledger"
    assert world.queued() == pending_before
    assert len(world.x.dm_log) == dms_before, "the preview sent a DM"
    welcomes = [r for r in rows(out) if len(r) == 4]  # follower, username, template, message
    assert [r[1] for r in welcomes] == ["@queued32", "@queued33", "@newcomer34", "@newcomer35"]  # oldest first
    assert all(len(r[2]) == 10 for r in welcomes)  # a template id
    assert welcomes[1][3] == "Hey @queued33, thanks for the follow. Nice to meet you!"
    assert "Nothing was sent and nothing was written" in out
    recorded = [r for r in rows(out) if len(r) == 5]  # follower, username, from, to, reason
    assert [(r[0], r[2], r[3]) for r in recorded] == [(n["id"], "new", "pending") for n in newcomers]  # oldest first


def test_preview_json_with_stack_discovery_and_trial_templates(world, monkeypatch):
    world.run()
    fans = world.x.add_followers(2)
    monkeypatch.setenv("X_API_BASE_URL", world.x.base_url)
    monkeypatch.setenv("X_API_ALLOW_OTHER_HOST", "true")
    before = world.items()

    code, out, err = world.cli("preview", "--json", "--templates", '["Hello {first_name}, thanks!"]')

    assert code == 0, err
    report = json.loads(out)  # the X API line goes to stderr: stdout stays JSON
    assert report["settings"] == "defaults"  # the test stack has no FunctionName output
    assert report["x_api"] == world.x.base_url and f"X API: {world.x.base_url}" in err
    would = {w["follower_id"]: w for w in report["summary"]["would_welcome"]}
    assert set(would) == {f["id"] for f in fans}
    assert all(w["text"].startswith("Hello Fan") for w in would.values())
    assert {c["to"] for c in report["ledger_changes_not_written"]} == {"pending"}
    assert world.items() == before and world.x.dm_log == []


def test_preview_before_any_run_takes_no_baseline(world, monkeypatch):
    monkeypatch.setenv("X_API_BASE_URL", world.x.base_url)
    monkeypatch.setenv("X_API_ALLOW_OTHER_HOST", "true")
    code, out, err = world.cli("preview")
    assert code == 0, err
    assert "No baseline yet" in out and "would welcome nobody" in out
    assert "The baseline would record 30 followers" in out
    assert world.items() == {}


def test_preview_refuses_broken_credentials_without_showing_them(world, monkeypatch):
    monkeypatch.setenv("X_API_BASE_URL", world.x.base_url)
    monkeypatch.setenv("X_API_ALLOW_OTHER_HOST", "true")
    world.aws.client("secretsmanager").put_secret_value(
        SecretId=OUTPUTS["XCredentialsSecretArn"], SecretString=json.dumps({"consumer_key": "sekrit-value-123"})
    )
    code, out, err = world.cli("preview")
    assert code == 2 and "missing consumer_secret" in err
    assert "sekrit-value-123" not in out + err


def test_preview_sends_the_credentials_to_another_host_only_when_allowed(world, monkeypatch):
    """$X_API_BASE_URL (left over in a shell, say) needs $X_API_ALLOW_OTHER_HOST=true, as the function's
    parameter needs XApiAllowOtherHost; --x-api-base-url on the command line is the opt-in itself."""
    world.run()
    monkeypatch.setenv("X_API_BASE_URL", world.x.base_url)
    requests_before = len(world.x.requests)
    code, out, err = world.cli("preview")
    assert code == 2 and "X_API_ALLOW_OTHER_HOST" in err and world.x.base_url in err
    assert len(world.x.requests) == requests_before, "the credentials went to the other host"
    for value in world.x.credentials.values():
        assert value not in out + err

    monkeypatch.setenv("X_API_BASE_URL", "http://192.0.2.10:8765")  # plain http off this machine: never
    monkeypatch.setenv("X_API_ALLOW_OTHER_HOST", "true")
    code, out, err = world.cli("preview")
    assert code == 2 and "plain http" in err

    monkeypatch.delenv("X_API_ALLOW_OTHER_HOST")
    code, out, err = world.cli("preview", "--x-api-base-url", world.x.base_url)
    assert code == 0, err
    assert f"X API: {world.x.base_url}" in err and "not X" in err
