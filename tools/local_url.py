"""A Lambda Function URL on this machine: each HTTP request becomes a payload format 2.0 event.

    with LocalFunctionUrl(handler) as url:      # handler(event, context) -> {"statusCode", "headers", "body"}
        requests.get(url.url + "?crc_token=abc")

Used to serve the webhook receiver (courtesy.webhook_receiver.receive) to the local X sandbox,
which sends its CRC GETs and signed event POSTs to ``url.url``. Generic: any handler written for
a Function URL works. The event follows AWS's "Function URL payload format 2.0": version,
routeKey, rawPath, rawQueryString, queryStringParameters (repeated keys joined by commas),
headers (lower-cased, repeated ones joined by commas), cookies, body (base64 with
isBase64Encoded true unless it is UTF-8 text) and requestContext.http.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tools.local_aws import LOCAL_NAMES, LocalAws
from tools.local_run import LambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY_BYTES = 6 * 1024 * 1024  # a Function URL's request payload quota (6 MB)


def function_url_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The payload format 2.0 event for one HTTP request (`target` is the request line's path?query)."""
    split = urlsplit(target)
    raw_path, raw_query = split.path or "/", split.query
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if cookies:
        event["cookies"] = cookies
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def response_parts(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a handler's answer, as a Function URL turns it into HTTP."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Function URLs: an answer without statusCode is a 200 with the answer as JSON.
        return 200, {"content-type": "application/json"}, json.dumps(result).encode("utf-8")
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    body = result.get("body") or ""
    if not isinstance(body, str):
        body = json.dumps(body)
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return int(result["statusCode"]), headers, raw


class LocalFunctionUrl:
    """A threaded HTTP server on 127.0.0.1 (a free port) calling `handler` per request.

    ``requests`` keeps every (event, response) pair, newest last, for tests. A handler that
    raises answers 502, as a Function URL does when the function errors.
    """

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0, context_factory: Callable[[], Any] = LambdaContext):
        self.handler = handler
        self.context_factory = context_factory
        self.requests: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._request_handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}/"

    def start(self) -> LocalFunctionUrl:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="local-function-url", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LocalFunctionUrl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, event: dict[str, Any], response: dict[str, Any] | None) -> None:
        with self._lock:
            self.requests.append((event, response))

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read outer.requests
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._send(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                    return
                body = self.rfile.read(length) if length else b""
                event = function_url_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
                try:
                    result = outer.handler(event, outer.context_factory())
                    status, headers, raw = response_parts(result)
                except Exception:
                    outer._record(event, None)
                    self._send(502, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
                    return
                outer._record(event, result)
                self._send(status, headers, raw)

            def _send(self, status: int, headers: dict[str, str], raw: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        return RequestHandler


def webhook_receiver(consumer_secret: Callable[[], str], enqueue: Callable[[list[dict[str, Any]]], None]) -> Handler:
    """courtesy.webhook_receiver.receive as a Function URL handler, with these peers."""
    from courtesy.webhook_receiver import receive  # the function's code: only when served

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return receive(event, consumer_secret=consumer_secret, enqueue=enqueue)

    return handler


def sqs_enqueue(sqs: Any, queue_url: str) -> Callable[[list[dict[str, Any]]], None]:
    """An `enqueue` that sends each event as one SQS message (as the deployed receiver does)."""

    def enqueue(messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": json.dumps(m, ensure_ascii=False, separators=(",", ":"))} for i, m in enumerate(chunk)]
            answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            if answer.get("Failed"):
                from courtesy.webhook_receiver import QueueUnavailable

                raise QueueUnavailable(f"SQS did not take {len(answer['Failed'])} messages")

    return enqueue


def stack_receiver(aws: LocalAws, queue_url: str) -> LocalFunctionUrl:
    """The stack's receiver, wired as a deployed stack wires it, on a local URL (not yet started):
    the consumer_secret of the credentials secret (read from the local Secrets Manager
    when a request needs it) and one SQS message per event on `queue_url`."""
    secrets, sqs = aws.client("secretsmanager"), aws.client("sqs")

    def consumer_secret() -> str:
        return json.loads(secrets.get_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"])["SecretString"])["consumer_secret"]

    return LocalFunctionUrl(webhook_receiver(consumer_secret, sqs_enqueue(sqs, queue_url)))
