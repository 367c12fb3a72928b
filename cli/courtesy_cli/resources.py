"""Finding the deployed stack's resources, and AWS errors in plain words.

Resources come from the stack's CloudFormation Outputs (``--stack``, default ``courtesy``),
or are named explicitly (``--ledger-table``, ``--idempotency-table``, ``--secret``) for a
local setup; explicit names win, and the stack is only read for what is still missing.
boto3 is used as-is, so AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL and the rest of the
standard AWS environment apply (moto included).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

OUTPUTS = {
    "ledger_table": "LedgerTableName",
    "idempotency_table": "IdempotencyTableName",
    "secret": "XCredentialsSecretArn",
    "function": "FunctionName",
}
FLAGS = {"ledger_table": "--ledger-table", "idempotency_table": "--idempotency-table", "secret": "--secret", "function": "--function"}


class CliError(Exception):
    """A problem explained to the operator; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def explain_aws_error(exc: Exception, doing: str) -> CliError:
    """An AWS failure in the operator's words. AWS error messages name resources, never secret values."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CliError(
            f"No AWS credentials found while {doing}: configure a profile (aws configure, AWS_PROFILE) "
            "or set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."
        )
    if isinstance(exc, NoRegionError):
        return CliError(f"No AWS region set while {doing}: pass --region or set AWS_REGION.")
    if isinstance(exc, ProfileNotFound):
        return CliError(f"AWS profile not found while {doing}: {exc}")
    if isinstance(exc, EndpointConnectionError):
        return CliError(f"Could not reach AWS while {doing}: {exc}")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", "")
        if code in ("ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "InvalidClientTokenId"):
            return CliError(f"AWS rejected the credentials while {doing} ({code}): refresh them (e.g. aws sso login).")
        if code in ("AccessDenied", "AccessDeniedException"):
            return CliError(f"AWS denied access while {doing}: {message}")
        if code == "ResourceNotFoundException":
            return CliError(f"Not found while {doing}: {message}")
        return CliError(f"AWS answered {code} while {doing}: {message}")
    if isinstance(exc, BotoCoreError):
        return CliError(f"AWS client error while {doing}: {exc}")
    return CliError(f"Unexpected error while {doing}: {type(exc).__name__}")


@dataclass
class Resources:
    """The stack's resource names, found lazily: only what a command needs is looked up."""

    stack: str
    explicit: dict[str, str] = field(default_factory=dict)
    region: str | None = None
    profile: str | None = None
    _outputs: dict[str, str] | None = None

    @functools.cached_property
    def session(self) -> boto3.Session:
        try:
            return boto3.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound as exc:
            raise explain_aws_error(exc, "opening the AWS profile") from None

    def client(self, service: str) -> Any:
        try:
            return self.session.client(service)  # type: ignore[call-overload]
        except (NoRegionError, BotoCoreError) as exc:
            raise explain_aws_error(exc, f"creating the {service} client") from None

    @functools.cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    def stack_outputs(self) -> dict[str, str]:
        if self._outputs is None:
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"]
            except ClientError as exc:
                message = exc.response.get("Error", {}).get("Message", "")
                if "does not exist" in message:
                    raise CliError(
                        f"Stack {self.stack!r} not found in region {self.session.region_name or '?'}: pass --stack NAME "
                        "(or set COURTESY_STACK), or name the resources with --ledger-table, --idempotency-table and --secret."
                    ) from None
                raise explain_aws_error(exc, f"reading stack {self.stack!r}") from None
            except BotoCoreError as exc:
                raise explain_aws_error(exc, f"reading stack {self.stack!r}") from None
            self._outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
        return self._outputs

    def name(self, what: str, *, required: bool = True) -> str:
        """One resource's name: explicit, or from the stack's output."""
        if self.explicit.get(what):
            return self.explicit[what]
        value = self.stack_outputs().get(OUTPUTS[what], "")
        if not value and required:
            raise CliError(
                f"Stack {self.stack!r} has no output {OUTPUTS[what]!r}; is it a Courtesy stack from this template? "
                f"Name the resource with {FLAGS[what]} instead."
            )
        return value

    def describe(self, *whats: str) -> dict[str, str]:
        return {what: self.name(what) for what in whats}

    def function_environment(self, function_name: str) -> dict[str, str]:
        """The deployed function's environment: its settings (the X credentials are in the secret, not here)."""
        try:
            config = self.client("lambda").get_function_configuration(FunctionName=function_name)
        except (ClientError, BotoCoreError) as exc:
            raise explain_aws_error(exc, f"reading function {function_name!r}'s settings") from None
        return dict(config.get("Environment", {}).get("Variables", {}))
