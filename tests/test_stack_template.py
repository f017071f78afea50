"""The stage stack's template (deploy/stack.json), read statically: what moto cannot create is checked here.

Headers equal the serving policy; origins, behaviours and error pages are as docs/deploy.md says; every
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
from deploy import site_config, stack_template

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


def test_the_headers_policy_is_the_serving_policy():
    config = RESOURCES["HeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    wanted = stack_template.to_cloudformation(response_headers_policy_config("x"))
    assert {k: v for k, v in config.items() if k != "Name"} == {k: v for k, v in wanted.items() if k != "Name"}
    security = config["SecurityHeadersConfig"]
    sent = {"Content-Security-Policy": security["ContentSecurityPolicy"]["ContentSecurityPolicy"],
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": security["FrameOptions"]["FrameOption"],
            "Referrer-Policy": security["ReferrerPolicy"]["ReferrerPolicy"],
            "Strict-Transport-Security": f"max-age={security['StrictTransportSecurity']['AccessControlMaxAgeSec']}; "
                                         "includeSubDomains",
            **{h["Header"]: h["Value"] for h in config["CustomHeadersConfig"]["Items"]}}
    assert sent == SECURITY_HEADERS


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


def test_distribution_origins_behaviours_and_error_pages():
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
    assert config["CustomErrorResponses"] == [{"ErrorCode": 403, "ResponsePagePath": "/404.html",
                                               "ResponseCode": 404, "ErrorCachingMinTTL": 60}]
    assert config["HttpVersion"] == "http2and3" and config["IPV6Enabled"] is True
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    custom, default = config["ViewerCertificate"]["Fn::If"][1:]
    assert custom["MinimumProtocolVersion"] == "TLSv1.2_2021" and custom["SslSupportMethod"] == "sni-only"
    assert default == {"CloudFrontDefaultCertificate": True}


def test_the_moto_side_distribution_agrees_with_the_template():
    api_config = site_config.distribution_config(stage="s", caller_reference="r", bucket_domain="b", oac_id="o",
                                                 api_domain="a", headers_policy_id="h")
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    (api,) = config["CacheBehaviors"]["Fn::If"][1]
    (moto_api,) = api_config["CacheBehaviors"]["Items"]
    for key in ("PathPattern", "CachePolicyId", "OriginRequestPolicyId", "TargetOriginId"):
        assert api[key] == moto_api[key]
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == api_config["DefaultCacheBehavior"]["CachePolicyId"]
    assert stack_template.to_cloudformation(api_config["CustomErrorResponses"])["Items"][0]["ResponsePagePath"] == \
        config["CustomErrorResponses"][0]["ResponsePagePath"]


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
    assert {"SiteBucketName", "DistributionId", "SiteUrl", "LogBucketName"} <= set(TEMPLATE["Outputs"])


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
