"""Cold start: the handler module's import time against its unavoidable dependencies'.

Each measurement is a fresh interpreter (nothing cached in memory), timed from inside,
so interpreter start-up is left out. Pairs alternate, so drift hits both sides alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from tools.local_aws import function_environment, load_template

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
# What app.py (and observability.py) import from outside the project: the floor.
DEPENDENCIES = """
import boto3
import tweepy
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
"""
# Tracer() imports the X-Ray SDK (its provider) in every environment, traced or not: using the
# Powertools Tracer at all costs this, so the fair floor includes it.
TRACER_PROVIDER = "import aws_xray_sdk.core\n"
HANDLER = "import courtesy.app"
TIMED = "import time\nstarted = time.perf_counter()\n{code}\nprint(time.perf_counter() - started)\n"


def _environment(tracing: bool) -> dict[str, str]:
    """The deployed function's variables; AWS_LAMBDA_FUNCTION_NAME makes Powertools behave as
    in Lambda, where Tracing: Active turns the Tracer (and X-Ray's patching) on."""
    env = function_environment(load_template(), {"AWS_LAMBDA_FUNCTION_NAME": "courtesy-bench", "AWS_DEFAULT_REGION": "us-east-1"})
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "src" / "handler"), **env}


def import_seconds(code: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", TIMED.format(code=code)], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    return float(out.stdout.strip().splitlines()[-1])


def measure(repeats: int = 7, *, tracing: bool = True) -> dict[str, float]:
    """Median import seconds of the floors and the handler, and the median ratios."""
    env = _environment(tracing)
    import_seconds(HANDLER, env)  # writes any missing .pyc files, as a built package ships them
    runs: dict[str, list[float]] = {"imports": [], "with_tracer": [], "handler": []}
    for _ in range(repeats):
        runs["imports"].append(import_seconds(DEPENDENCIES, env))
        runs["with_tracer"].append(import_seconds(DEPENDENCIES + TRACER_PROVIDER, env))
        runs["handler"].append(import_seconds(HANDLER, env))
    out = {name: statistics.median(values) for name, values in runs.items()}
    for floor in ("imports", "with_tracer"):
        out[f"ratio_{floor}"] = statistics.median(h / d for h, d in zip(runs["handler"], runs[floor], strict=True))
    return out


def built_sizes() -> dict[str, int] | None:
    """Bytes on disk of each built artifact (function code, dependencies layer), if built."""
    if not BUILD.is_dir():
        return None
    sizes = {}
    for artifact in sorted(p for p in BUILD.iterdir() if p.is_dir()):
        sizes[artifact.name] = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file())
    return sizes
