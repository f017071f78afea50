"""Edge functions as CloudFront runs them, for the local edge: CloudFront Functions and Lambda@Edge.

- CloudFront Functions (cloudfront-js) run for real in one long-lived Node.js child, each in its own
  context with JavaScript's built-ins only; `viewer_response_event`/`apply_function_response` are AWS's
  "CloudFront Functions event structure".
- Lambda@Edge given inline in the template (Python, Code.ZipFile) runs in-process on origin-response;
  `origin_response_event`/`apply_origin_response` are AWS's "Lambda@Edge event structure".

Which event runs when (and when not: no viewer-response function for an origin's 400 or more) is the
edge's business (tools/edge.py); this module only runs a function on an answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import urllib.parse
from dataclasses import replace
from typing import Any

from deploy.not_found_function import load_handler
from tools.cloudfront import EdgeLambda, Function
from tools.edge_cache import Answer, Headers, _phrase, _without

NODE = os.environ.get("EDGE_NODE", "/usr/bin/node")
DOMAIN = "local.cloudfront.net"


# One node child for every function: reads {"key","name","code","event"} lines, answers {"result"} or
# {"error"}. Each function runs in its own vm context with only JavaScript's built-ins: no require,
# process, timers or Buffer, as in cloudfront-js-2.0 (its own modules are not provided).
NODE_RUNNER = r"""
const vm = require('vm');
const contexts = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
require('readline').createInterface({input: process.stdin}).on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { out({error: 'bad request line'}); return; }
  try {
    let ctx = contexts.get(msg.key);
    if (!ctx) {
      ctx = vm.createContext({console: {log: (...a) => process.stderr.write(a.join(' ') + '\n')}});
      vm.runInContext(msg.code, ctx, {filename: msg.name, timeout: 1000});
      if (typeof ctx.handler !== 'function') throw new Error('the function code defines no handler(event)');
      contexts.set(msg.key, ctx);
    }
    ctx.__event = JSON.stringify(msg.event);
    const text = vm.runInContext('JSON.stringify(handler(JSON.parse(__event)))', ctx, {timeout: 100});
    out({result: text === undefined ? null : JSON.parse(text)});
  } catch (e) {
    out({error: String(e && e.stack || e)});
  }
});
"""


class FunctionError(Exception):
    """A CloudFront Function failed or returned something CloudFront would refuse (the viewer gets a 503)."""


class FunctionRunner:
    """A long-lived node child fed JSON lines; restarted when it dies."""

    def __init__(self, node: str = NODE) -> None:
        self.node = node
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            if not os.path.exists(self.node):
                raise FunctionError(f"{self.node} is missing: CloudFront Functions need Node.js")
            self._proc = subprocess.Popen([self.node, "-e", NODE_RUNNER], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True, bufsize=1)
        return self._proc

    def run(self, function: Function, event: dict) -> Any:
        key = hashlib.sha256(function.code.encode()).hexdigest()
        line = json.dumps({"key": key, "name": function.name, "code": function.code, "event": event})
        with self._lock:
            for attempt in (1, 2):
                proc = self._ensure()
                try:
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(line + "\n")
                    proc.stdin.flush()
                    reply = proc.stdout.readline()
                    if not reply:
                        raise OSError("node exited")
                    answer = json.loads(reply)
                    break
                except (OSError, ValueError):
                    self._kill()
                    if attempt == 2:
                        raise FunctionError("the function runner died") from None
        if "error" in answer:
            raise FunctionError(f"{function.name}: {answer['error'][:500]}")
        return answer["result"]

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._kill()


def _fn_headers(headers: Headers) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for name, value in headers:
        key = name.lower()
        if key in found:
            found[key].setdefault("multiValue", [{"value": found[key]["value"]}]).append({"value": value})
        else:
            found[key] = {"value": value}
    return found


def _fn_querystring(query: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name in found:
            found[name].setdefault("multiValue", [{"value": found[name]["value"]}]).append({"value": value})
        else:
            found[name] = {"value": value}
    return found


def viewer_response_event(method: str, path: str, query: str, request_headers: Headers, answer: Answer,
                          client_ip: str, request_id: str) -> dict:
    """The cloudfront-js event of a viewer-response function (AWS's "CloudFront Functions event structure")."""
    return {
        "version": "1.0",
        "context": {"distributionDomainName": DOMAIN, "distributionId": "ELOCALEDGE", "eventType": "viewer-response",
                    "requestId": request_id},
        "viewer": {"ip": client_ip},
        "request": {"method": method, "uri": path, "querystring": _fn_querystring(query),
                    "headers": _fn_headers(_without(request_headers, "cookie")), "cookies": {}},
        "response": {"statusCode": answer.status, "statusDescription": answer.reason,
                     "headers": _fn_headers(_without(answer.headers, "set-cookie")), "cookies": {}},
    }


def apply_function_response(answer: Answer, result: Any) -> Answer:
    """The function's returned response on the answer: status, headers, and a body when it sets one."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int) \
            or not 200 <= result["statusCode"] <= 599:
        raise FunctionError(f"a viewer-response function must return a response object, got {result!r:.200}")
    original = {k.lower(): k for k, _ in answer.headers}
    headers: Headers = []
    for key, spec in (result.get("headers") or {}).items():
        values = spec.get("multiValue") or [spec]
        headers += [(original.get(key, key), str(v["value"])) for v in values]
    headers += [(k, v) for k, v in answer.headers if k.lower() == "set-cookie"]
    body = answer.body
    given = result.get("body")
    if given is not None:
        if isinstance(given, str):
            body = given.encode("utf-8")
        elif given.get("encoding") == "base64":
            import base64

            body = base64.b64decode(given.get("data", ""))
        else:
            body = str(given.get("data", "")).encode("utf-8")
    return replace(answer, status=result["statusCode"],
                   reason=result.get("statusDescription") or _phrase(result["statusCode"]),
                   headers=headers, body=body)


# -- Lambda@Edge on origin-response: inline Python, run in-process ----------------------------------

_EDGE_HANDLERS: dict[str, Any] = {}


def _edge_handler(function: EdgeLambda) -> Any:
    """The handler of an inline function, loaded once per source text, as Lambda loads index.py."""
    handler = _EDGE_HANDLERS.get(function.source)
    if handler is None:
        handler = _EDGE_HANDLERS[function.source] = load_handler(function.source, function.handler)
    return handler


def _edge_headers(headers: Headers) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for name, value in headers:
        found.setdefault(name.lower(), []).append({"key": name, "value": value})
    return found


def origin_response_event(method: str, path: str, query: str, request_headers: Headers, answer: Answer,
                          client_ip: str, request_id: str) -> dict:
    """The Lambda@Edge origin-response event (AWS's "Lambda@Edge event structure"); no body is exposed."""
    return {"Records": [{"cf": {
        "config": {"distributionDomainName": DOMAIN, "distributionId": "ELOCALEDGE", "eventType": "origin-response",
                   "requestId": request_id},
        "request": {"clientIp": client_ip, "method": method, "uri": path, "querystring": query,
                    "headers": _edge_headers(request_headers)},
        "response": {"status": str(answer.status), "statusDescription": answer.reason,
                     "headers": _edge_headers(answer.headers)},
    }}]}


def apply_origin_response(answer: Answer, result: Any) -> Answer:
    """The function's response on the origin's: status, headers, and the body when it sets one."""
    try:
        status = int(result["status"])
    except (TypeError, KeyError, ValueError):
        raise FunctionError(f"an origin-response function must return a response, got {result!r:.200}") from None
    if not 200 <= status <= 599:
        raise FunctionError(f"an origin-response function returned status {status}")
    headers = [(v.get("key", name), str(v["value"])) for name, values in (result.get("headers") or {}).items()
               for v in values] if "headers" in result else answer.headers
    body = answer.body
    if "body" in result:
        text = result["body"] or ""
        if result.get("bodyEncoding") == "base64":
            import base64

            body = base64.b64decode(text)
        else:
            body = text.encode("utf-8")
        headers = _without(headers, "Content-Length", "ETag", "Last-Modified")
    return replace(answer, status=status, reason=result.get("statusDescription") or _phrase(status),
                   headers=headers, body=body)
