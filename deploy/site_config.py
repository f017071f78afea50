"""Pure functions that build every AWS configuration the site deploy sends.

Kept free of I/O so tests can assert on exactly what would be sent, including the parts moto
drops or cannot store (Origin Access Control ids, response headers policies).
"""

from __future__ import annotations

import json

from chalice_app.website.sync import html_invalidation_paths

__all__ = ["html_invalidation_paths"]  # moved to the sync module; kept importable here

# AWS-managed policies: every account has them, so a behaviour can name one by id.
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
USE_ORIGIN_CACHE_CONTROL_QUERY_STRINGS = "4cc15a8a-d715-48a4-82b8-cc0b614638fe"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

S3_ORIGIN_ID = "site-bucket"
API_ORIGIN_ID = "api-gateway"


def site_bucket_name(app_name: str, stage: str, account_id: str) -> str:
    """Globally unique, and recognisably this stage's."""
    return f"{app_name}-site-{stage}-{account_id}"


def bucket_policy(bucket: str, distribution_arn: str) -> str:
    """Only this stage's distribution may read, and only objects (OAC with AWS:SourceArn)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CloudFrontOriginAccessControlReadOnly",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
        }],
    }, indent=2)


def public_access_block() -> dict:
    return {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}


def encryption_config() -> dict:
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                       "BucketKeyEnabled": True}]}


def oac_config(name: str) -> dict:
    return {"Name": name, "Description": "predictions site: CloudFront reads the private bucket",
            "SigningProtocol": "sigv4", "SigningBehavior": "always", "OriginAccessControlOriginType": "s3"}


def _methods(*names: str) -> dict:
    return {"Quantity": len(names), "Items": list(names),
            "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}}


def distribution_config(*, stage: str, caller_reference: str, bucket_domain: str, oac_id: str,
                        api_domain: str, headers_policy_id: str) -> dict:
    """The stage's distribution: the site from S3 through OAC, /api/* to API Gateway."""
    s3_origin = {"Id": S3_ORIGIN_ID, "DomainName": bucket_domain, "OriginPath": "",
                 "S3OriginConfig": {"OriginAccessIdentity": ""}, "OriginAccessControlId": oac_id}
    # No OriginPath: the API's stage is named "api", so /api/predictions is the stage's /predictions.
    api_origin = {"Id": API_ORIGIN_ID, "DomainName": api_domain, "OriginPath": "",
                  "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only",
                                         "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]},
                                         "OriginReadTimeout": 30, "OriginKeepaliveTimeout": 5}}
    common = {"ViewerProtocolPolicy": "redirect-to-https", "Compress": True,
              "ResponseHeadersPolicyId": headers_policy_id}
    return {
        "CallerReference": caller_reference,
        "Comment": f"predictions site ({stage})",
        "Enabled": True,
        "DefaultRootObject": "index.html",
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
        "PriceClass": "PriceClass_100",
        "Origins": {"Quantity": 2, "Items": [s3_origin, api_origin]},
        "DefaultCacheBehavior": {"TargetOriginId": S3_ORIGIN_ID, "CachePolicyId": CACHING_OPTIMIZED,
                                 "AllowedMethods": _methods("GET", "HEAD"), **common},
        "CacheBehaviors": {"Quantity": 1, "Items": [{
            "PathPattern": "/api/*", "TargetOriginId": API_ORIGIN_ID,
            # Honours the API's Cache-Control, keys on the query string; forwards every viewer
            # header but Host (API Gateway needs its own) — If-None-Match included.
            "CachePolicyId": USE_ORIGIN_CACHE_CONTROL_QUERY_STRINGS,
            "OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST_HEADER,
            "AllowedMethods": _methods("GET", "HEAD", "OPTIONS"), **common}]},
        # Error pages apply to every behaviour, so only 403 is mapped: S3 without s3:ListBucket
        # answers 403 for a missing page, while the API's own JSON 404s must pass through untouched.
        "CustomErrorResponses": {"Quantity": 1, "Items": [
            {"ErrorCode": 403, "ResponsePagePath": "/404.html", "ResponseCode": "404", "ErrorCachingMinTTL": 60},
        ]},
        "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
        "Restrictions": {"GeoRestriction": {"RestrictionType": "none", "Quantity": 0}},
    }
