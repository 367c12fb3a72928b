"""Local X API v2 sandbox for tests and manual runs (see x_sandbox.py)."""

from .x_sandbox import DEFAULT_CREDENTIALS, DM_FORBIDDEN_BODY, TOO_MANY_REQUESTS_BODY, USAGE_CAPPED_BODY, XSandbox

__all__ = ["XSandbox", "DEFAULT_CREDENTIALS", "DM_FORBIDDEN_BODY", "USAGE_CAPPED_BODY", "TOO_MANY_REQUESTS_BODY"]
