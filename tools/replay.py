"""`make replay`: run one event through what `sam build` made, the way `sam local invoke`
does, without Docker.

    python -m tools.replay [--event events/schedule.json] [--env-vars events/env.json]
                           [--parameter-overrides WelcomeMode=digest DryRun=false]
    python -m tools.replay --build-only
    (also --at now|ISO: the event's scheduled_time; --build-dir DIR: replay another build as it is)

It builds first when template.yaml, src/handler or layers/deps changed since the last build
(`sam build --cached`), then starts a separate Python 3.13 interpreter (tools/lambda_bootstrap.py)
whose import path holds only the built function, its built layer and the runtime's own
boto3/botocore (tools/lambda_runtime.txt, in .aws-sam/runtime-sdk): nothing of the project's
virtualenv. The function's environment is the template's, with parameters at their defaults
or overridden, then the env-vars file's values (the file `sam local invoke --env-vars` takes;
unlike sam, variables the template does not declare, such as AWS_ENDPOINT_URL, are passed
too), then what Lambda sets. Its logs and the START/END/REPORT lines go to stderr and the
result to stdout, as `sam local invoke` prints them; the exit status is 1 if the function
failed. It reaches real X or AWS only if the env-vars file says so.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tools.local_aws import FAKE_AWS_KEYS, FUNCTION, LOCAL_ACCOUNT, LOCAL_REGION, function_environment, load_template

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
RUNTIME_SDK_DIR = ROOT / ".aws-sam" / "runtime-sdk"
RUNTIME_PIN = Path(__file__).with_name("lambda_runtime.txt")
BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
BUILD_INPUTS = ("template.yaml", "src/handler", "layers/deps")
STAMP = ".courtesy-inputs"
RUNTIME = "python3.13"
# The function's platform, as layers/deps/Makefile builds its layer.
ARM64_WHEELS = ("--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.13", "--only-binary=:all:")
# Where Python 3.13 may be, when PYTHON313 does not say (as the Makefile looks).
PYTHON313_CANDIDATES = ("python3.13", "~/.pyenv/versions/3.13*/bin/python3.13", "/usr/local/bin/python3.13")
# Beyond the function's own timeout, how long the interpreter may take to start and import it.
INIT_ALLOWANCE_S = 30


class ReplayError(Exception):
    """The replay cannot start; the message says what to do."""


def find_python313() -> str:
    """The interpreter that plays the runtime: PYTHON313, or a Python 3.13 found as the Makefile finds one."""
    candidates = [os.environ["PYTHON313"]] if os.environ.get("PYTHON313") else []
    for pattern in PYTHON313_CANDIDATES:
        expanded = os.path.expanduser(pattern)
        candidates += sorted(glob.glob(expanded)) if "/" in pattern else [shutil.which(pattern) or ""]
    for candidate in filter(None, candidates):
        check = [candidate, "-I", "-S", "-c", "import sys; assert sys.version_info[:2] == (3, 13)"]
        with contextlib.suppress(OSError):
            if subprocess.run(check, capture_output=True, check=False).returncode == 0:  # noqa: S603 - our own check
                return candidate
    raise ReplayError(f"a replay needs Python 3.13 ({RUNTIME}, the function's runtime): none found; set PYTHON313=/path/to/python3.13")


def inputs_digest() -> str:
    """What `sam build` builds from: a new digest means the build is out of date."""
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One build or SDK install at a time (parallel tests, two terminals)."""
    lock_path = ROOT / ".aws-sam" / ".replay.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_built(python313: str, *, output: Any = None) -> Path:
    """.aws-sam/build as `sam build` makes it from the current sources (built again only if they changed)."""
    with _exclusive():
        stamp = BUILD_DIR / STAMP
        digest = inputs_digest()
        if (BUILD_DIR / "template.yaml").is_file() and stamp.is_file() and stamp.read_text() == digest:
            return BUILD_DIR
        sam = Path(sys.executable).parent / "sam"
        env = {**os.environ, "PATH": f"{Path(python313).parent}{os.pathsep}{os.environ.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0"}
        command = [str(sam), "build", "--cached", "--build-dir", str(BUILD_DIR)]
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=output or sys.stderr, stderr=subprocess.STDOUT, check=False)  # noqa: S603
        if done.returncode != 0:
            raise ReplayError(f"sam build failed (exit {done.returncode}); its output is above")
        stamp.write_text(digest)
        return BUILD_DIR


def ensure_runtime_sdk(*, output: Any = None) -> Path:
    """The runtime's boto3/botocore (tools/lambda_runtime.txt) in a folder of its own."""
    with _exclusive():
        stamp = RUNTIME_SDK_DIR / STAMP
        pin = hashlib.sha256(RUNTIME_PIN.read_bytes()).hexdigest()
        if stamp.is_file() and stamp.read_text() == pin:
            return RUNTIME_SDK_DIR
        staging = Path(tempfile.mkdtemp(prefix="runtime-sdk-", dir=RUNTIME_SDK_DIR.parent))
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(staging)]
        command += ["--requirement", str(RUNTIME_PIN), *ARM64_WHEELS]
        done = subprocess.run(command, stdout=output or sys.stderr, stderr=subprocess.STDOUT, check=False)  # noqa: S603
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ReplayError(f"could not install the runtime's boto3/botocore ({RUNTIME_PIN.name}); pip's output is above")
        shutil.rmtree(staging / "bin", ignore_errors=True)
        (staging / STAMP).write_text(pin)
        shutil.rmtree(RUNTIME_SDK_DIR, ignore_errors=True)
        staging.rename(RUNTIME_SDK_DIR)
        return RUNTIME_SDK_DIR


@dataclass(frozen=True)
class BuiltFunction:
    template: dict[str, Any]
    handler: str
    task_root: Path
    layers: list[Path]
    timeout_s: int
    memory_mb: int
    logging_config: dict[str, Any]


def built_function(build_dir: Path = BUILD_DIR) -> BuiltFunction:
    """The function as the built template describes it (code and layer folders, timeout, memory)."""
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise ReplayError(f"no built template at {template_path}: run `make build`")
    template = load_template(template_path)
    settings = {**template.get("Globals", {}).get("Function", {}), **template["Resources"][FUNCTION]["Properties"]}
    if settings.get("Runtime") != RUNTIME:
        raise ReplayError(f"the function's runtime is {settings.get('Runtime')}, and a replay plays {RUNTIME} only")
    layers = []
    for layer in settings.get("Layers", []):
        content = build_dir / template["Resources"][layer["Ref"]]["Properties"]["ContentUri"]
        # Lambda puts a Python layer's two folders on the path, in this order.
        layers += [content / "python" / "lib" / RUNTIME / "site-packages", content / "python"]
    return BuiltFunction(
        template=template,
        handler=settings["Handler"],
        task_root=build_dir / settings["CodeUri"],
        layers=layers,
        timeout_s=int(settings.get("Timeout", 3)),
        memory_mb=int(settings.get("MemorySize", 128)),
        logging_config=settings.get("LoggingConfig", {}),
    )


def _as_env_value(value: Any) -> str:
    """sam's rule: the runtime takes strings; true/false as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_env_vars(path: Path) -> dict[str, str]:
    """The function's variables from an env-vars file: its "Parameters" for every function,
    then its CourtesyFunction section (which wins), as sam reads the file."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReplayError(f"cannot read the env-vars file {path}: {e}") from None
    if not isinstance(content, dict) or not all(isinstance(v, dict) for v in content.values()):
        raise ReplayError(f'{path} must be a JSON object of objects, e.g. {{"{FUNCTION}": {{"DRY_RUN": "true"}}}}')
    merged = {**content.get("Parameters", {}), **content.get(FUNCTION, {})}
    return {key: _as_env_value(value) for key, value in merged.items()}


def _credentials(env: dict[str, str]) -> dict[str, str]:
    """AWS credentials for the function: never real ones for a local endpoint; otherwise the
    caller's, as `sam local invoke` passes them."""
    if env.get("AWS_ENDPOINT_URL"):
        return {k: v for k, v in FAKE_AWS_KEYS.items() if k != "AWS_DEFAULT_REGION"}
    import boto3

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ReplayError("the env-vars file sends the function to AWS itself (no AWS_ENDPOINT_URL), and no AWS credentials are set here")
    frozen = credentials.get_frozen_credentials()
    found = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        found["AWS_SESSION_TOKEN"] = frozen.token
    return found


def lambda_environment(function: BuiltFunction, env_vars: dict[str, str], parameters: dict[str, str]) -> dict[str, str]:
    """The whole environment the function sees: Lambda's variables, the template's, the file's."""
    try:
        declared = function_environment(function.template, env_vars, parameters)
    except ValueError as e:
        raise ReplayError(str(e)) from None
    region = declared.get("AWS_REGION") or declared.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    lambda_vars = {
        "AWS_SAM_LOCAL": "true",  # as sam local sets it: Powertools' tracer stays off
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout_s),
        "AWS_LAMBDA_FUNCTION_HANDLER": function.handler,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCOUNT_ID": LOCAL_ACCOUNT,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
        "_HANDLER": function.handler,
        "LAMBDA_TASK_ROOT": str(function.task_root),
        "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        # Lambda has no ~/.aws: this machine's profiles and keys must not reach the function.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **_credentials(declared),
    }
    if function.logging_config.get("LogFormat"):
        lambda_vars["AWS_LAMBDA_LOG_FORMAT"] = function.logging_config["LogFormat"]
        if function.logging_config["LogFormat"] == "JSON":
            lambda_vars["AWS_LAMBDA_LOG_LEVEL"] = function.logging_config.get("ApplicationLogLevel", "INFO")
    return {**lambda_vars, **declared}


def _check_local_peers(env: dict[str, str]) -> None:
    """A local peer that is not running fails here, with what to start, not deep in the run."""
    peers = {
        "X_API_BASE_URL": "the X sandbox: python -m sandbox --followers 50",
        "AWS_ENDPOINT_URL": "the local AWS: python -m tools.local_aws",
    }
    for name, start in peers.items():
        url = urlsplit(env.get(name, ""))
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            continue
        try:
            socket.create_connection((url.hostname, url.port or 80), timeout=2).close()
        except OSError:
            raise ReplayError(f"nothing answers at {env[name]} ({name}): start {start}") from None


def describe(env: dict[str, str]) -> str:
    x = env.get("X_API_BASE_URL") or "X's API (api.x.com)"
    aws = env.get("AWS_ENDPOINT_URL") or f"AWS ({env['AWS_REGION']})"
    mode = "dry run" if env.get("DRY_RUN", "true").lower() != "false" else "LIVE: messages are sent"
    return f"X: {x} · AWS: {aws} · {env.get('WELCOME_MODE', 'dm')} mode · {mode}"


def replay(
    event: Path,
    env_vars_file: Path,
    parameters: dict[str, str],
    *,
    at: datetime | None = None,
    build_dir: Path | None = None,
    python313: str | None = None,
) -> int:
    """Build if needed, then run the event (its scheduled_time set to `at`, if given) through the
    built function; the function's exit status."""
    python313 = python313 or find_python313()
    try:
        payload = json.loads(event.read_text())
    except (OSError, ValueError) as e:
        raise ReplayError(f"cannot read the event {event}: {e}") from None
    if at is not None:
        if not isinstance(payload, dict) or "scheduled_time" not in payload:
            raise ReplayError(f"{event} has no scheduled_time to set")
        payload["scheduled_time"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if build_dir is None:
        build_dir = ensure_built(python313)
    runtime_sdk = ensure_runtime_sdk()
    function = built_function(build_dir)
    env = lambda_environment(function, read_env_vars(env_vars_file), parameters)
    _check_local_peers(env)
    request_id = str(uuid.uuid4())
    spec = {
        "request_id": request_id,
        "handler": function.handler,
        "task_root": str(function.task_root),
        "layers": [str(p) for p in function.layers],
        "runtime_sdk": str(runtime_sdk),
        "timeout_s": function.timeout_s,
        "memory_mb": function.memory_mb,
        "function_name": FUNCTION,
        "region": env["AWS_REGION"],
        "account": LOCAL_ACCOUNT,
        "event": payload,
    }
    print(f"Replaying {event} through {build_dir.relative_to(ROOT) if build_dir.is_relative_to(ROOT) else build_dir}", file=sys.stderr)
    print(f"({function.handler}, {RUNTIME} at {python313}, no Docker) · {describe(env)}", file=sys.stderr, flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        command = [python313, "-I", "-S", str(BOOTSTRAP), handle.name]
        limit = function.timeout_s + INIT_ALLOWANCE_S
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=limit, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            print(f"replay: the function did not start within {INIT_ALLOWANCE_S} s", file=sys.stderr)
            return 1
    finally:
        os.unlink(handle.name)
    sys.stdout.write(done.stdout.decode())
    sys.stdout.flush()
    _explain_repeat(done.stdout, request_id)
    return done.returncode


def _explain_repeat(stdout: bytes, request_id: str) -> None:
    """An event already handled is answered from the idempotency record, and nothing runs:
    right for a duplicate delivery, surprising in a replay. Say so."""
    with contextlib.suppress(ValueError):
        result = json.loads(stdout)
        run_id = result.get("run_id") if isinstance(result, dict) else None
        if isinstance(run_id, str) and not run_id.endswith(request_id):
            print(
                f"replay: this event (slot {run_id.split('/')[0]}) was handled before, so the function returned that run's "
                "result and did nothing (a duplicate changes nothing). For a new run: make replay AT=now",
                file=sys.stderr,
            )


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not Name=value")
    return name, value


def _moment(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither now nor an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--event", type=Path, default=ROOT / "events" / "schedule.json", help="the event (default events/schedule.json)")
    parser.add_argument("--env-vars", type=Path, default=ROOT / "events" / "env.json", help="the env-vars file (default events/env.json)")
    parser.add_argument(
        "--parameter-overrides", nargs="*", type=_parameter, default=[], metavar="NAME=VALUE", help="template parameters, as for sam"
    )
    parser.add_argument("--at", type=_moment, help='set the event\'s scheduled_time: "now" or an ISO time (default: as in the file)')
    parser.add_argument("--build-dir", type=Path, help="replay this build as it is (default: .aws-sam/build, built first if out of date)")
    parser.add_argument("--build-only", action="store_true", help="build (if the sources changed) and stop")
    args = parser.parse_args(argv)
    try:
        if args.build_only:
            ensure_built(find_python313())
            ensure_runtime_sdk()
            return 0
        return replay(args.event, args.env_vars, dict(args.parameter_overrides), at=args.at, build_dir=args.build_dir)
    except ReplayError as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
