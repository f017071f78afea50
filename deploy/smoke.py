"""Smoke test of a deployed stage, through its CloudFront URL: the site, its headers and the API behind it.

    python -m deploy.smoke --stage dev                          # the URL from the stage stack's SiteUrl output
    python -m deploy.smoke --url https://d123.cloudfront.net    # any URL serving the site (also the local edge)
    python -m deploy.smoke --stage prod --retries 10 --wait 30  # a distribution still propagating

What it checks, one line each (PASS or FAIL, with what was expected and what came):

- `/` answers 200 with `text/html` and every header of the site's response headers policy, with the exact
  value (chalice_app.website.serving.SECURITY_HEADERS: HSTS, CSP, X-Content-Type-Options, X-Frame-Options,
  Referrer-Policy, Cross-Origin-Opener-Policy);
- `/api/health` answers 200 with JSON `"status": "ok"`;
- `/api/predictions/latest` answers 200 with JSON holding a `date` (YYYY-MM-DD) and a list of `items`
  (it fails on a stage with no batch published: the API answers 404);
- both API answers carry the API's own headers (chalice_app.api.responses.BASE_HEADERS: its JSON content
  type, its stricter CSP and referrer policy, nosniff) and the HSTS header the distribution adds.

Exit codes: 0 all passed, 1 a check failed (after the retries) or the stage's URL could not be read,
2 bad usage. --stage reads the stack predictions-<stage>-site with the usual AWS credentials and region
(AWS_PROFILE, AWS_DEFAULT_REGION). Standard library HTTP only; every request has a timeout. The deploy workflow runs it
after each deploy (docs/pipeline.md); anyone with read access to the stage stack can run it any time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice_app.api.responses import BASE_HEADERS
from chalice_app.website.serving import SECURITY_HEADERS

USER_AGENT = "predictions-smoke/1"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_BODY = 4 * 1024 * 1024
# The API keeps its own headers (the API's response headers policy only fills in what is missing), and
# the distribution adds HSTS to every answer.
API_HEADERS = {**BASE_HEADERS, "Strict-Transport-Security": SECURITY_HEADERS["Strict-Transport-Security"]}


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer at all
    headers: dict[str, str]  # names lower-cased
    body: bytes
    error: str = ""  # why there was no answer

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Check:
    name: str
    expected: str
    got: str
    ok: bool

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: expected {self.expected}, got {self.got}"


Fetch = Callable[[str], Answer]


def fetch(url: str, timeout: float) -> Answer:
    """GET url; any HTTP status is an answer, a network failure or timeout is not."""
    # base_url() lets only http and https through.
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, _headers(response.headers), response.read(MAX_BODY))
    except urllib.error.HTTPError as exc:  # a 4xx or 5xx: still an answer, with headers and body
        try:
            body = exc.read(MAX_BODY)
        except (OSError, ValueError, AttributeError):
            body = b""
        finally:
            exc.close()
        return Answer(exc.code, _headers(exc.headers or {}), body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(None, {}, b"", error=f"no answer ({type(reason).__name__}: {reason})")


def _headers(message: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in message.items()}


def _shown(value: str | None) -> str:
    return "(missing)" if value is None else repr(value)


def _status(path: str, answer: Answer, want: int = 200) -> Check:
    got = answer.error if answer.status is None else str(answer.status)
    return Check(f"GET {path} status", str(want), got, answer.status == want)


def _header(path: str, answer: Answer, name: str, want: str) -> Check:
    got = answer.header(name)
    return Check(f"GET {path} header {name}", repr(want), _shown(got), got == want)


def _json(answer: Answer) -> tuple[Any, str]:
    try:
        return json.loads(answer.body), ""
    except ValueError as exc:
        return None, f"not JSON ({exc}): {answer.body[:80]!r}"


def check_site(base: str, get: Fetch) -> list[Check]:
    answer = get(base + "/")
    checks = [_status("/", answer)]
    if answer.status is None:
        return checks
    content_type = answer.header("Content-Type")
    checks.append(Check("GET / header Content-Type", "text/html", _shown(content_type),
                        (content_type or "").split(";")[0].strip() == "text/html"))
    checks += [_header("/", answer, name, value) for name, value in SECURITY_HEADERS.items()]
    return checks


def check_health(base: str, get: Fetch) -> list[Check]:
    path = "/api/health"
    answer = get(base + path)
    checks = [_status(path, answer)]
    if answer.status is None:
        return checks
    doc, problem = _json(answer)
    status = doc.get("status") if isinstance(doc, dict) else None
    checks.append(Check(f"GET {path} body status", "'ok'", problem or _shown(status), status == "ok"))
    checks += [_header(path, answer, name, value) for name, value in API_HEADERS.items()]
    return checks


def check_latest(base: str, get: Fetch) -> list[Check]:
    path = "/api/predictions/latest"
    answer = get(base + path)
    checks = [_status(path, answer)]
    if answer.status is None:
        return checks
    doc, problem = _json(answer)
    if not isinstance(doc, dict):
        problem = problem or f"a JSON {type(doc).__name__}"
        doc = {}
    if "error" in doc and isinstance(doc["error"], dict):
        problem = problem or f"error {doc['error'].get('code')!r}: {doc['error'].get('message')!r}"
    date, items = doc.get("date"), doc.get("items")
    checks.append(Check(f"GET {path} body date", "a YYYY-MM-DD date", problem or _shown(date),
                        isinstance(date, str) and bool(DATE.match(date))))
    shown_items = f"a list of {len(items)}" if isinstance(items, list) else (problem or _shown(items))
    checks.append(Check(f"GET {path} body items", "a list", shown_items, isinstance(items, list)))
    checks += [_header(path, answer, name, value) for name, value in API_HEADERS.items()]
    return checks


def run_checks(base: str, get: Fetch) -> list[Check]:
    return [*check_site(base, get), *check_health(base, get), *check_latest(base, get)]


def base_url(url: str) -> str:
    """The site's origin (and path prefix, if any) without a trailing slash; ValueError when it is no URL."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the site's URL takes no query or fragment: {url!r}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def stage_url(stage: str, cfn: Any = None) -> str:
    """The stage stack's SiteUrl output (its custom domain, or the distribution's domain)."""
    from deploy import stack

    if cfn is None:
        import boto3

        cfn = boto3.client("cloudformation")
    outputs = stack.read_outputs(cfn, stage)
    url = outputs.get("SiteUrl") or (f"https://{outputs['DistributionDomainName']}/"
                                     if outputs.get("DistributionDomainName") else "")
    if not url:
        raise stack.StackError(f"stack {stack.stack_name(stage)} has no SiteUrl output: deploy it with "
                               f"`make deploy STAGE={stage}`")
    return url


def smoke(base: str, *, retries: int, wait: float, timeout: float, out: Callable[[str], None] = print,
          sleep: Callable[[float], None] = time.sleep) -> bool:
    """Run every check; while one fails and retries are left, wait and run them all again."""
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        checks = run_checks(base, lambda url: fetch(url, timeout))
        failed = [c for c in checks if not c.ok]
        if not failed or attempt == attempts:
            break
        out(f"attempt {attempt} of {attempts}: {len(failed)} of {len(checks)} checks failed, "
            f"trying again in {wait:g} s")
        for check in failed:
            out(f"  {check.line()}")
        sleep(wait)
    heading = f"smoke test of {base}/" + (f" (attempt {attempt} of {attempts})" if attempts > 1 else "")
    out(heading)
    for check in checks:
        out(check.line())
    summary = f"smoke: {len(checks) - len(failed)} of {len(checks)} checks passed"
    out(summary + (f", {len(failed)} FAILED" if failed else ""))
    return not failed


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.smoke", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the site's URL, e.g. https://d123.cloudfront.net (the API is its /api/*)")
    target.add_argument("--stage", help="read the URL from the stage stack's SiteUrl output (needs AWS credentials)")
    p.add_argument("--retries", type=_non_negative(int), default=0, metavar="N",
                   help="run the checks again up to N more times while one fails (default 0)")
    p.add_argument("--wait", type=_non_negative(float), default=30.0, metavar="SECONDS",
                   help="seconds between attempts (default 30)")
    p.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS",
                   help="seconds per request (default 10)")
    args = p.parse_args(argv)
    if args.url is not None:
        try:
            base = base_url(args.url)
        except ValueError as exc:
            p.error(str(exc))
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        from deploy.stack import StackError

        try:
            base = base_url(stage_url(args.stage))
        except (StackError, ClientError, BotoCoreError, ValueError) as exc:
            print(f"deploy.smoke: error: cannot read the URL of stage {args.stage}: {exc}", file=sys.stderr)
            return 1
    return 0 if smoke(base, retries=args.retries, wait=args.wait, timeout=args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
