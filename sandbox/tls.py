"""HTTPS for the X sandbox: a certificate for 127.0.0.1 from a throwaway test CA, and TLS faults.

    with HttpsSandbox() as x:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", x.tls.ca_bundle)  # requests (so tweepy) trusts the test CA
        XAccount(x.credentials, base_url=x.base_url)  # https://127.0.0.1:<port>

Two ways TLS fails, on either side of "the request left":

- before: a client that does not trust the CA fails the handshake, so nothing reaches the
  handler (nothing stored, no refresh token spent);
- after: ``tls_error_after_request_next`` lets the handler read and carry out the next
  request (a DM is stored, a refresh token spent), then writes bytes that are not TLS on
  the raw socket instead of the answer and closes it, so the client gets an SSL error
  while reading the answer.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import tempfile
import threading
from socketserver import BaseServer

import trustme

from sandbox.x_sandbox import XSandbox

NOT_TLS = b"HTTP/1.1 200 OK\r\n\r\n"  # a plaintext answer where a TLS record must be


class SandboxTLS:
    """A server certificate from a test CA, the CA bundle a client can trust, and the TLS faults."""

    def __init__(self) -> None:
        ca = trustme.CA()
        self._dir = tempfile.TemporaryDirectory(prefix="x-sandbox-tls-")
        self.ca_bundle = os.path.join(self._dir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.context)
        # Every accepted connection is a _BreakableSocket that knows this instance's faults.
        self.context.sslsocket_class = type("SandboxSSLSocket", (_BreakableSocket,), {"tls": self})
        self._lock = threading.Lock()
        self._breaks = 0

    def wrap(self, server: BaseServer) -> None:
        """Make a not yet serving socketserver speak TLS (the hook in XSandbox.start)."""
        # The handshake happens on the first read, in the connection's own thread, not in accept().
        server.socket = self.context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)  # type: ignore[attr-defined]
        report = server.handle_error

        def handle_error(request, client_address) -> None:  # type: ignore[no-untyped-def]
            # A client refusing the certificate, or a broken connection, is what TLS tests are about.
            if not isinstance(sys.exc_info()[1], OSError):  # ssl.SSLError and ConnectionError among them
                report(request, client_address)

        server.handle_error = handle_error  # type: ignore[method-assign]

    def break_next(self, count: int = 1) -> None:
        with self._lock:
            self._breaks += count

    def _take_break(self) -> bool:
        with self._lock:
            if self._breaks <= 0:
                return False
            self._breaks -= 1
            return True

    def close(self) -> None:
        self._dir.cleanup()


class _BreakableSocket(ssl.SSLSocket):
    """A server-side TLS connection whose answer can be replaced by a broken TLS stream."""

    tls: SandboxTLS

    def sendall(self, data, flags=0):  # type: ignore[no-untyped-def]
        if getattr(self, "_broken", False):
            return None  # the client has been cut off; let the handler finish quietly
        # The first write of an answer comes after the handler read and carried out the request.
        if self.tls._take_break():
            self._broken = True
            with contextlib.suppress(OSError):  # the client may hang up first: it is cut off either way
                os.write(self.fileno(), NOT_TLS)  # under the TLS layer, on the TCP socket itself
                self.shutdown(socket.SHUT_RDWR)
            return None
        return super().sendall(data, flags)


class HttpsSandbox(XSandbox):
    """The X sandbox served over HTTPS (see the module docstring); ``tls.ca_bundle`` is its CA."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.tls = SandboxTLS()

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def tls_error_after_request_next(self, count: int = 1) -> None:
        """Carry out the next `count` requests, then break TLS instead of answering them."""
        self.tls.break_next(count)

    def stop(self) -> None:
        super().stop()
        self.tls.close()
