"""The stage stack's template (deploy/stack.json), read statically: what moto cannot create is checked here.

Headers equal the serving policy (overriding on the site, filling in on the API); origins, behaviours,
the API's cache key and the site-only not-found function are as docs/deploy.md says; every
alarm's metric is one the code emits (chalice_app.metrics) or AWS publishes; cfn-lint and checkov pass,
with every checkov suppression carrying its reason and actually in use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chalice_app import metrics
from chalice_app.website.serving import SECURITY_HEADERS, response_headers_policy_config
from deploy import not_found_function, site_config, stack_template

from helpers import PROJECT_DIR

TEMPLATE = json.loads(open(stack_template.TEMPLATE_PATH, encoding="utf-8").read())
RESOURCES = TEMPLATE["Resources"]
CHECKOV = os.path.join(sys.prefix, "checkov", "bin", "checkov")  # its own venv inside .venv (make checkov)
# Metrics AWS publishes by default, with the dimensions an alarm may use.
AWS_PUBLISHED = {
    ("AWS/Lambda", "Errors"): {"FunctionName"},
    ("AWS/Lambda", "Throttles"): {"FunctionName"},
    ("AWS/ApiGateway", "5XXError"): {"ApiName", "Stage"},
    ("AWS/ApiGateway", "Latency"): {"ApiName", "Stage"},
    ("AWS/CloudFront", "5xxErrorRate"): {"DistributionId", "Region"},
}


def emitted_metrics() -> dict[str, set[str]]:
    """Every EMF metric name the code writes, with the dimensions it writes it under."""
    records = [
        metrics.request_fields(stage="s", route="/r", status=200, latency_ms=1, cold=True, init_duration_ms=1,
                               cache_hit=True),
        metrics.warmer_fields(stage="s", summary={"invoked": 1, "cold": 0, "failures": 0, "containers": 1,
                                                  "duration_ms": 1, "latest_age_hours": 3.5}),
        metrics.site_fields(stage="s", summary={"ms": 1, "files_changed": 1}),
        metrics.site_failure_fields(stage="s", error="e", attempts=3),
    ]
    found: dict[str, set[str]] = {}
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                found[metric["Name"]] = {d for dims in directive["Dimensions"] for d in dims}
    return found


def of_type(kind: str) -> dict:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def test_the_template_is_the_generators_output():
    assert stack_template.main(["--check"]) == 0, "run `python -m deploy.stack_template`"


def _sent(config: dict) -> dict[str, str]:
    security = config["SecurityHeadersConfig"]
    return {"Content-Security-Policy": security["ContentSecurityPolicy"]["ContentSecurityPolicy"],
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": security["FrameOptions"]["FrameOption"],
            "Referrer-Policy": security["ReferrerPolicy"]["ReferrerPolicy"],
            "Strict-Transport-Security": f"max-age={security['StrictTransportSecurity']['AccessControlMaxAgeSec']}; "
                                         "includeSubDomains",
            **{h["Header"]: h["Value"] for h in config["CustomHeadersConfig"]["Items"]}}


def _overrides(config: dict) -> set[bool]:
    return {v["Override"] for v in config["SecurityHeadersConfig"].values()} | {
        h["Override"] for h in config["CustomHeadersConfig"]["Items"]}


def test_the_site_headers_policy_is_the_serving_policy_and_overrides():
    config = RESOURCES["HeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    wanted = stack_template.to_cloudformation(response_headers_policy_config("x"))
    assert {k: v for k, v in config.items() if k != "Name"} == {k: v for k, v in wanted.items() if k != "Name"}
    assert _sent(config) == SECURITY_HEADERS
    assert _overrides(config) == {True}


def test_the_api_headers_policy_only_fills_in_what_the_api_did_not_send():
    # Override would replace the API's own CSP ("default-src 'none'") and Referrer-Policy: no-referrer.
    config = RESOURCES["ApiHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    assert _sent(config) == SECURITY_HEADERS
    assert _overrides(config) == {False}


def test_each_behaviour_has_its_own_headers_policy():
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    assert config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"] == {"Ref": "HeadersPolicy"}
    assert api["ResponseHeadersPolicyId"] == {"Ref": "ApiHeadersPolicy"}


def test_site_bucket_is_private_encrypted_versioned_and_expires_old_versions():
    props = RESOURCES["SiteBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    expiry = rules["ExpireOldVersions"]["NoncurrentVersionExpiration"]
    assert expiry == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    assert "WebsiteConfiguration" not in props
    logs = RESOURCES["LogBucket"]["Properties"]
    assert {r["Id"]: r for r in logs["LifecycleConfiguration"]["Rules"]}["ExpireLogs"]["ExpirationInDays"] == {
        "Ref": "LogRetentionDays"}


def test_only_this_distribution_reads_the_site_bucket_over_tls():
    statements = RESOURCES["SiteBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow = next(s for s in statements if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert "${Distribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    deny = next(s for s in statements if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_distribution_origins_and_behaviours():
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    with_api, without_api = config["Origins"]["Fn::If"][1:]
    s3_origin, api_origin = with_api
    assert without_api == [s3_origin]
    assert s3_origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
    assert s3_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert api_origin["DomainName"] == {"Ref": "ApiDomain"}
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert "execute-api\\.[a-z0-9-]+\\.amazonaws" in TEMPLATE["Parameters"]["ApiDomain"]["AllowedPattern"]
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    assert api["PathPattern"] == "/api/*" and api["TargetOriginId"] == api_origin["Id"]
    assert api["AllowedMethods"] == ["GET", "HEAD"]
    assert config["HttpVersion"] == "http2and3" and config["IPV6Enabled"] is True
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    custom, default = config["ViewerCertificate"]["Fn::If"][1:]
    assert custom["MinimumProtocolVersion"] == "TLSv1.2_2021" and custom["SslSupportMethod"] == "sni-only"
    assert default == {"CloudFrontDefaultCertificate": True}


def test_no_custom_error_response_can_rewrite_an_api_error():
    # They apply to every behaviour: a 403 or 404 mapped to the site's page would turn the API's JSON
    # 404 (batch_not_found) and API Gateway's answers into HTML.
    assert "CustomErrorResponses" not in RESOURCES["Distribution"]["Properties"]["DistributionConfig"]


def test_the_api_cache_key_holds_the_query_string_and_no_viewer_header():
    # A header in the cache key is always forwarded: the viewer's Host at API Gateway is a 403.
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    assert api["CachePolicyId"] == {"Ref": "ApiCachePolicy"}
    policy = RESOURCES["ApiCachePolicy"]["Properties"]["CachePolicyConfig"]
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"] == {"HeaderBehavior": "none"}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    # The API's Cache-Control decides; an answer without one is not kept.
    assert (policy["MinTTL"], policy["DefaultTTL"]) == (0, 0) and policy["MaxTTL"] >= 3600
    assert api["OriginRequestPolicyId"] == stack_template.ALL_VIEWER_EXCEPT_HOST_HEADER


def test_the_not_found_page_is_scoped_to_the_site_behaviour():
    # Lambda@Edge on origin-response: the one edge function CloudFront runs for an origin's 403/404
    # (viewer-response functions are not invoked for them), on the site's behaviour only.
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    (association,) = config["DefaultCacheBehavior"]["LambdaFunctionAssociations"]["Fn::If"][1]
    assert association == {"EventType": "origin-response",
                           "LambdaFunctionARN": {"Ref": stack_template.NOT_FOUND_VERSION}}
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    assert "FunctionAssociations" not in api and "LambdaFunctionAssociations" not in api
    function = RESOURCES["NotFoundFunction"]["Properties"]
    assert function["Code"] == {"ZipFile": not_found_function.SOURCE}
    # Lambda@Edge: us-east-1 only, x86_64 only, a published version, no environment.
    assert RESOURCES["NotFoundFunction"]["Condition"] == "InUsEast1"
    assert function["Architectures"] == ["x86_64"] and "Environment" not in function
    version = RESOURCES[stack_template.NOT_FOUND_VERSION]
    assert version["Type"] == "AWS::Lambda::Version" and version["DeletionPolicy"] == "Retain"
    trust = RESOURCES["NotFoundFunctionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert set(trust["Principal"]["Service"]) == {"lambda.amazonaws.com", "edgelambda.amazonaws.com"}


def test_a_new_page_publishes_a_new_version():
    assert stack_template.NOT_FOUND_VERSION.endswith(not_found_function.code_hash())


def origin_response(status: str) -> dict:
    event = {"Records": [{"cf": {
        "config": {"eventType": "origin-response", "distributionId": "E1", "requestId": "r"},
        "request": {"method": "GET", "uri": "/nope.html", "querystring": "", "headers": {}, "clientIp": "192.0.2.1"},
        "response": {"status": status, "statusDescription": "x",
                     "headers": {"content-type": [{"key": "Content-Type", "value": "application/xml"}]}}}}]}
    return not_found_function.load_handler(RESOURCES["NotFoundFunction"]["Properties"]["Code"]["ZipFile"])(
        event, None)


@pytest.mark.parametrize("status", ["403", "404"])
def test_the_not_found_function_turns_a_missing_key_into_the_404_page(status):
    response = origin_response(status)
    assert response["status"] == "404"
    assert response["headers"]["content-type"][0]["value"].startswith("text/html")
    assert "<h1>Page not found</h1>" in response["body"] and 'href="/"' in response["body"]


@pytest.mark.parametrize("status", ["200", "304", "500"])
def test_the_not_found_function_leaves_other_answers_alone(status):
    response = origin_response(status)
    assert response["status"] == status and "body" not in response


def test_the_moto_side_distribution_agrees_with_the_template():
    api_config = site_config.distribution_config(stage="s", caller_reference="r", bucket_domain="b", oac_id="o",
                                                 api_domain="a", headers_policy_id="h", api_headers_policy_id="ah",
                                                 api_cache_policy_id="c", not_found_version_arn="f")
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    (moto_api,) = api_config["CacheBehaviors"]["Items"]
    for key in ("PathPattern", "OriginRequestPolicyId", "TargetOriginId"):
        assert api[key] == moto_api[key]
    assert api["AllowedMethods"] == moto_api["AllowedMethods"]["Items"]
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == api_config["DefaultCacheBehavior"]["CachePolicyId"]
    assert api_config["CustomErrorResponses"] == {"Quantity": 0}
    assert api_config["DefaultCacheBehavior"]["LambdaFunctionAssociations"]["Items"][0]["EventType"] == \
        "origin-response"


def test_the_artifact_bucket_is_private_encrypted_and_keeps_every_build():
    props = RESOURCES["ArtifactBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert not any("Expiration" in key for rule in props["LifecycleConfiguration"]["Rules"] for key in rule)
    assert TEMPLATE["Outputs"]["ArtifactBucketName"] == {"Value": {"Ref": "ArtifactBucket"}}


def test_custom_domain_creates_a_dns_validated_certificate_and_alias_records():
    cert = RESOURCES["Certificate"]
    assert cert["Condition"] == "CreateCertificate" and cert["Properties"]["ValidationMethod"] == "DNS"
    for name, kind in (("AliasRecord", "A"), ("AliasRecordIPv6", "AAAA")):
        record = RESOURCES[name]["Properties"]
        assert record["Type"] == kind and record["AliasTarget"]["HostedZoneId"] == "Z2FDTNDATAQYW2"


@pytest.mark.parametrize("name", sorted(of_type("AWS::CloudWatch::Alarm")))
def test_every_alarm_uses_a_metric_that_exists_and_notifies_the_topic(name):
    props = RESOURCES[name]["Properties"]
    dims = {d["Name"] for d in props["Dimensions"]}
    if props["Namespace"] == metrics.NAMESPACE:
        emitted = emitted_metrics()
        assert props["MetricName"] in emitted, f"{name}: the code never emits {props['MetricName']}"
        assert dims == emitted[props["MetricName"]]
    else:
        assert dims == AWS_PUBLISHED[(props["Namespace"], props["MetricName"])]
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_stale_batch_alarm_breaches_on_missing_data():
    props = RESOURCES["LatestBatchStaleAlarm"]["Properties"]
    assert props["TreatMissingData"] == "breaching" and props["Threshold"] == {"Ref": "StaleBatchHours"}
    assert TEMPLATE["Parameters"]["StaleBatchHours"]["Default"] == 26


def test_every_function_has_error_and_throttle_alarms():
    names = {a["Properties"]["Dimensions"][0]["Value"]["Fn::Sub"]
             for a in of_type("AWS::CloudWatch::Alarm").values() if a["Properties"]["Namespace"] == "AWS/Lambda"}
    assert names == {"${AppName}-${Stage}", "${AppName}-${Stage}-warmer", "${AppName}-${Stage}-site"}


def test_the_dashboard_shows_every_alarmed_metric():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    shown = {(row[0], row[1]) for widget in json.loads(body)["widgets"] for row in widget["properties"]["metrics"]}
    alarmed = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"])
               for a in of_type("AWS::CloudWatch::Alarm").values()}
    assert alarmed <= shown


def test_the_outputs_the_deploy_reads():
    assert {"SiteBucketName", "DistributionId", "SiteUrl", "LogBucketName", "ArtifactBucketName"} <= set(
        TEMPLATE["Outputs"])


@pytest.mark.slow
def test_cfn_lint_passes():
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"), stack_template.TEMPLATE_PATH],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def checkov(path: str, *extra: str) -> dict:
    assert os.path.exists(CHECKOV), "checkov is missing: run `make checkov` (its own venv, see docs/deploy.md)"
    result = subprocess.run([CHECKOV, "-f", path, "--framework", "cloudformation", "--skip-download", "--output",
                             "json", *extra], capture_output=True, text=True, check=False, cwd=PROJECT_DIR,
                            timeout=300)
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.slow
def test_checkov_passes_and_every_suppression_is_explained_and_used():
    report = checkov(stack_template.TEMPLATE_PATH)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in report["results"]["skipped_checks"]}
    declared = {(s["id"], name) for name, r in RESOURCES.items()
                for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert skipped == declared
    assert all(len(s["comment"]) > 20 for r in RESOURCES.values()
               for s in r.get("Metadata", {}).get("checkov", {}).get("skip", []))
