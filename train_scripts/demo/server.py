"""The demo's web server: the page's static files and the JSON API on 127.0.0.1 only, one thread per request."""

import errno
import http.server
import json
import logging
import os
import traceback
import urllib.parse

from data.errors import I2IError
from train_scripts.demo.app import DemoApp
from train_scripts.demo.translators import DemoError

log = logging.getLogger("i2i.demo")

HOST = "127.0.0.1"  # never another interface
DEFAULT_PORT = 8000
REQUEST_QUEUE_SIZE = 128  # connections waiting to be accepted (the listen backlog)
PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page")
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/index.html": ("index.html", "text/html; charset=utf-8"),
                "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
                "/demo.css": ("demo.css", "text/css; charset=utf-8")}
# the page may load its own files and data: URLs only; nothing from another host
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; script-src 'self'; "
                           "style-src 'self'; font-src 'none'; object-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'none'; form-action 'none'")


class Handler(http.server.BaseHTTPRequestHandler):
    """Static page files and the JSON API; every refusal is a JSON ``{"error"}`` with a 4xx status."""

    server_version = "i2i-demo"
    protocol_version = "HTTP/1.1"
    app: DemoApp = None  # set by make_server
    timeout = 120  # seconds a connection may sit idle or stall mid-request before its thread lets it go

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    # ------------------------------------------------------------------ responses

    def _send(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status, message):
        log.warning("refused %s %s (HTTP %d): %s", self.command, self.path.split("?")[0], status, message)
        self._json(status, {"error": message, "status": status})

    # ------------------------------------------------------------------ requests

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path in STATIC_FILES:
                name, content_type = STATIC_FILES[url.path]
                with open(os.path.join(PAGE_DIR, name), "rb") as f:
                    return self._send(200, f.read(), content_type)
            if url.path == "/api/models":
                return self._json(200, self.app.describe())
            if url.path == "/api/example":
                return self._json(200, self.app.example(urllib.parse.parse_qs(url.query)))
            if url.path == "/favicon.ico":
                return self._send(204, b"", "image/x-icon")
            raise DemoError(f"no such page: {url.path}", 404)
        except DemoError as e:
            self._error(e.status, str(e))
        except Exception as e:  # a bug must not stop the server: report it
            log.error("GET %s failed:\n%s", url.path, traceback.format_exc())
            self._error(500, f"internal error: {type(e).__name__}: {e}")

    do_HEAD = do_GET

    def _body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise DemoError("send the body with a Content-Length (no chunked transfer)", 411)
        text = self.headers.get("Content-Length")
        if text is None:
            raise DemoError("a Content-Length header is required", 411)
        try:
            length = int(text)
        except ValueError:
            self.close_connection = True
            raise DemoError(f"bad Content-Length {text!r}") from None
        if length > self.app.max_body_bytes:
            self.close_connection = True  # the body is not read
            raise DemoError(f"request body of {length:,} bytes is over the limit of {self.app.max_body_bytes:,} "
                            "bytes", 413)
        if length < 0:
            self.close_connection = True
            raise DemoError(f"bad Content-Length {text!r}")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise DemoError(f"malformed JSON body: {e}") from None
        if not isinstance(body, dict):
            raise DemoError(f"the JSON body must be an object, got {type(body).__name__}")
        return body

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            routes = {"/api/translate": self.app.translate, "/api/label": self.app.label}
            if url.path not in routes:
                self.close_connection = True
                raise DemoError(f"no such API: POST {url.path}", 404)
            body = self._body()
            self._json(200, routes[url.path](body))
        except DemoError as e:
            self._error(e.status, str(e))
        except Exception as e:
            log.error("POST %s failed:\n%s", url.path, traceback.format_exc())
            self._error(500, f"internal error: {type(e).__name__}: {e}")


class DemoServer(http.server.ThreadingHTTPServer):
    """One thread per request. The listen backlog queues a burst of connections while the server thread accepts
    them: the standard library's 5 had the kernel reset 6 of 40 simultaneous requests."""

    request_queue_size = REQUEST_QUEUE_SIZE
    daemon_threads = True


def make_server(app, port=0):
    """A threading HTTP server for ``app`` on 127.0.0.1:``port`` (0: a free port); not yet serving."""
    handler = type("DemoHandler", (Handler,), {"app": app})
    return DemoServer((HOST, port), handler)


def bind(app, port):
    """The server on ``port``; by default (None) 8000, or a free port when 8000 is taken."""
    if port is not None:
        try:
            return make_server(app, port)
        except OSError as e:
            raise I2IError(f"cannot listen on {HOST}:{port} ({e.strerror or e}); choose another --port "
                           "(0: any free port)") from None
    try:
        return make_server(app, DEFAULT_PORT)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        log.info("port %d is taken; using a free port", DEFAULT_PORT)
        return make_server(app, 0)
