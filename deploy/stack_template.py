"""The generator of deploy/stack.json: one CloudFormation stack per stage for all that is not the Chalice app.

    python -m deploy.stack_template           # rewrite deploy/stack.json
    python -m deploy.stack_template --check   # exit 1 when deploy/stack.json is stale (tests do this too)

The template is a plain file a reviewer reads and `make deploy-check` lints and scans; it is generated so
the response headers come from chalice_app.website.serving (one source with the local edge) and the
alarms from ALARMS below (one source with the dashboard and with tests/test_stack_template.py, which
checks every metric against chalice_app.metrics or AWS's published ones).

What the stack holds: the private, versioned site bucket; the bucket of the app's build artifacts
(the Chalice app's stack takes its code from there); an access-log bucket that expires its logs; the
Origin Access Control; two response headers policies (the site's, which overrides, and the API's,
which only fills in what the API did not send); the API's cache policy; the not-found function
(Lambda@Edge on the site's behaviour, us-east-1 stacks only); the
distribution (site through OAC, /api/* to the Regional API once its domain is known, HTTP/2+3, IPv6,
TLS 1.2_2021 with a certificate; no custom error responses: they would rewrite the API's errors); the
bucket policies; optionally an ACM certificate (DNS-validated in the hosted zone) and alias records;
the alarms, their SNS topic (optional e-mail) and a dashboard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from chalice_app import metrics
from chalice_app.website.serving import response_headers_policy_config
from deploy import not_found_function
from deploy.generated_file import write_or_check

TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stack.json")

# AWS-managed policies: every account has them, so a behaviour can name one by id.
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
CLOUDFRONT_HOSTED_ZONE = "Z2FDTNDATAQYW2"  # the fixed zone id of every CloudFront alias target
S3_ORIGIN_ID = "site-bucket"
API_ORIGIN_ID = "api-gateway"
API_GATEWAY_STAGE = "api"  # .chalice/config.json api_gateway_stage
ORIGIN_HEADER = "X-Origin-Verify"  # chalice_app.api.origin.HEADER: what the API checks
IP_REPUTATION_RULE_GROUP = "AWSManagedRulesAmazonIpReputationList"

NO_VALUE = {"Ref": "AWS::NoValue"}


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def ref(name: str) -> dict:
    return {"Ref": name}


def if_(condition: str, yes: Any, no: Any = NO_VALUE) -> dict:
    return {"Fn::If": [condition, yes, no]}


def skip(*checks: tuple[str, str]) -> dict:
    """Metadata suppressing checkov checks, each with its reason (the reason is shown in every scan)."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in checks]}}


def to_cloudformation(api_config: Any) -> Any:
    """The CloudFront API's shape (what boto3 takes) to CloudFormation's: the same keys without Quantity."""
    if isinstance(api_config, dict):
        return {k: to_cloudformation(v) for k, v in api_config.items() if k != "Quantity"}
    if isinstance(api_config, list):
        return [to_cloudformation(v) for v in api_config]
    return api_config


# -- parameters and conditions -----------------------------------------------------------------

PARAMETERS = {
    "AppName": {"Type": "String", "Default": "predictions", "AllowedPattern": "[a-z][a-z0-9-]{0,30}",
                "Description": "app_name of .chalice/config.json"},
    "Stage": {"Type": "String", "AllowedPattern": "[a-z][a-z0-9-]{0,15}", "Description": "the Chalice stage"},
    "ApiDomain": {"Type": "String", "Default": "",
                  "AllowedPattern": "|[a-z0-9]+\\.execute-api\\.[a-z0-9-]+\\.amazonaws\\.com",
                  "Description": "the stage's Regional API domain ({restapi_id}.execute-api.{region}.amazonaws.com); "
                                 "empty before the first chalice deploy: no /api/* behaviour yet"},
    "WarmerEnabled": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true"},
    "SiteFunctionEnabled": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true"},
    "DomainName": {"Type": "String", "Default": "", "Description": "custom domain of the site, e.g. www.example.com"},
    "HostedZoneId": {"Type": "String", "Default": "",
                     "Description": "Route 53 zone of DomainName: the stack creates the certificate and alias"},
    "CertificateArn": {"Type": "String", "Default": "",
                       "Description": "an ACM certificate (us-east-1) for DomainName, instead of one made here"},
    "AlarmEmail": {"Type": "String", "Default": "", "Description": "subscribed to the alarm topic when set"},
    "StaleBatchHours": {"Type": "Number", "Default": 26, "MinValue": 1},
    "ApiErrorRate": {"Type": "Number", "Default": 0.05, "Description": "API 5xx rate (0-1) that alarms"},
    "ApiP99LatencyMs": {"Type": "Number", "Default": 3000},
    "CloudFrontErrorRatePercent": {"Type": "Number", "Default": 5},
    "LogRetentionDays": {"Type": "Number", "Default": 90, "MinValue": 1},
    "NoncurrentVersionDays": {"Type": "Number", "Default": 30, "MinValue": 1},
    # The origin lock (docs/protection.md): what CloudFront sends the API as ORIGIN_HEADER. deploy/stack.py
    # reads it from Parameter Store at deploy time ({{resolve:ssm-secure}} is not supported by CloudFront).
    "OriginSecret": {"Type": "String", "NoEcho": True, "Default": "",
                     "AllowedPattern": "|[A-Za-z0-9_-]{16,256}",
                     "ConstraintDescription": "16 to 256 characters of A-Z a-z 0-9 _ -",
                     "Description": "the first value of the stage's ORIGIN_SECRET_PARAMETER (deploy/stack.py)"},
    "WafEnabled": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                   "Description": "an AWS WAF web ACL on the distribution (us-east-1 stacks only; docs/protection.md)"},
    "WafRateLimit": {"Type": "Number", "Default": 1000, "MinValue": 10, "MaxValue": 2000000000,
                     "Description": "requests per client IP per 5 minutes before the web ACL blocks it"},
    "MonthlyBudgetUsd": {"Type": "Number", "Default": 25, "MinValue": 1,
                         "Description": "the monthly cost budget (USD) that notifies the alarm topic"},
}


def _not_empty(name: str) -> dict:
    return {"Fn::Not": [{"Fn::Equals": [ref(name), ""]}]}


CONDITIONS = {
    "HasApi": _not_empty("ApiDomain"),
    "HasDomain": _not_empty("DomainName"),
    "HasZone": _not_empty("HostedZoneId"),
    "HasCertificateArn": _not_empty("CertificateArn"),
    "HasEmail": _not_empty("AlarmEmail"),
    "WarmerOn": {"Fn::Equals": [ref("WarmerEnabled"), "true"]},
    "SiteFunctionOn": {"Fn::Equals": [ref("SiteFunctionEnabled"), "true"]},
    "HasOriginSecret": _not_empty("OriginSecret"),
    # CloudFront takes certificates from us-east-1 only and publishes its metrics there only.
    "InUsEast1": {"Fn::Equals": [ref("AWS::Region"), "us-east-1"]},
    "CreateCertificate": {"Fn::And": [{"Condition": "HasDomain"}, {"Condition": "HasZone"},
                                      {"Fn::Not": [{"Condition": "HasCertificateArn"}]}, {"Condition": "InUsEast1"}]},
    "UseCustomDomain": {"Fn::And": [{"Condition": "HasDomain"}, {"Fn::Or": [
        {"Condition": "HasCertificateArn"}, {"Condition": "CreateCertificate"}]}]},
    "CreateAlias": {"Fn::And": [{"Condition": "UseCustomDomain"}, {"Condition": "HasZone"}]},
    # A web ACL for CloudFront (Scope CLOUDFRONT) can only be created in us-east-1.
    "WafOn": {"Fn::And": [{"Fn::Equals": [ref("WafEnabled"), "true"]}, {"Condition": "InUsEast1"}]},
}


# -- buckets -----------------------------------------------------------------------------------

def _encryption() -> dict:
    return {"ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}


def _block_public_access() -> dict:
    return {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}


def _deny_insecure_transport(bucket: str) -> dict:
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [{"Fn::GetAtt": [bucket, "Arn"]}, sub(f"${{{bucket}.Arn}}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def buckets() -> dict:
    site = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": sub("${AppName}-site-${Stage}-${AWS::AccountId}"),
            "BucketEncryption": _encryption(),
            "PublicAccessBlockConfiguration": _block_public_access(),
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "ExpireOldVersions", "Status": "Enabled",
                 "NoncurrentVersionExpiration": {"NoncurrentDays": ref("NoncurrentVersionDays")},
                 "ExpiredObjectDeleteMarker": True},
                {"Id": "AbortIncompleteUploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
            ]},
            "LoggingConfiguration": {"DestinationBucketName": ref("LogBucket"), "LogFilePrefix": "s3/site/"},
            "Tags": [{"Key": "stage", "Value": ref("Stage")}],
        },
    }
    logs = {
        "Type": "AWS::S3::Bucket",
        "Metadata": skip(("CKV_AWS_18", "this is the access-log bucket: logging it into itself would log forever")),
        "Properties": {
            "BucketName": sub("${AppName}-logs-${Stage}-${AWS::AccountId}"),
            "BucketEncryption": _encryption(),
            "PublicAccessBlockConfiguration": _block_public_access(),
            # CloudFront standard logging writes through an ACL grant, so ACLs stay enabled (owner preferred).
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "ExpireLogs", "Status": "Enabled", "ExpirationInDays": ref("LogRetentionDays"),
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
                {"Id": "AbortIncompleteUploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            ]},
            "Tags": [{"Key": "stage", "Value": ref("Stage")}],
        },
    }
    log_policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {"Bucket": ref("LogBucket"), "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": sub("${LogBucket.Arn}/s3/*"),
             "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}},
            _deny_insecure_transport("LogBucket"),
        ]}},
    }
    site_policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {"Bucket": ref("SiteBucket"), "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            # Only this stage's distribution reads, and only objects: without s3:ListBucket a missing
            # page is a 403, which the not-found function turns into a 404 page.
            {"Sid": "CloudFrontOriginAccessControlReadOnly", "Effect": "Allow",
             "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
             "Resource": sub("${SiteBucket.Arn}/*"),
             "Condition": {"StringEquals": {"AWS:SourceArn": sub(
                 "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}")}}},
            _deny_insecure_transport("SiteBucket"),
        ]}},
    }
    artifacts = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": sub("${AppName}-artifacts-${Stage}-${AWS::AccountId}"),
            "BucketEncryption": _encryption(),
            "PublicAccessBlockConfiguration": _block_public_access(),
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            # Keys are content hashes and never overwritten; nothing expires, so a rollback of the app's
            # stack always finds the code it rolls back to.
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "AbortIncompleteUploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            ]},
            "LoggingConfiguration": {"DestinationBucketName": ref("LogBucket"), "LogFilePrefix": "s3/artifacts/"},
            "Tags": [{"Key": "stage", "Value": ref("Stage")}],
        },
    }
    artifacts_policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {"Bucket": ref("ArtifactBucket"), "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            _deny_insecure_transport("ArtifactBucket")]}},
    }
    return {"SiteBucket": site, "LogBucket": logs, "LogBucketPolicy": log_policy, "SiteBucketPolicy": site_policy,
            "ArtifactBucket": artifacts, "ArtifactBucketPolicy": artifacts_policy}


# -- CloudFront --------------------------------------------------------------------------------

def headers_policy(*, override: bool, name: str) -> dict:
    config = to_cloudformation(response_headers_policy_config("NAME", override=override))
    config["Name"] = sub(name)
    return {"Type": "AWS::CloudFront::ResponseHeadersPolicy", "Properties": {"ResponseHeadersPolicyConfig": config}}


def api_cache_policy() -> dict:
    """/api/*: keyed on the query string only, for as long as the API's Cache-Control says.

    Nothing from the viewer's headers is in the key: a header in the key is also forwarded, and the
    viewer's Host forwarded to API Gateway is a 403 (the managed UseOriginCacheControlHeaders policies
    key on Host). DefaultTTL 0: an answer without Cache-Control is not kept. MaxTTL a day, which bounds
    the API's `s-maxage` (EDGE_MAX_AGE_SECONDS, a day, sent when the site function runs): the edge keeps
    a batch's answer until the next publish, whose invalidation names it (docs/api.md); without the
    site function the API sends max-age only, and the edge keeps that long.
    """
    return {"Type": "AWS::CloudFront::CachePolicy", "Properties": {"CachePolicyConfig": {
        "Name": sub("${AppName}-api-${Stage}"),
        "Comment": "predictions API: query string only, the API's Cache-Control",
        "MinTTL": 0, "DefaultTTL": 0, "MaxTTL": 86400,
        "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True, "EnableAcceptEncodingBrotli": True,
            "HeadersConfig": {"HeaderBehavior": "none"},
            "CookiesConfig": {"CookieBehavior": "none"},
            "QueryStringsConfig": {"QueryStringBehavior": "all"},
        }}}}


NOT_FOUND_VERSION = f"NotFoundFunctionVersion{not_found_function.code_hash()}"


def not_found_resources() -> dict:
    """The site's 404 page: Lambda@Edge on origin-response (deploy/not_found_function.py says why)."""
    name = "${AppName}-${Stage}-not-found"
    role = {"Type": "AWS::IAM::Role", "Condition": "InUsEast1", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": ["lambda.amazonaws.com", "edgelambda.amazonaws.com"]}}]},
        # Lambda@Edge writes its logs in the region of the edge that ran it, as /aws/lambda/us-east-1.<name>.
        "Policies": [{"PolicyName": "logs", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": sub("arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:"
                            f"/aws/lambda/us-east-1.{name}:*"),
        }]}}],
        "Tags": [{"Key": "stage", "Value": ref("Stage")}]}}
    # Retained: CloudFront's replicas of a Lambda@Edge function outlive the association by hours, and
    # deleting the function or a version before they are gone fails (the stack delete, an update's cleanup).
    retain = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    function = {"Type": "AWS::Lambda::Function", "Condition": "InUsEast1", **retain, "Metadata": skip(
        ("CKV_AWS_115", "Lambda@Edge cannot have reserved concurrency"),
        ("CKV_AWS_116", "Lambda@Edge cannot have a dead-letter queue; a failure is CloudFront's 502, alarmed"),
        ("CKV_AWS_117", "Lambda@Edge cannot run in a VPC"),
        ("CKV_AWS_173", "Lambda@Edge cannot have environment variables: there are none to encrypt")),
        "Properties": {
            "FunctionName": sub(name), "Description": "the site's 404 page for a missing key (Lambda@Edge)",
            "Runtime": "python3.13", "Architectures": ["x86_64"], "Handler": "index.handler",
            "MemorySize": 128, "Timeout": 5, "Role": {"Fn::GetAtt": ["NotFoundFunctionRole", "Arn"]},
            "Code": {"ZipFile": not_found_function.SOURCE},
            "Tags": [{"Key": "stage", "Value": ref("Stage")}]}}
    version = {"Type": "AWS::Lambda::Version", "Condition": "InUsEast1", **retain,
               "Properties": {"FunctionName": ref("NotFoundFunction"),
                              "Description": f"source {not_found_function.code_hash()}"}}
    return {"NotFoundFunctionRole": role, "NotFoundFunction": function, NOT_FOUND_VERSION: version}


def _behaviour(headers_policy_id: str, **extra: Any) -> dict:
    return {"ViewerProtocolPolicy": "redirect-to-https", "Compress": True,
            "ResponseHeadersPolicyId": ref(headers_policy_id), **extra}


def distribution() -> dict:
    s3_origin = {"Id": S3_ORIGIN_ID, "DomainName": {"Fn::GetAtt": ["SiteBucket", "RegionalDomainName"]},
                 "S3OriginConfig": {"OriginAccessIdentity": ""},
                 "OriginAccessControlId": {"Fn::GetAtt": ["OriginAccessControl", "Id"]}}
    # No OriginPath: the API's stage is named "api", so /api/predictions is the stage's /predictions.
    # The API answers only requests carrying the stage's origin secret (chalice_app/api/origin.py): the
    # execute-api URL is useless without it. On this origin only: the bucket never sees it.
    api_origin = {"Id": API_ORIGIN_ID, "DomainName": ref("ApiDomain"),
                  "CustomOriginConfig": {"OriginProtocolPolicy": "https-only", "OriginSSLProtocols": ["TLSv1.2"],
                                         "OriginReadTimeout": 30, "OriginKeepaliveTimeout": 5},
                  "OriginCustomHeaders": if_("HasOriginSecret", [
                      {"HeaderName": ORIGIN_HEADER, "HeaderValue": ref("OriginSecret")}])}
    api_behaviour = _behaviour(
        "ApiHeadersPolicy", PathPattern="/api/*", TargetOriginId=API_ORIGIN_ID,
        # Keys on the query string and honours the API's Cache-Control; forwards every viewer header but
        # Host (API Gateway answers a foreign Host with 403). GET and HEAD only: the API declares GET.
        CachePolicyId=ref("ApiCachePolicy"), OriginRequestPolicyId=ALL_VIEWER_EXCEPT_HOST_HEADER,
        AllowedMethods=["GET", "HEAD"], CachedMethods=["GET", "HEAD"])
    config = {
        "Comment": sub("predictions site (${Stage})"),
        "Enabled": True,
        "DefaultRootObject": "index.html",
        "HttpVersion": "http2and3",
        "IPV6Enabled": True,
        "PriceClass": "PriceClass_100",
        "Aliases": if_("UseCustomDomain", [ref("DomainName")]),
        "Origins": {"Fn::If": ["HasApi", [s3_origin, api_origin], [s3_origin]]},
        "DefaultCacheBehavior": _behaviour(
            "HeadersPolicy", TargetOriginId=S3_ORIGIN_ID, CachePolicyId=CACHING_OPTIMIZED,
            AllowedMethods=["GET", "HEAD"], CachedMethods=["GET", "HEAD"],
            # The site's not-found page, here and not as a custom error response (deploy/not_found_function.py).
            LambdaFunctionAssociations=if_("InUsEast1", [
                {"EventType": "origin-response", "LambdaFunctionARN": ref(NOT_FOUND_VERSION)}])),
        "CacheBehaviors": if_("HasApi", [api_behaviour]),
        "Logging": {"Bucket": {"Fn::GetAtt": ["LogBucket", "DomainName"]}, "Prefix": "cloudfront/",
                    "IncludeCookies": False},
        "ViewerCertificate": if_(
            "UseCustomDomain",
            {"AcmCertificateArn": if_("HasCertificateArn", ref("CertificateArn"), ref("Certificate")),
             "SslSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"},
            {"CloudFrontDefaultCertificate": True}),
        "Restrictions": {"GeoRestriction": {"RestrictionType": "none"}},
        "WebACLId": if_("WafOn", {"Fn::GetAtt": ["WebAcl", "Arn"]}),
    }
    return {
        "Type": "AWS::CloudFront::Distribution",
        "Metadata": skip(
            ("CKV_AWS_68", "the web ACL is optional (waf_enabled in deploy/stages.json, off by default: $5 a month, "
                           "$1 per rule, $0.60 per million requests): the origin is locked to CloudFront by a secret "
                           "header, the API has reserved concurrency and a budget alarms; see docs/protection.md"),
            ("CKV_AWS_174", "TLSv1.2_2021 is set whenever a certificate is given; *.cloudfront.net (no "
                            "certificate) only allows CloudFront's default, which the scanner reads as TLSv1"),
        ),
        "Properties": {"DistributionConfig": config, "Tags": [{"Key": "stage", "Value": ref("Stage")}]},
    }


def cloudfront() -> dict:
    return {
        "OriginAccessControl": {"Type": "AWS::CloudFront::OriginAccessControl", "Properties": {
            "OriginAccessControlConfig": {
                "Name": sub("${AppName}-site-${Stage}"),
                "Description": "predictions site: CloudFront reads the private bucket",
                "SigningProtocol": "sigv4", "SigningBehavior": "always", "OriginAccessControlOriginType": "s3"}}},
        "HeadersPolicy": headers_policy(override=True, name="${AppName}-site-${Stage}-headers"),
        "ApiHeadersPolicy": headers_policy(override=False, name="${AppName}-api-${Stage}-headers"),
        "ApiCachePolicy": api_cache_policy(),
        **not_found_resources(),
        "Distribution": distribution(),
    }


# -- abuse and cost protection (docs/protection.md) --------------------------------------------

def _visibility(metric: str) -> dict:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": sub(metric)}


def web_acl() -> dict:
    """The optional web ACL (WafEnabled): a rate limit per client IP, and AWS's IP reputation list."""
    return {"Type": "AWS::WAFv2::WebACL", "Condition": "WafOn", "Metadata": skip(
        ("CKV_AWS_192", "the site and API are static files and a read-only JSON API on Python: no Java, no Log4j "
                        "to protect (AWSManagedRulesKnownBadInputsRuleSet would be one more rule a month)")),
        "Properties": {
            "Name": sub("${AppName}-${Stage}"), "Scope": "CLOUDFRONT",
            "Description": "predictions: rate limit per client IP, AWS IP reputation list",
            "DefaultAction": {"Allow": {}},
            "VisibilityConfig": _visibility("${AppName}-${Stage}-web-acl"),
            "Rules": [
                {"Name": "RateLimitPerIp", "Priority": 0, "Action": {"Block": {}},
                 "Statement": {"RateBasedStatement": {"Limit": ref("WafRateLimit"), "AggregateKeyType": "IP",
                                                      "EvaluationWindowSec": 300}},
                 "VisibilityConfig": _visibility("${AppName}-${Stage}-rate-limit")},
                {"Name": IP_REPUTATION_RULE_GROUP, "Priority": 1, "OverrideAction": {"None": {}},
                 "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": IP_REPUTATION_RULE_GROUP}},
                 "VisibilityConfig": _visibility("${AppName}-${Stage}-ip-reputation")},
            ],
            "Tags": [{"Key": "stage", "Value": ref("Stage")}]}}


def budget() -> dict:
    """A monthly cost budget: 80 % actual and 100 % forecast notify the alarm topic. AWS Budgets counts the
    whole account's cost (no filter): keep a stage per account."""
    def notify(kind: str, percent: int) -> dict:
        return {"Notification": {"NotificationType": kind, "ComparisonOperator": "GREATER_THAN",
                                 "Threshold": percent, "ThresholdType": "PERCENTAGE"},
                "Subscribers": [{"SubscriptionType": "SNS", "Address": ref("AlarmTopic")}]}

    return {"Type": "AWS::Budgets::Budget", "DependsOn": "AlarmTopicPolicy", "Properties": {
        "Budget": {"BudgetName": sub("${AppName}-${Stage}-monthly"), "BudgetType": "COST", "TimeUnit": "MONTHLY",
                   "BudgetLimit": {"Amount": ref("MonthlyBudgetUsd"), "Unit": "USD"}},
        "NotificationsWithSubscribers": [notify("ACTUAL", 80), notify("FORECASTED", 100)]}}


def alarm_topic_policy() -> dict:
    """Who may publish to the alarm topic: CloudWatch (the alarms) and AWS Budgets, of this account only.
    A topic policy replaces SNS's default one; the account's own principals keep their IAM permissions."""
    def publish(sid: str, service: str, source_arn: str) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Principal": {"Service": service}, "Action": "SNS:Publish",
                "Resource": ref("AlarmTopic"),
                "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                              "ArnLike": {"aws:SourceArn": sub(source_arn)}}}

    return {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [ref("AlarmTopic")], "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [
            publish("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com",
                    "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"),
            publish("BudgetsPublish", "budgets.amazonaws.com", "arn:${AWS::Partition}:budgets::${AWS::AccountId}:*"),
        ]}}}


def protection() -> dict:
    return {"WebAcl": web_acl(), "Budget": budget(), "AlarmTopicPolicy": alarm_topic_policy()}


# -- custom domain -----------------------------------------------------------------------------

def domain() -> dict:
    alias_target = {"DNSName": {"Fn::GetAtt": ["Distribution", "DomainName"]}, "HostedZoneId": CLOUDFRONT_HOSTED_ZONE}
    return {
        "Certificate": {"Type": "AWS::CertificateManager::Certificate", "Condition": "CreateCertificate",
                        "Properties": {"DomainName": ref("DomainName"), "ValidationMethod": "DNS",
                                       "DomainValidationOptions": [{"DomainName": ref("DomainName"),
                                                                    "HostedZoneId": ref("HostedZoneId")}]}},
        "AliasRecord": {"Type": "AWS::Route53::RecordSet", "Condition": "CreateAlias", "Properties": {
            "HostedZoneId": ref("HostedZoneId"), "Name": ref("DomainName"), "Type": "A", "AliasTarget": alias_target}},
        "AliasRecordIPv6": {"Type": "AWS::Route53::RecordSet", "Condition": "CreateAlias", "Properties": {
            "HostedZoneId": ref("HostedZoneId"), "Name": ref("DomainName"), "Type": "AAAA",
            "AliasTarget": alias_target}},
    }


# -- alarms ------------------------------------------------------------------------------------

API_DIMENSIONS = [{"Name": "ApiName", "Value": ref("AppName")}, {"Name": "Stage", "Value": API_GATEWAY_STAGE}]
STAGE_DIMENSION = [{"Name": "Stage", "Value": ref("Stage")}]
FUNCTIONS = {"Api": ("${AppName}-${Stage}", None), "Warmer": ("${AppName}-${Stage}-warmer", "WarmerOn"),
             "Site": ("${AppName}-${Stage}-site", "SiteFunctionOn")}


def _alarm(description: Any, namespace: str, metric: str, dimensions: list, threshold: Any, *,
           statistic: str = "Sum", period: int = 300, evaluation: int = 1, datapoints: int | None = None,
           missing: str = "notBreaching", condition: str | None = None,
           comparison: str = "GreaterThanThreshold") -> dict:
    props = {"AlarmName": None, "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
             "Dimensions": dimensions, "Period": period, "EvaluationPeriods": evaluation,
             "DatapointsToAlarm": datapoints or evaluation, "Threshold": threshold,
             "ComparisonOperator": comparison, "TreatMissingData": missing,
             "AlarmActions": [ref("AlarmTopic")], "OKActions": [ref("AlarmTopic")]}
    if statistic.startswith("p"):
        props["ExtendedStatistic"] = statistic
    else:
        props["Statistic"] = statistic
    alarm = {"Type": "AWS::CloudWatch::Alarm", "Properties": props}
    if condition:
        alarm["Condition"] = condition
    return alarm


def alarms() -> dict:
    found = {
        "LatestBatchStaleAlarm": _alarm(
            "The newest published batch is older than StaleBatchHours (or the warmer reported no age): "
            "the model job did not publish. See docs/deploy.md#alarms",
            metrics.NAMESPACE, "LatestBatchAgeHours", STAGE_DIMENSION, ref("StaleBatchHours"),
            statistic="Maximum", period=3600, missing="breaching", condition="WarmerOn"),
        "ApiErrorRateAlarm": _alarm(
            "API Gateway 5xx rate above ApiErrorRate for 2 of 3 five-minute periods",
            "AWS/ApiGateway", "5XXError", API_DIMENSIONS, ref("ApiErrorRate"), statistic="Average",
            evaluation=3, datapoints=2),
        "ApiLatencyAlarm": _alarm(
            "API Gateway p99 latency above ApiP99LatencyMs for 3 five-minute periods",
            "AWS/ApiGateway", "Latency", API_DIMENSIONS, ref("ApiP99LatencyMs"), statistic="p99", evaluation=3),
        "WarmerFailuresAlarm": _alarm(
            "Warm-ups failed in 2 consecutive 15-minute periods",
            metrics.NAMESPACE, "WarmerFailures", STAGE_DIMENSION, 0, period=900, evaluation=2,
            condition="WarmerOn"),
        "SiteBuildFailuresAlarm": _alarm(
            "A site rebuild failed all its attempts: the site shows an older batch",
            metrics.NAMESPACE, "SiteBuildFailures", STAGE_DIMENSION, 0, condition="SiteFunctionOn"),
        "CloudFrontErrorRateAlarm": _alarm(
            "CloudFront 5xx rate above CloudFrontErrorRatePercent for 2 of 3 five-minute periods",
            "AWS/CloudFront", "5xxErrorRate",
            [{"Name": "DistributionId", "Value": ref("Distribution")}, {"Name": "Region", "Value": "Global"}],
            ref("CloudFrontErrorRatePercent"), statistic="Average", evaluation=3, datapoints=2,
            condition="InUsEast1"),
    }
    for key, (name, condition) in FUNCTIONS.items():
        dims = [{"Name": "FunctionName", "Value": sub(name)}]
        found[f"{key}FunctionErrorsAlarm"] = _alarm(
            sub(f"Lambda {name} raised errors (unhandled exceptions, timeouts)"), "AWS/Lambda", "Errors", dims, 0,
            condition=condition)
        found[f"{key}FunctionThrottlesAlarm"] = _alarm(
            sub(f"Lambda {name} was throttled (reserved concurrency reached)"), "AWS/Lambda", "Throttles", dims, 0,
            condition=condition)
    for logical_id, alarm in found.items():
        alarm["Properties"]["AlarmName"] = sub(f"${{AppName}}-${{Stage}}-{logical_id.removesuffix('Alarm')}")
    return found


def alarm_resources() -> dict:
    return {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Metadata": skip(
            ("CKV_AWS_26", "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed key, and "
                           "the messages carry only alarm names and metric values")),
            "Properties": {"TopicName": sub("${AppName}-${Stage}-alarms"),
                           "Tags": [{"Key": "stage", "Value": ref("Stage")}]}},
        "AlarmEmailSubscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasEmail", "Properties": {
            "TopicArn": ref("AlarmTopic"), "Protocol": "email", "Endpoint": ref("AlarmEmail")}},
        **alarms(),
        "Dashboard": dashboard(),
    }


def _widget(title: str, metric_rows: list, *, stat: str = "Sum", y: int = 0, x: int = 0,
            region: str = "${AWS::Region}") -> dict:
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 300,
                           "metrics": metric_rows}}


def dashboard() -> dict:
    """The alarms' signals on one page (the same metrics, dimensions and statistics)."""
    api = ["ApiName", "${AppName}", "Stage", API_GATEWAY_STAGE]
    fn = [f"${{AppName}}-${{Stage}}{suffix}" for suffix in ("", "-warmer", "-site")]
    widgets = [
        _widget("Latest batch age (hours)", [[metrics.NAMESPACE, "LatestBatchAgeHours", "Stage", "${Stage}"]],
                stat="Maximum"),
        _widget("API 5xx rate", [["AWS/ApiGateway", "5XXError", *api]], stat="Average", x=12),
        _widget("API p99 latency (ms)", [["AWS/ApiGateway", "Latency", *api]], stat="p99", y=6),
        _widget("Lambda errors", [["AWS/Lambda", "Errors", "FunctionName", name] for name in fn], y=6, x=12),
        _widget("Lambda throttles", [["AWS/Lambda", "Throttles", "FunctionName", name] for name in fn], y=12),
        _widget("Warmer failures, site build failures",
                [[metrics.NAMESPACE, "WarmerFailures", "Stage", "${Stage}"],
                 [metrics.NAMESPACE, "SiteBuildFailures", "Stage", "${Stage}"]], y=12, x=12),
        # CloudFront publishes its metrics in us-east-1 only.
        _widget("CloudFront 5xx rate (%)", [["AWS/CloudFront", "5xxErrorRate", "DistributionId", "${Distribution}",
                                             "Region", "Global"]], stat="Average", y=18, region="us-east-1"),
    ]
    return {"Type": "AWS::CloudWatch::Dashboard", "Properties": {
        "DashboardName": sub("${AppName}-${Stage}"),
        "DashboardBody": sub(json.dumps({"widgets": widgets}, separators=(",", ":")))}}


# -- the template ------------------------------------------------------------------------------

OUTPUTS = {
    "SiteBucketName": {"Value": ref("SiteBucket")},
    "LogBucketName": {"Value": ref("LogBucket")},
    "DistributionId": {"Value": ref("Distribution")},
    "DistributionDomainName": {"Value": {"Fn::GetAtt": ["Distribution", "DomainName"]}},
    "SiteUrl": {"Value": {"Fn::If": ["UseCustomDomain", sub("https://${DomainName}/"),
                                     sub("https://${Distribution.DomainName}/")]}},
    "AlarmTopicArn": {"Value": ref("AlarmTopic")},
    "ApiDomain": {"Value": ref("ApiDomain")},
    "ArtifactBucketName": {"Value": ref("ArtifactBucket")},
    "WebAclArn": {"Condition": "WafOn", "Value": {"Fn::GetAtt": ["WebAcl", "Arn"]}},
}


def template() -> dict:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "predictions: one stage's site, CDN, custom domain and alarms (generated by "
                       "deploy/stack_template.py; the Chalice app is deployed beside it)",
        "Parameters": PARAMETERS,
        "Conditions": CONDITIONS,
        "Resources": {**buckets(), **cloudfront(), **domain(), **alarm_resources(), **protection()},
        "Outputs": OUTPUTS,
    }


def render() -> str:
    return json.dumps(template(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.stack_template", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when deploy/stack.json is not the generator's output")
    args = p.parse_args(argv)
    text = render()
    return write_or_check(TEMPLATE_PATH, text, "deploy.stack_template", check=args.check)


if __name__ == "__main__":
    sys.exit(main())
