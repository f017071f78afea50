"""The least-privilege IAM policy of whoever runs `make deploy STAGE=S` (a person or a CI role).

    python -m deploy.deployer_policy                       # rewrite deploy/deployer-policy.json (placeholders)
    python -m deploy.deployer_policy --check               # exit 1 when that file is stale (tests do this too)
    python -m deploy.deployer_policy --stage prod --account 123456789012 --region us-east-1
                                                           # the stage's policy, ready for `aws iam create-policy`

The deploy's stacks are created with the deployer's own credentials, so the policy holds two kinds of
permission: what the deploy code calls itself (CloudFormation change sets, the artifact upload, the
lock, the bucket events, the prewarm, the site's files and invalidation), and what CloudFormation
calls on the deployer's behalf for each resource type of the two stacks. The second kind is not
guessed: tests/test_deployer_policy.py reads each type's handler permissions from the CloudFormation
resource schemas cfn-lint ships (what AWS declares its handlers call) and fails when one is neither
here nor in NOT_USED with its reason; it also records every AWS call of a deploy against moto and
checks each is allowed on the resource it names.

Resources are scoped to the stage's names wherever the service allows it. Where AWS gives no name to
scope by before creation (a distribution's or a REST API's generated id, an ACM certificate), the
resource is the service's own kind, and the note says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from deploy.generated_file import write_or_check

POLICY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deployer-policy.json")
PLACEHOLDERS = ("AppName", "Stage", "Region", "AccountId", "PredictionsBucket", "PredictionsPrefix")

STACKS = "arn:aws:cloudformation:${Region}:${AccountId}:stack/${AppName}-${Stage}-*/*"
SITE_BUCKETS = [f"arn:aws:s3:::${{AppName}}-{kind}-${{Stage}}-${{AccountId}}" for kind in ("site", "logs", "artifacts")]
FUNCTIONS = "arn:aws:lambda:${Region}:${AccountId}:function:${AppName}-${Stage}*"
# CloudFormation names a role it creates "<stack>-<logical id>-<suffix>": the app stack's roles.
APP_ROLES = "arn:aws:iam::${AccountId}:role/${AppName}-${Stage}-app-*"
STAGE_ROLES = "arn:aws:iam::${AccountId}:role/${AppName}-${Stage}-site-*"
# What CloudFormation does to a role with inline policies (AWS::IAM::Role's handlers, minus NOT_USED).
ROLE_ACTIONS = ["iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateRoleDescription",
                "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
                "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:TagRole", "iam:UntagRole"]
LOG_GROUPS = "arn:aws:logs:${Region}:${AccountId}:log-group:/aws/lambda/${AppName}-${Stage}*"
ACCESS_LOGS = "arn:aws:logs:${Region}:${AccountId}:log-group:/aws/apigateway/${AppName}-${Stage}-access*"
# The SAM transform names CodeDeploy's application and group "<stack>-<logical id>-<suffix>".
CODEDEPLOY = "arn:aws:codedeploy:${Region}:${AccountId}"

# Handler permissions of the stacks' resource types that this deploy never needs, with the reason.
NOT_USED: dict[str, str] = {
    "ec2:": "no function runs in a VPC",
    "elasticfilesystem:": "no function mounts EFS",
    "s3files:": "no function mounts S3 Files",
    "kms:": "AWS-managed keys only (SSE-S3, Lambda's default key)",
    "acm-pca:": "certificates come from ACM's public CA, not a private CA",
    "firehose:": "no log delivery to Firehose",
    "s3tables:": "no S3 table buckets",
    "s3:REST.PUT.OBJECT": "no log delivery to S3 from a log group",
    "iam:PassRole@s3": "no bucket replication role",
    "iam:PassRole@sns": "no SNS delivery-status logging role",
    "iam:GetRole@sns": "no SNS delivery-status logging role",
    "iam:PassRole@events": "no rule target that needs a role (Lambda targets use resource policies)",
    "iam:PassRole@apigateway": "no API Gateway CloudWatch role or S3 import",
    "s3:GetObject@apigateway": "the API's definition is inline, never imported from S3",
    "s3:PutBucketWebsite": "no website hosting (CloudFront reads the private bucket)",
    "s3:DeleteBucketWebsite": "no website hosting",
    "s3:GetBucketWebsite": "no website hosting",
    "s3:PutBucketCORS": "no CORS: the site and the API share one domain",
    "s3:DeleteBucketCors": "no CORS",
    "s3:GetBucketCORS": "no CORS",
    "s3:PutAccelerateConfiguration": "no transfer acceleration",
    "s3:GetAccelerateConfiguration": "no transfer acceleration",
    "s3:PutAnalyticsConfiguration": "no storage-class analytics",
    "s3:GetAnalyticsConfiguration": "no storage-class analytics",
    "s3:DeleteBucketAnalyticsConfiguration": "no storage-class analytics",
    "s3:PutInventoryConfiguration": "no inventory",
    "s3:GetInventoryConfiguration": "no inventory",
    "s3:PutMetricsConfiguration": "no request metrics",
    "s3:GetMetricsConfiguration": "no request metrics",
    "s3:DeleteBucketMetricsConfiguration": "no request metrics",
    "s3:PutBucketReplication": "no replication",
    "s3:PutReplicationConfiguration": "no replication",
    "s3:GetReplicationConfiguration": "no replication",
    "s3:DeleteBucketReplication": "no replication",
    "s3:PutBucketObjectLockConfiguration": "no object lock",
    "s3:PutObjectLockConfiguration": "no object lock",
    "s3:GetBucketObjectLockConfiguration": "no object lock",
    "s3:PutIntelligentTieringConfiguration": "no intelligent tiering",
    "s3:GetIntelligentTieringConfiguration": "no intelligent tiering",
    "s3:PutBucketNotification": "the stack's buckets send no notifications",
    "s3:GetBucketNotification": "the stack's buckets send no notifications",
    "s3:CreateBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:GetBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:DeleteBucketMetadataTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataAnnotationTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataInventoryTableConfiguration": "no S3 metadata tables",
    "s3:UpdateBucketMetadataJournalTableConfiguration": "no S3 metadata tables",
    "s3:PutBucketAbac": "no attribute-based access control",
    "s3:GetBucketAbac": "no attribute-based access control",
    "s3:PutObjectAcl": "bucket owner enforced or preferred: no object ACLs",
    "s3:DeleteObject@s3": "buckets are emptied by the delete command, not by CloudFormation",
    "cloudfront:CreateConnectionGroup": "a standard distribution, not multi-tenant",
    "cloudfront:GetConnectionGroup": "a standard distribution, not multi-tenant",
    "cloudfront:GetVpcOrigin": "no VPC origin",
    "cloudfront:UpdateDistributionWithStagingConfig": "no continuous deployment (staging distribution)",
    "payments:GetConnectedAccount": "no AWS Marketplace rule group in the web ACL",
    "sns:PutDataProtectionPolicy": "no SNS data protection policy",
    "sns:GetDataProtectionPolicy": "no SNS data protection policy",
    "lambda:AssociateRuntimeAlias": "no runtime alias",
    "lambda:GetCodeSigningConfig": "no code signing",
    "lambda:GetFunctionCodeSigningConfig": "no code signing",
    "lambda:PutFunctionCodeSigningConfig": "no code signing",
    "lambda:DeleteFunctionCodeSigningConfig": "no code signing",
    "lambda:GetLayerVersion": "no layers",
    "lambda:GetRuntimeManagementConfig": "the runtime's default update mode",
    "lambda:PutRuntimeManagementConfig": "the runtime's default update mode",
    "lambda:PassCapacityProvider": "no capacity provider",
    "lambda:GetFunctionScalingConfig": "no capacity provider scaling",
    "lambda:PutFunctionScalingConfig": "no capacity provider scaling",
    "lambda:GetFunctionRecursionConfig": "the default recursion setting",
    "lambda:PutFunctionRecursionConfig": "the default recursion setting",
    "lambda:GetProvisionedConcurrencyConfig": "no provisioned concurrency",
    "lambda:PutProvisionedConcurrencyConfig": "no provisioned concurrency",
    "lambda:DeleteProvisionedConcurrencyConfig": "no provisioned concurrency",
    "codedeploy:RegisterOnPremisesInstance": "Lambda deployments only, no on-premises instances",
    "lambda:DeleteFunctionConcurrency": "every function keeps its reserved concurrency",
    "logs:AssociateKmsKey": "log groups use the default encryption",
    "logs:DisassociateKmsKey": "log groups use the default encryption",
    "logs:CreateLogDelivery": "no vended log delivery",
    "logs:PutDataProtectionPolicy": "no log data protection",
    "logs:GetDataProtectionPolicy": "no log data protection",
    "logs:DeleteDataProtectionPolicy": "no log data protection",
    "logs:PutResourcePolicy": "no log group resource policy",
    "logs:DescribeResourcePolicies": "no log group resource policy",
    "logs:DeleteResourcePolicy": "no log group resource policy",
    "logs:PutIndexPolicy": "no field indexes",
    "logs:DescribeIndexPolicies": "no field indexes",
    "logs:DeleteIndexPolicy": "no field indexes",
    "logs:PutBearerTokenAuthentication": "no bearer token authentication",
    "logs:PutLogGroupDeletionProtection": "log groups are deletable with the stack",
    "iam:PutRolePermissionsBoundary": "no permissions boundary (add one here if the account requires it)",
    "iam:DeleteRolePermissionsBoundary": "no permissions boundary",
    "iam:AttachRolePolicy": "Chalice writes inline role policies only",
    "iam:DetachRolePolicy": "Chalice writes inline role policies only",
    "apigateway:UpdateRestApiPolicy": "no resource policy on the REST API",
}


def _allow(sid: str, actions: list[str], resources: list[str] | str, **extra: Any) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
            "Resource": resources if isinstance(resources, str) else sorted(resources), **extra}


def deploy_statements() -> list[dict]:
    """What the deploy code calls."""
    buckets = SITE_BUCKETS
    return [
        # -- what the deploy code calls itself ------------------------------------------------
        _allow("StageStacksChangeSets", [
            "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet", "cloudformation:ExecuteChangeSet",
            "cloudformation:DeleteChangeSet", "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
            "cloudformation:GetTemplate", "cloudformation:DeleteStack", "cloudformation:ListStackResources"],
            STACKS),
        # The app stack's template uses the SAM transform, which CloudFormation runs as this caller.
        _allow("SamTransform", ["cloudformation:CreateChangeSet"],
               "arn:aws:cloudformation:${Region}:aws:transform/Serverless-2016-10-31"),
        _allow("DeployLock", ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"],
               "arn:aws:ssm:${Region}:${AccountId}:parameter/${AppName}/deploy-locks/${Stage}"),
        # deploy/stack.py reads it for CloudFront (creating it when missing); deploy/origin_secret.py rotates it.
        _allow("OriginSecret", ["ssm:PutParameter", "ssm:GetParameter"],
               "arn:aws:ssm:${Region}:${AccountId}:parameter/${AppName}/origin-secrets/${Stage}"),
        _allow("AppArtifactsAndSiteFiles", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
                                            "s3:ListBucketVersions", "s3:GetObjectVersion", "s3:DeleteObjectVersion"],
               [*buckets, *(f"{b}/*" for b in buckets)]),
        # docs/deploy.md step 1 (python -m deploy.predictions_bucket): once per stage, idempotent.
        _allow("CreateThePredictionsBucket", ["s3:CreateBucket", "s3:GetBucketLocation",
                                              "s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration",
                                              "s3:PutBucketVersioning"], "arn:aws:s3:::${PredictionsBucket}"),
        _allow("ReadTheBatchesForTheSite", ["s3:GetObject"],
               "arn:aws:s3:::${PredictionsBucket}/${PredictionsPrefix}*"),
        _allow("ListTheBatchesForTheSite", ["s3:ListBucket"], "arn:aws:s3:::${PredictionsBucket}"),
        _allow("PredictionsBucketEventsToEventBridge", ["s3:GetBucketNotification", "s3:PutBucketNotification"],
               "arn:aws:s3:::${PredictionsBucket}"),
        _allow("PrewarmThroughTheWarmer", ["lambda:InvokeFunction"], FUNCTIONS),
        # A distribution's id is generated: it cannot be named before it exists.
        _allow("InvalidateChangedPages", ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
               "arn:aws:cloudfront::${AccountId}:distribution/*"),
    ]


def stage_stack_statements() -> list[dict]:
    """What CloudFormation calls for the stage stack's resources."""
    buckets = SITE_BUCKETS
    return [
        _allow("StackBuckets", [
            "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketAcl", "s3:PutBucketAcl",
            "s3:PutBucketTagging", "s3:GetBucketTagging", "s3:TagResource", "s3:UntagResource",
            "s3:ListTagsForResource", "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration",
            "s3:DeleteBucketEncryption", "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration",
            "s3:DeleteBucketLifecycle", "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock",
            "s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls", "s3:PutBucketVersioning",
            "s3:GetBucketVersioning", "s3:PutBucketLogging", "s3:GetBucketLogging", "s3:PutBucketPolicy",
            "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"], buckets),
        _allow("StackCloudFront", [
            "cloudfront:CreateDistribution", "cloudfront:CreateDistributionWithTags", "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution", "cloudfront:DeleteDistribution",
            "cloudfront:TagResource", "cloudfront:UntagResource", "cloudfront:ListTagsForResource",
            "cloudfront:CreateOriginAccessControl", "cloudfront:GetOriginAccessControl",
            "cloudfront:UpdateOriginAccessControl", "cloudfront:DeleteOriginAccessControl",
            "cloudfront:CreateResponseHeadersPolicy", "cloudfront:GetResponseHeadersPolicy",
            "cloudfront:UpdateResponseHeadersPolicy", "cloudfront:DeleteResponseHeadersPolicy",
            "cloudfront:CreateCachePolicy", "cloudfront:GetCachePolicy", "cloudfront:UpdateCachePolicy",
            "cloudfront:DeleteCachePolicy"],
            [f"arn:aws:cloudfront::${{AccountId}}:{kind}/*"
             for kind in ("distribution", "origin-access-control", "response-headers-policy", "cache-policy")]),
        # The site's not-found page: Lambda@Edge in us-east-1 (deploy/not_found_function.py), its role, and
        # what CloudFront's association of a version needs ("Set up IAM permissions and roles for
        # Lambda@Edge": GetFunction, EnableReplication*, the replicator's service-linked role).
        _allow("StackNotFoundFunction", [
            "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
            "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:PublishVersion",
            "lambda:ListVersionsByFunction", "lambda:TagResource", "lambda:UntagResource",
            "lambda:EnableReplication*", "lambda:DisableReplication*"],
            ["arn:aws:lambda:us-east-1:${AccountId}:function:${AppName}-${Stage}-not-found",
             "arn:aws:lambda:us-east-1:${AccountId}:function:${AppName}-${Stage}-not-found:*"]),
        _allow("StackNotFoundRole", ROLE_ACTIONS, STAGE_ROLES),
        _allow("PassTheNotFoundRoleToLambda", ["iam:PassRole"], STAGE_ROLES,
               Condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
        _allow("LambdaEdgeReplicator", ["iam:CreateServiceLinkedRole"],
               "arn:aws:iam::${AccountId}:role/aws-service-role/replicator.lambda.amazonaws.com/"
               "AWSServiceRoleForLambdaReplicator",
               Condition={"StringEquals": {"iam:AWSServiceName": "replicator.lambda.amazonaws.com"}}),
        # Only with a custom domain; a certificate's id is generated, a zone is the stage's.
        _allow("StackCustomDomain", [
            "acm:RequestCertificate", "acm:DescribeCertificate", "acm:DeleteCertificate", "acm:AddTagsToCertificate",
            "acm:RemoveTagsFromCertificate", "acm:ListTagsForCertificate", "acm:UpdateCertificateOptions"],
            "arn:aws:acm:us-east-1:${AccountId}:certificate/*"),
        _allow("StackDnsRecords", ["route53:ChangeResourceRecordSets", "route53:GetHostedZone",
                                   "route53:ListResourceRecordSets"], "arn:aws:route53:::hostedzone/*"),
        _allow("StackDnsChanges", ["route53:GetChange", "route53:ListHostedZones"], "*"),
        _allow("StackAlarmTopic", [
            "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
            "sns:Unsubscribe", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes",
            "sns:SetSubscriptionAttributes", "sns:TagResource", "sns:UntagResource", "sns:ListTagsForResource"],
            "arn:aws:sns:${Region}:${AccountId}:${AppName}-${Stage}-alarms"),
        _allow("StackAlarmsAndDashboard", [
            "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
            "cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards",
            "cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource"],
            ["arn:aws:cloudwatch:${Region}:${AccountId}:alarm:${AppName}-${Stage}-*",
             "arn:aws:cloudwatch::${AccountId}:dashboard/${AppName}-${Stage}"]),
        # Only with waf_enabled, in us-east-1 (Scope CLOUDFRONT); the ACL's id is generated, its name the stage's.
        _allow("StackWebAcl", [
            "wafv2:CreateWebACL", "wafv2:GetWebACL", "wafv2:UpdateWebACL", "wafv2:DeleteWebACL",
            "wafv2:ListTagsForResource", "wafv2:TagResource", "wafv2:UntagResource"],
            ["arn:aws:wafv2:us-east-1:${AccountId}:global/webacl/${AppName}-${Stage}/*",
             "arn:aws:wafv2:us-east-1:*:global/managedruleset/*/*"]),
        _allow("StackBudget", [
            "budgets:ModifyBudget", "budgets:ViewBudget", "budgets:TagResource", "budgets:UntagResource",
            "budgets:ListTagsForResource"], "arn:aws:budgets::${AccountId}:budget/${AppName}-${Stage}-monthly"),
        _allow("StackBudgetBillingView", ["billing:GetBillingViewData"], "arn:aws:billing::${AccountId}:billingview/*"),
    ]


def app_statements() -> list[dict]:
    """What CloudFormation calls for the app stack's resources (after the SAM transform)."""
    return [
        _allow("AppRoles", ROLE_ACTIONS, APP_ROLES),
        _allow("PassOnlyTheAppRolesToLambda", ["iam:PassRole"], APP_ROLES,
               Condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
        # CodeDeploy's role of the traffic shift (deploy/app_template.py), to CodeDeploy only.
        _allow("PassTheShiftRoleToCodeDeploy", ["iam:PassRole"], "arn:aws:iam::${AccountId}:role/"
               "${AppName}-${Stage}-app-CodeDeployRole-*",
               Condition={"StringEquals": {"iam:PassedToService": "codedeploy.amazonaws.com"}}),
        # Functions, their versions and the alias `live` (function:<name>:<qualifier> matches the same pattern).
        _allow("AppFunctions", [
            "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration", "lambda:PutFunctionConcurrency", "lambda:TagResource",
            "lambda:UntagResource", "lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy",
            "lambda:PublishVersion", "lambda:ListVersionsByFunction", "lambda:GetFunctionConfiguration",
            "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias", "lambda:GetAlias"],
            FUNCTIONS),
        # Canary deploys: the application and group the SAM transform makes, and the deployment CloudFormation
        # starts when the alias changes (UpdatePolicy CodeDeployLambdaAliasUpdate), on AWS's Lambda configs.
        _allow("AppCanaryDeployments", [
            "codedeploy:CreateApplication", "codedeploy:DeleteApplication", "codedeploy:GetApplication",
            "codedeploy:CreateDeploymentGroup", "codedeploy:UpdateDeploymentGroup",
            "codedeploy:DeleteDeploymentGroup", "codedeploy:GetDeploymentGroup", "codedeploy:CreateDeployment",
            "codedeploy:GetDeployment", "codedeploy:StopDeployment", "codedeploy:ListDeployments",
            "codedeploy:RegisterApplicationRevision", "codedeploy:GetApplicationRevision",
            "codedeploy:GetDeploymentConfig", "codedeploy:TagResource", "codedeploy:UntagResource",
            "codedeploy:ListTagsForResource"],
            [f"{CODEDEPLOY}:application:${{AppName}}-${{Stage}}-app-*",
             f"{CODEDEPLOY}:deploymentgroup:${{AppName}}-${{Stage}}-app-*/*",
             f"{CODEDEPLOY}:deploymentconfig:CodeDeployDefault.Lambda*"]),
        # Logs Insights saved queries have no resource-level permissions.
        _allow("AppSavedQuery", ["logs:PutQueryDefinition", "logs:DeleteQueryDefinition",
                                 "logs:DescribeQueryDefinitions"], "*"),
        # A REST API's id is generated: API Gateway's resources cannot be named before they exist.
        _allow("AppRestApi", ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH",
                              "apigateway:DELETE"],
               ["arn:aws:apigateway:${Region}::/restapis", "arn:aws:apigateway:${Region}::/restapis/*"]),
        _allow("AppSchedulesAndRules", [
            "events:PutRule", "events:DescribeRule", "events:DeleteRule", "events:PutTargets", "events:RemoveTargets",
            "events:ListTargetsByRule", "events:TagResource", "events:UntagResource", "events:ListTagsForResource"],
            "arn:aws:events:${Region}:${AccountId}:rule/${AppName}-${Stage}-*"),
        _allow("AppLogGroups", [
            "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
            "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"], [LOG_GROUPS, ACCESS_LOGS]),
        _allow("DescribeLogGroups", ["logs:DescribeLogGroups"], "*"),
        # Lambda reads the code from the artifact bucket with the caller's credentials.
        _allow("AppCodeFromTheArtifacts", ["s3:GetObject", "s3:GetObjectVersion"],
               "arn:aws:s3:::${AppName}-artifacts-${Stage}-${AccountId}/*"),
    ]


MAX_POLICY_CHARS = 6144  # a managed policy's size limit, whitespace not counted


def policies() -> dict[str, dict]:
    """Three managed policies (one would exceed IAM's size limit): attach all three to the deployer."""
    return {name: {"Version": "2012-10-17", "Statement": found()} for name, found in (
        ("${AppName}-${Stage}-deployer", deploy_statements),
        ("${AppName}-${Stage}-deployer-app-stack", app_statements),
        ("${AppName}-${Stage}-deployer-stage-stack", stage_stack_statements))}


def render(text: str, values: dict[str, str]) -> str:
    for name in PLACEHOLDERS:
        text = text.replace("${" + name + "}", values[name])
    return text


def stage_values(stage: str, account: str, region: str) -> dict[str, str]:
    from chalice_app.config.stage_file import load_config, stage_environment

    env = stage_environment(stage)
    return {"AppName": load_config()["app_name"], "Stage": stage, "Region": region, "AccountId": account,
            "PredictionsBucket": env["PREDICTIONS_BUCKET"], "PredictionsPrefix": env.get("PREDICTIONS_PREFIX", "")}


def text() -> str:
    return json.dumps(policies(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.deployer_policy", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when deploy/deployer-policy.json is stale")
    p.add_argument("--stage", help="print the policy of this stage of .chalice/config.json")
    p.add_argument("--account", help="the AWS account id (12 digits), with --stage")
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                   help="the stage's region, with --stage (default: AWS_DEFAULT_REGION or us-east-1)")
    p.add_argument("--out", help="with --stage: write one file per policy into this folder "
                                 "(for `aws iam create-policy --policy-document file://...`) instead of printing")
    args = p.parse_args(argv)
    if args.stage:
        if not (args.account or "").isdigit() or len(args.account) != 12:
            p.error("--account must be the 12-digit account id")
        values = stage_values(args.stage, args.account, args.region)
        rendered = json.loads(render(text(), values))
        if not args.out:
            print(json.dumps(rendered, indent=2))
            return 0
        os.makedirs(args.out, exist_ok=True)
        for name, document in rendered.items():
            path = os.path.join(args.out, f"{name}.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2)
            print(f"wrote {path}: aws iam create-policy --policy-name {name} --policy-document file://{path}")
        return 0
    return write_or_check(POLICY_PATH, text(), "deploy.deployer_policy", check=args.check)


if __name__ == "__main__":
    sys.exit(main())
