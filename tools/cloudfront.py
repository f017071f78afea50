"""A CloudFront distribution as deploy/stack.json declares it: the model the local edge runs.

    dist = load_distribution("deploy/stack.json", {"ApiDomain": "127.0.0.1:9001", "Stage": "local"})
    dist.behavior_for("/api/predictions")   # the /api/* behaviour: its policies, origin, methods
    dist.error_response_for(403)            # a CustomErrorResponses entry, or None

Pure: reads a template (a path or a dict) and parameter values, evaluates the intrinsic functions
of the parts a distribution needs (Ref, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition,
Fn::GetAtt, Fn::Sub, Fn::Join), and resolves cache, origin request and response headers policies,
managed ones by id with AWS's documented contents. Anything it does not know in those parts (an
intrinsic, a legacy ForwardedValues behaviour, an unknown managed policy id, CORS config) is a
TemplateError naming where: the local edge must never guess what CloudFront would do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Pseudo parameters: fixed, fake values (no account exists locally).
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
          "AWS::StackName": "local", "AWS::URLSuffix": "amazonaws.com"}
_NONE: tuple[str, ...] = ()


class TemplateError(ValueError):
    """The template cannot be read as a distribution here (what and where)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class LogicalId(str):
    """`Ref` of a resource: its logical id (a policy or function of the same template)."""


@dataclass(frozen=True)
class Attr:
    """`Fn::GetAtt` of a resource; the edge only follows NotFoundFunction-style FunctionARN ones."""

    resource: str
    name: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.name}"


# -- policies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which headers, cookies or query strings a policy takes: none, all (allViewer...), whitelist or
    allExcept `names`. Header names are kept lower case (HTTP's are case-insensitive); cookie and
    query string names are compared exactly, as CloudFront does."""

    behavior: str = "none"
    names: tuple[str, ...] = _NONE

    def picks(self, name: str, *, header: bool = False) -> bool:
        key = name.lower() if header else name
        if self.behavior == "none":
            return False
        if self.behavior in ("all", "allViewer", "allViewerAndWhitelistCloudFront"):
            return True
        if self.behavior == "whitelist":
            return key in self.names
        if self.behavior == "allExcept":
            return key not in self.names
        raise TemplateError(f"unknown behaviour {self.behavior!r}")


@dataclass(frozen=True)
class CachePolicy:
    name: str
    min_ttl: int
    default_ttl: int
    max_ttl: int
    headers: Selection = Selection()  # in the cache key, and so always forwarded
    cookies: Selection = Selection()
    query: Selection = Selection()
    gzip: bool = False
    brotli: bool = False


@dataclass(frozen=True)
class OriginRequestPolicy:
    name: str
    headers: Selection = Selection()  # forwarded without being in the cache key
    cookies: Selection = Selection()
    query: Selection = Selection()


@dataclass(frozen=True)
class HeaderRule:
    name: str
    value: str
    override: bool


@dataclass(frozen=True)
class ResponseHeadersPolicy:
    name: str
    rules: tuple[HeaderRule, ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The origin's headers as CloudFront sends them on: removed ones gone, each rule added when the
        origin did not send the header, or replacing it when the rule overrides."""
        out = [(k, v) for k, v in headers if k.lower() not in self.remove]
        for rule in self.rules:
            present = any(k.lower() == rule.name.lower() for k, _ in out)
            if present and not rule.override:
                continue
            out = [(k, v) for k, v in out if k.lower() != rule.name.lower()] + [(rule.name, rule.value)]
        return out


# What a behaviour gets when it names a managed policy by id: AWS's documented contents ("Use managed
# cache policies", "Use managed origin request policies"). An id not listed here is an error.
MANAGED_CACHE_POLICIES = {
    # CachingOptimized: nothing from the viewer in the key; gzip and br normalised.
    "658327ea-f89d-4fab-a63d-7e88639e58f6": CachePolicy("CachingOptimized", 1, 86400, 31536000, gzip=True, brotli=True),
    # CachingDisabled: TTLs 0, nothing in the key, compression caching off.
    "4135ea2d-6df8-44a3-9df3-4b5a84be39ad": CachePolicy("CachingDisabled", 0, 0, 0),
    "83da9c7e-98b4-4e11-a168-04f0df8e2c65": CachePolicy(
        "UseOriginCacheControlHeaders", 0, 0, 31536000,
        headers=Selection("whitelist", ("host", "origin", "x-http-method-override", "x-http-method",
                                        "x-method-override")),
        cookies=Selection("all"), gzip=True, brotli=True),
    "4cc15a8a-d715-48a4-82b8-cc0b614638fe": CachePolicy(
        "UseOriginCacheControlHeaders-QueryStrings", 0, 0, 31536000,
        headers=Selection("whitelist", ("host", "origin", "x-http-method-override", "x-http-method",
                                        "x-method-override")),
        cookies=Selection("all"), query=Selection("all"), gzip=True, brotli=True),
}
MANAGED_ORIGIN_REQUEST_POLICIES = {
    "216adef6-5c7f-47e4-b989-5492eafa07d3": OriginRequestPolicy(
        "AllViewer", Selection("allViewer"), Selection("all"), Selection("all")),
    "b689b0a8-53d0-40ab-baf2-68738e2966ac": OriginRequestPolicy(
        "AllViewerExceptHostHeader", Selection("allExcept", ("host",)), Selection("all"), Selection("all")),
}


# -- the distribution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    id: str
    domain: str  # host[:port]; for S3 the bucket's (unused locally: the site folder stands in)
    is_s3: bool
    origin_path: str = ""
    read_timeout: float = 30.0
    custom_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Function:
    name: str
    runtime: str
    code: str


@dataclass(frozen=True)
class EdgeLambda:
    """A Lambda@Edge function given inline (Code.ZipFile) in the template: the edge runs its source."""

    name: str
    runtime: str
    source: str
    handler: str  # the function's name inside index.py


@dataclass(frozen=True)
class Behavior:
    path_pattern: str | None  # None: the default behaviour
    origin: Origin
    cache: CachePolicy
    origin_request: OriginRequestPolicy | None
    response_headers: ResponseHeadersPolicy | None
    allowed_methods: tuple[str, ...]
    cached_methods: tuple[str, ...]
    compress: bool
    viewer_request: Function | None = None
    viewer_response: Function | None = None
    origin_response: EdgeLambda | None = None

    def matches(self, path: str) -> bool:
        return self.path_pattern is None or path_pattern_regex(self.path_pattern).fullmatch(path) is not None


@dataclass(frozen=True)
class ErrorResponse:
    error_code: int
    page_path: str | None
    response_code: int | None
    min_ttl: float


@dataclass
class Distribution:
    behaviors: list[Behavior]  # CloudFront's order: CacheBehaviors as listed, the default last
    origins: dict[str, Origin]
    error_responses: dict[int, ErrorResponse] = field(default_factory=dict)
    default_root_object: str = ""

    def behavior_for(self, path: str) -> Behavior:
        """The first behaviour whose pattern matches `path` (case-sensitive), else the default."""
        return next(b for b in self.behaviors if b.matches(path))

    def error_response_for(self, status: int) -> ErrorResponse | None:
        return self.error_responses.get(status)


def path_pattern_regex(pattern: str) -> re.Pattern[str]:
    """CloudFront's path pattern: `*` any run of characters (slashes too), `?` exactly one, the rest
    literal and case-sensitive; a pattern without a leading "/" is the same as with one."""
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


# -- template evaluation ------------------------------------------------------------------------


class _Context:
    def __init__(self, template: dict, parameters: dict[str, str]) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.params: dict[str, Any] = dict(PSEUDO)
        for name, spec in template.get("Parameters", {}).items():
            if name in parameters:
                self.params[name] = str(parameters[name])
            elif "Default" in spec:
                self.params[name] = str(spec["Default"]) if not isinstance(spec["Default"], list) else spec["Default"]
            else:
                raise TemplateError(f"parameter {name!r} has no default: give its value")
        unknown = set(parameters) - set(template.get("Parameters", {}))
        if unknown:
            raise TemplateError(f"the template has no parameter(s) {sorted(unknown)}")
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str, where: str) -> bool:
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise TemplateError(f"{where}: no condition {name!r}")
            self._conditions[name] = bool(self.eval(spec, f"Conditions.{name}"))
        return self._conditions[name]

    def eval(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            items = [self.eval(v, f"{where}[{i}]") for i, v in enumerate(node)]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key == "Condition":
                return self.condition(arg, where)
            if key.startswith("Fn::"):
                return self.intrinsic(key, arg, where)
        out = {}
        for k, v in node.items():
            value = self.eval(v, f"{where}.{k}")
            if value is not NO_VALUE:
                out[k] = value
        return out

    def ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            return LogicalId(name)
        raise TemplateError(f"{where}: Ref to unknown {name!r}")

    def intrinsic(self, key: str, arg: Any, where: str) -> Any:
        if key == "Fn::If":
            name, yes, no = arg
            return self.eval(yes if self.condition(name, where) else no, where)
        if key == "Fn::Equals":
            a, b = (self.eval(v, where) for v in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.eval(arg[0], where)
        if key == "Fn::And":
            return all(self.eval(v, where) for v in arg)
        if key == "Fn::Or":
            return any(self.eval(v, where) for v in arg)
        if key == "Fn::GetAtt":
            resource, name = arg if isinstance(arg, list) else arg.split(".", 1)
            if resource not in self.resources:
                raise TemplateError(f"{where}: Fn::GetAtt of unknown resource {resource!r}")
            return Attr(resource, name)
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.eval(arg[1], where))
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: str(extra[m.group(1)]) if m.group(1) in extra
                          else str(self._sub_ref(m.group(1), where)), text)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(v) for v in self.eval(items, where))
        raise TemplateError(f"{where}: {key} is not understood by the local edge")

    def _sub_ref(self, name: str, where: str) -> Any:
        if "." in name:
            resource, attr = name.split(".", 1)
            return str(Attr(resource, attr))
        return self.ref(name, where)

    def resource(self, ref: Any, kind: str, where: str) -> dict:
        name = str(ref)
        spec = self.resources.get(name)
        if spec is None or spec.get("Type") != kind:
            raise TemplateError(f"{where}: {name!r} is not a {kind} of this template")
        return self.eval(spec.get("Properties", {}), f"Resources.{name}.Properties")


def _selection(config: dict | None, key: str, where: str) -> Selection:
    if not config:
        return Selection()
    behavior = config.get(key)
    names_key = {"HeaderBehavior": "Headers", "CookieBehavior": "Cookies",
                 "QueryStringBehavior": "QueryStrings"}[key]
    names = config.get(names_key) or []
    if isinstance(names, dict):  # the CloudFront API's shape: {"Quantity", "Items"}
        names = names.get("Items", [])
    if behavior not in ("none", "all", "whitelist", "allExcept", "allViewer", "allViewerAndWhitelistCloudFront"):
        raise TemplateError(f"{where}: unknown {key} {behavior!r}")
    lowered = tuple(n.lower() for n in names) if key == "HeaderBehavior" else tuple(names)
    return Selection(behavior, lowered)


def _cache_policy(ctx: _Context, ref: Any, where: str) -> CachePolicy:
    if isinstance(ref, LogicalId):
        config = ctx.resource(ref, "AWS::CloudFront::CachePolicy", where)["CachePolicyConfig"]
        params = config.get("ParametersInCacheKeyAndForwardedToOrigin", {})
        return CachePolicy(
            str(config.get("Name", ref)), int(config["MinTTL"]), int(config.get("DefaultTTL", 86400)),
            int(config.get("MaxTTL", 31536000)),
            headers=_selection(params.get("HeadersConfig"), "HeaderBehavior", where),
            cookies=_selection(params.get("CookiesConfig"), "CookieBehavior", where),
            query=_selection(params.get("QueryStringsConfig"), "QueryStringBehavior", where),
            gzip=bool(params.get("EnableAcceptEncodingGzip")), brotli=bool(params.get("EnableAcceptEncodingBrotli")))
    if ref in MANAGED_CACHE_POLICIES:
        return MANAGED_CACHE_POLICIES[ref]
    raise TemplateError(f"{where}: cache policy {ref!r} is neither a resource of the template nor a managed "
                        "policy whose documented contents the local edge knows")


def _origin_request_policy(ctx: _Context, ref: Any, where: str) -> OriginRequestPolicy | None:
    if ref is None:
        return None
    if isinstance(ref, LogicalId):
        config = ctx.resource(ref, "AWS::CloudFront::OriginRequestPolicy", where)["OriginRequestPolicyConfig"]
        return OriginRequestPolicy(
            str(config.get("Name", ref)),
            headers=_selection(config.get("HeadersConfig"), "HeaderBehavior", where),
            cookies=_selection(config.get("CookiesConfig"), "CookieBehavior", where),
            query=_selection(config.get("QueryStringsConfig"), "QueryStringBehavior", where))
    if ref in MANAGED_ORIGIN_REQUEST_POLICIES:
        return MANAGED_ORIGIN_REQUEST_POLICIES[ref]
    raise TemplateError(f"{where}: origin request policy {ref!r} is unknown to the local edge")


def _items(value: Any) -> list:
    return value.get("Items", []) if isinstance(value, dict) else list(value or [])


def security_header_rules(config: dict, where: str) -> list[HeaderRule]:
    """SecurityHeadersConfig as the headers CloudFront writes (AWS's value syntax)."""
    rules = []
    for key, spec in config.items():
        override = bool(spec.get("Override"))
        if key == "StrictTransportSecurity":
            value = f"max-age={int(spec['AccessControlMaxAgeSec'])}"
            value += "; includeSubDomains" if spec.get("IncludeSubdomains") else ""
            value += "; preload" if spec.get("Preload") else ""
            rules.append(HeaderRule("Strict-Transport-Security", value, override))
        elif key == "ContentSecurityPolicy":
            rules.append(HeaderRule("Content-Security-Policy", spec["ContentSecurityPolicy"], override))
        elif key == "ContentTypeOptions":
            rules.append(HeaderRule("X-Content-Type-Options", "nosniff", override))
        elif key == "FrameOptions":
            rules.append(HeaderRule("X-Frame-Options", spec["FrameOption"], override))
        elif key == "ReferrerPolicy":
            rules.append(HeaderRule("Referrer-Policy", spec["ReferrerPolicy"], override))
        elif key == "XSSProtection":
            value = "1" if spec.get("Protection") else "0"
            if spec.get("Protection") and spec.get("ModeBlock"):
                value += "; mode=block"
            if spec.get("Protection") and spec.get("ReportUri"):
                value += f"; report={spec['ReportUri']}"
            rules.append(HeaderRule("X-XSS-Protection", value, override))
        else:
            raise TemplateError(f"{where}: security header {key!r} is unknown to the local edge")
    return rules


def _headers_policy(ctx: _Context, ref: Any, where: str) -> ResponseHeadersPolicy | None:
    if ref is None:
        return None
    if not isinstance(ref, LogicalId):
        raise TemplateError(f"{where}: managed response headers policy {ref!r} is unknown to the local edge")
    config = ctx.resource(ref, "AWS::CloudFront::ResponseHeadersPolicy", where)["ResponseHeadersPolicyConfig"]
    for unsupported in ("CorsConfig", "ServerTimingHeadersConfig"):
        if unsupported in config:
            raise TemplateError(f"{where}: {unsupported} of {ref} is not emulated by the local edge")
    rules = security_header_rules(config.get("SecurityHeadersConfig", {}), where)
    rules += [HeaderRule(i["Header"], i["Value"], bool(i["Override"]))
              for i in _items(config.get("CustomHeadersConfig", {}).get("Items"))]
    remove = tuple(i["Header"].lower() for i in _items(config.get("RemoveHeadersConfig", {}).get("Items")))
    return ResponseHeadersPolicy(str(config.get("Name", ref)), tuple(rules), remove)


def _function(ctx: _Context, arn: Any, where: str) -> Function:
    if not isinstance(arn, Attr) or arn.name != "FunctionARN":
        raise TemplateError(f"{where}: a FunctionARN must be Fn::GetAtt [<function>, FunctionARN] of this "
                            f"template, got {arn!r}")
    props = ctx.resource(arn.resource, "AWS::CloudFront::Function", where)
    runtime = props.get("FunctionConfig", {}).get("Runtime", "")
    if runtime not in ("cloudfront-js-1.0", "cloudfront-js-2.0"):
        raise TemplateError(f"{where}: function runtime {runtime!r} is unknown to the local edge")
    return Function(str(props.get("Name", arn.resource)), runtime, str(props["FunctionCode"]))


def _origin(spec: dict, where: str) -> Origin:
    custom = spec.get("CustomOriginConfig")
    if custom is None and "S3OriginConfig" not in spec:
        raise TemplateError(f"{where}: origin {spec.get('Id')!r} is neither S3 nor custom")
    headers = tuple((h["HeaderName"], str(h["HeaderValue"])) for h in _items(spec.get("OriginCustomHeaders")))
    return Origin(spec["Id"], str(spec["DomainName"]), custom is None, spec.get("OriginPath", ""),
                  float((custom or {}).get("OriginReadTimeout", 30)), headers)


def _behavior(ctx: _Context, spec: dict, origins: dict[str, Origin], where: str) -> Behavior:
    if "ForwardedValues" in spec or "CachePolicyId" not in spec:
        raise TemplateError(f"{where}: legacy cache settings (ForwardedValues/TTLs) are not emulated: "
                            "use a CachePolicyId")
    edge_lambdas: dict[str, EdgeLambda] = {}
    for i, assoc in enumerate(_items(spec.get("LambdaFunctionAssociations"))):
        event = assoc["EventType"]
        if event != "origin-response":
            raise TemplateError(f"{where}.LambdaFunctionAssociations[{i}]: Lambda@Edge on {event!r} is not "
                                "emulated by the local edge (origin-response is)")
        edge_lambdas[event] = _edge_lambda(ctx, assoc["LambdaFunctionARN"], f"{where}.LambdaFunctionAssociations[{i}]")
    origin = origins.get(spec["TargetOriginId"])
    if origin is None:
        raise TemplateError(f"{where}: TargetOriginId {spec['TargetOriginId']!r} names no origin")
    functions: dict[str, Function] = {}
    for i, assoc in enumerate(_items(spec.get("FunctionAssociations"))):
        event = assoc["EventType"]
        if event not in ("viewer-request", "viewer-response"):
            raise TemplateError(f"{where}.FunctionAssociations[{i}]: event type {event!r}")
        functions[event] = _function(ctx, assoc["FunctionARN"], f"{where}.FunctionAssociations[{i}]")
    allowed = tuple(_items(spec.get("AllowedMethods")) or ["GET", "HEAD"])
    cached = tuple(_items(spec.get("CachedMethods")) or ["GET", "HEAD"])
    return Behavior(
        spec.get("PathPattern"), origin, _cache_policy(ctx, spec["CachePolicyId"], where),
        _origin_request_policy(ctx, spec.get("OriginRequestPolicyId"), where),
        _headers_policy(ctx, spec.get("ResponseHeadersPolicyId"), where),
        allowed, cached, bool(spec.get("Compress", False)),
        functions.get("viewer-request"), functions.get("viewer-response"), edge_lambdas.get("origin-response"))


def _edge_lambda(ctx: _Context, arn: Any, where: str) -> EdgeLambda:
    """Ref of an AWS::Lambda::Version of an inline Python AWS::Lambda::Function of this template."""
    if not isinstance(arn, LogicalId):
        raise TemplateError(f"{where}: a LambdaFunctionARN must be Ref of an AWS::Lambda::Version of this "
                            f"template, got {arn!r}")
    version = ctx.resource(arn, "AWS::Lambda::Version", where)
    props = ctx.resource(version["FunctionName"], "AWS::Lambda::Function", where)
    runtime, handler = str(props.get("Runtime", "")), str(props.get("Handler", ""))
    source = props.get("Code", {}).get("ZipFile")
    if not runtime.startswith("python3") or not handler.startswith("index.") or not isinstance(source, str):
        raise TemplateError(f"{where}: the local edge runs inline Python functions only (Code.ZipFile, "
                            f"Handler index.<name>); got {runtime!r} {handler!r}")
    return EdgeLambda(str(props.get("FunctionName", version["FunctionName"])), runtime, source,
                      handler.split(".", 1)[1])


def load_template(source: str | dict) -> dict:
    if isinstance(source, dict):
        return source
    with open(source, encoding="utf-8") as fh:
        return json.load(fh)


def load_distribution(source: str | dict, parameters: dict[str, str] | None = None,
                      resource: str | None = None) -> Distribution:
    """The distribution of a template (`resource`: its logical id, default the only one)."""
    template = load_template(source)
    ctx = _Context(template, dict(parameters or {}))
    names = [n for n, r in ctx.resources.items() if r.get("Type") == "AWS::CloudFront::Distribution"]
    if resource is None:
        if len(names) != 1:
            raise TemplateError(f"the template has {len(names)} distributions: name one")
        resource = names[0]
    spec = ctx.resources.get(resource)
    if spec is None or spec.get("Type") != "AWS::CloudFront::Distribution":
        raise TemplateError(f"{resource!r} is not a distribution of this template")
    if "Condition" in spec and not ctx.condition(spec["Condition"], resource):
        raise TemplateError(f"{resource!r} is not created with these parameters ({spec['Condition']})")
    raw = spec["Properties"]["DistributionConfig"]
    where = f"Resources.{resource}.Properties.DistributionConfig"

    def part(key: str, default: Any) -> Any:
        value = ctx.eval(raw.get(key, default), f"{where}.{key}")
        return default if value is NO_VALUE else value

    origins = {o["Id"]: _origin(o, f"{where}.Origins") for o in _items(part("Origins", []))}
    if "OriginGroups" in raw:
        raise TemplateError(f"{where}.OriginGroups: origin failover is not emulated by the local edge")
    behaviors = [_behavior(ctx, b, origins, f"{where}.CacheBehaviors[{i}]")
                 for i, b in enumerate(_items(part("CacheBehaviors", [])))]
    default = _behavior(ctx, part("DefaultCacheBehavior", {}), origins, f"{where}.DefaultCacheBehavior")
    if default.path_pattern is not None:
        raise TemplateError(f"{where}.DefaultCacheBehavior must not have a PathPattern")
    errors = {}
    for e in _items(part("CustomErrorResponses", [])):
        code = int(e["ErrorCode"])
        errors[code] = ErrorResponse(code, e.get("ResponsePagePath") or None,
                                     int(e["ResponseCode"]) if e.get("ResponseCode") not in (None, "") else None,
                                     float(e.get("ErrorCachingMinTTL", 10)))
    return Distribution([*behaviors, default], origins, errors, str(part("DefaultRootObject", "")))
