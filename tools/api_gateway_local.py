"""A local stand-in for the Regional REST API (stage "api") in front of `chalice local`.

    python -m tools.api_gateway_local --api http://127.0.0.1:8000 --port 8001

Strict where production is: a Host that is not its own is a 403 {"message":"Forbidden"} (API
Gateway without a custom domain); a path outside the stage (/api/...) is the same 403; a method and
path the API's definition does not declare get the MISSING_AUTHENTICATION_TOKEN gateway response,
rendered from deploy/api_gateway.py with the definition `swagger_for(app)` builds (so the local
answer is the deployed one). With `--stage S` it applies that stage's throttle (`api_throttle` in
.chalice/config.json, deploy/app_template.py) as API Gateway applies a stage's method throttling: a token
bucket holding `burst_limit` tokens, refilled at `rate_limit` a second, one token per request; a request
that finds none gets the THROTTLED gateway response (429, `Retry-After`) without reaching the function.
Everything else goes to chalice local without the stage prefix, and status, headers and body come back
as they are. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import re
import sys
import threading
import time
import urllib.parse
import uuid
from typing import Any

HOST = "127.0.0.1"
STAGE = "api"  # .chalice/config.json api_gateway_stage: also the path prefix CloudFront sends
TIMEOUT = 29.0  # API Gateway's integration limit
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length", "host", "date", "server"})
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
_UPSTREAM = threading.local()


class TokenBucket:
    """API Gateway's throttle: `burst` tokens at most, `rate` more each second, one per request."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"throttle rate {rate} and burst {burst} must be positive")
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.tokens = float(burst)
        self.stamp = clock()
        self.lock = threading.Lock()
        self.refused = 0

    def take(self) -> bool:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            self.refused += 1
            return False


def stage_throttle(stage: str) -> TokenBucket:
    """The bucket of a stage of .chalice/config.json (its `api_throttle`, or the defaults)."""
    from chalice_app.config.stage_file import load_config
    from deploy.app_template import app_settings

    config = load_config()
    if stage not in config.get("stages", {}):
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(sorted(config.get('stages', {})))}")
    settings = app_settings(stage, config["stages"][stage])
    return TokenBucket(settings.rate_limit, settings.burst_limit)


def route_table(swagger: dict) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path regex, declared methods) per Swagger path: {name} is one segment, {name+} the rest."""
    table = []
    for template, item in swagger.get("paths", {}).items():
        pattern = "".join(
            "/[^/]+" if re.fullmatch(r"\{[^}+]+\}", seg) else "/.+" if re.fullmatch(r"\{[^}]+\+\}", seg)
            else "/" + re.escape(seg) for seg in template.strip("/").split("/") if seg) or "/"
        methods = frozenset(m.upper() for m in item if not m.startswith("x-") and m != "parameters")
        table.append((re.compile(pattern), methods))
    return table


def declared(table: list[tuple[re.Pattern[str], frozenset[str]]], method: str, path: str) -> bool:
    return any(rx.fullmatch(path) and (method in methods or "X-AMAZON-APIGATEWAY-ANY-METHOD" in methods)
               for rx, methods in table)


class GatewayServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, swagger: dict, port: int = 0, quiet: bool = True,
                 throttle: TokenBucket | None = None) -> None:
        parts = urllib.parse.urlsplit(upstream.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--api must be an http URL (chalice local), got {upstream!r}")
        self.upstream = parts
        self.swagger = swagger
        self.routes = route_table(swagger)
        self.quiet = quiet
        self.throttle = throttle
        self.thread: threading.Thread | None = None
        super().__init__((HOST, port), GatewayHandler)

    @property
    def domain(self) -> str:
        """What CloudFront's origin DomainName is locally, and the only Host this API answers."""
        return f"{HOST}:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.domain}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        from deploy.api_gateway import render

        body = self._body()
        if body is None:
            return
        path, _, query = self.path.partition("?")
        if self.headers.get("Host") != self.server.domain or not path.startswith(f"/{STAGE}/"):
            # Not this API (another Host) or not its stage: API Gateway's bare 403, no gateway response.
            self._reply(403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
            return
        resource = path[len(STAGE) + 1:]
        if not declared(self.server.routes, self.command, resource):
            self._reply(*render(self.server.swagger, "MISSING_AUTHENTICATION_TOKEN", 403,
                                "Missing Authentication Token"))
            return
        if self.server.throttle is not None and not self.server.throttle.take():
            self._reply(*render(self.server.swagger, "THROTTLED", 429, "Too Many Requests"))
            return
        self._forward(resource + (f"?{query}" if query else ""), body)

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or (length and (not length.isdigit() or int(length) > MAX_BODY)):
            self._reply(413 if length and length.isdigit() else 400, {"Content-Type": "application/json",
                                                                      "Connection": "close"},
                        b'{"message":"Request not accepted"}')
            return None
        return self.rfile.read(int(length)) if length else b""

    def _forward(self, target: str, body: bytes) -> None:
        from deploy.api_gateway import render

        up = self.server.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = up.netloc
        for attempt in (1, 2):
            conn = getattr(_UPSTREAM, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = _UPSTREAM.conn = http.client.HTTPConnection(up.hostname, up.port, timeout=TIMEOUT)
            try:
                conn.request(self.command, (up.path or "") + target, body=body or None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                break
            except TimeoutError:
                self._drop()
                self._reply(*render(self.server.swagger, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out"))
                return
            except (http.client.HTTPException, OSError):
                self._drop()
                if reused and attempt == 1:
                    continue  # chalice local closed the kept-alive connection: one fresh try
                self._reply(*render(self.server.swagger, "INTEGRATION_FAILURE", 502, "Internal server error"))
                return
        relayed = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
        self._reply(answer.status, relayed, data)

    @staticmethod
    def _drop() -> None:
        conn = getattr(_UPSTREAM, "conn", None)
        if conn is not None:
            conn.close()
            _UPSTREAM.conn = None

    def finish(self) -> None:
        super().finish()
        self._drop()

    def _reply(self, status: int, headers: Any, body: bytes) -> None:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers)
        self.send_response(status)
        for name, value in items:
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)


def app_swagger() -> dict:
    """The API's definition as deployed: Chalice's Swagger of app.py plus the gateway responses."""
    from app import app
    from deploy.api_gateway import swagger_for

    return swagger_for(app)


def start_in_thread(upstream: str, port: int = 0, swagger: dict | None = None, quiet: bool = True,
                    throttle: TokenBucket | None = None) -> GatewayServer:
    """The stand-in on 127.0.0.1 in a daemon thread (port 0: a free one); .stop() ends it."""
    server = GatewayServer(upstream, swagger if swagger is not None else app_swagger(), port, quiet, throttle)
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                     name="api-gateway-local", daemon=True)
    server.thread.start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.api_gateway_local", description=__doc__.splitlines()[0])
    p.add_argument("--api", required=True, help="chalice local's URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--port", type=int, default=8001, help="port on 127.0.0.1 (default 8001)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.add_argument("--stage", help="apply this stage's throttle (api_throttle in .chalice/config.json): 429 past "
                                   "its burst, as API Gateway; without it nothing is throttled")
    args = p.parse_args(argv)
    try:
        throttle = stage_throttle(args.stage) if args.stage else None
        server = GatewayServer(args.api, app_swagger(), args.port, quiet=args.quiet, throttle=throttle)
    except (ValueError, OSError) as exc:
        print(f"api_gateway_local: error: {exc}", file=sys.stderr)
        return 1
    limit = f" (throttle: rate {throttle.rate:g}/s, burst {throttle.burst})" if throttle else ""
    print(f"api_gateway_local: {server.url}/{STAGE}/* -> {args.api}{limit}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
