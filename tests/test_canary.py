"""Canary deploys: the alias, CodeDeploy's traffic shift and its alarms, the pre-traffic hook, the throttle.

The merge template is read as data (fast); the packaged, SAM-transformed template of a stage proves that
what reaches CloudFormation routes API Gateway to the alias (slow: one chalice package per stage); the hook
runs against the real Chalice app in-process, with moto's S3.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types

import pytest
from botocore.stub import ANY, Stubber

from chalice_app import canary
from chalice_app.config.stage_file import StageError, load_config
from deploy import app_stack, app_template

from helpers import PROJECT_DIR

CONFIG = load_config(os.path.join(PROJECT_DIR, ".chalice", "config.json"))
SHARED = ("dev", "prod")


def merged(stage: str) -> dict:
    return app_stack.merge_template(stage, "predictions", app_stack.stage_functions(stage, CONFIG), CONFIG)


# -- the merge template -----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", SHARED)
def test_the_api_function_is_published_behind_the_alias_live_with_the_stage_traffic_shift(stage):
    api = merged(stage)["Resources"]["APIHandler"]["Properties"]
    assert api["AutoPublishAlias"] == "live"
    preference = api["DeploymentPreference"]
    assert preference["Type"] == CONFIG["stages"][stage]["deployment"]["traffic_shifting"]
    assert preference["Hooks"] == {"PreTraffic": {"Ref": "PreTraffic"}}
    assert preference["Role"] == {"Fn::GetAtt": ["CodeDeployRole", "Arn"]}


def test_the_default_traffic_shift_is_ten_percent_for_five_minutes():
    assert app_template.app_settings("x", {}).traffic_shifting == "Canary10Percent5Minutes"


@pytest.mark.parametrize("stage", SHARED)
def test_codedeploy_watches_alarms_that_can_fire_within_the_canary(stage):
    resources = merged(stage)["Resources"]
    alarms = [resources[ref["Ref"]]["Properties"] for ref in
              resources["APIHandler"]["Properties"]["DeploymentPreference"]["Alarms"]]
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms}
    assert watched == {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency"), ("AWS/Lambda", "Errors")}
    # One-minute periods, at most three of them: the canary lasts five minutes.
    assert all(a["Period"] == 60 and a["EvaluationPeriods"] <= 3 for a in alarms)
    new_version = next(a for a in alarms if a["MetricName"] == "Errors")
    assert {"Name": "Resource", "Value": f"predictions-{stage}:live"} in new_version["Dimensions"]


@pytest.mark.parametrize("stage", SHARED)
def test_codedeploy_may_shift_only_this_stage_alias_and_call_only_its_hook(stage):
    statements = merged(stage)["Resources"]["CodeDeployRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]
    resources = json.dumps([s["Resource"] for s in statements])
    assert "*\"" not in resources.replace(":*\"", "") and f"function:predictions-{stage}" in resources
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig",
                       "lambda:InvokeFunction", "cloudwatch:DescribeAlarms"}


def test_every_route_of_the_app_is_integrated_with_the_alias():
    from app import app

    paths = merged("prod")["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert {(p, m.lower()) for p, ms in app.routes.items() for m in ms} == {
        (p, m) for p, ms in paths.items() for m in ms}
    assert all(e["x-amazon-apigateway-integration"]["uri"] == app_template.alias_uri()
               for ms in paths.values() for e in ms.values())


@pytest.mark.parametrize("stage", ["local", *SHARED])
def test_the_stage_throttle_comes_from_the_stage_settings(stage):
    throttle = CONFIG["stages"][stage]["api_throttle"]
    settings = merged(stage)["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert settings == [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": throttle["rate_limit"],
                         "ThrottlingBurstLimit": throttle["burst_limit"]}]


@pytest.mark.parametrize("stage", SHARED)
def test_the_warmer_warms_the_alias_and_may_invoke_nothing_else(stage):
    warmer = CONFIG["stages"][stage]["lambda_functions"]["warmer"]
    merged_env = merged(stage)["Resources"]["Warmer"]["Properties"]["Environment"]["Variables"]
    assert merged_env == {"WARM_TARGET_FUNCTION": f"predictions-{stage}:live"}
    # config.json keeps the bare name: `chalice deploy --stage S` (a developer's own stage) has no alias.
    assert warmer["environment_variables"]["WARM_TARGET_FUNCTION"] == f"predictions-{stage}"
    with open(os.path.join(PROJECT_DIR, ".chalice", warmer["iam_policy_file"])) as fh:
        policy = json.load(fh)
    invoke = [s for s in policy["Statement"] if "lambda:InvokeFunction" in s["Action"]]
    assert [s["Resource"] for s in invoke] == [[f"arn:aws:lambda:*:*:function:predictions-{stage}",
                                                f"arn:aws:lambda:*:*:function:predictions-{stage}:live"]]


@pytest.mark.parametrize("stage", SHARED)
def test_every_function_gets_a_log_group_with_the_stage_retention_and_chalice_makes_none(stage):
    resources = merged(stage)["Resources"]
    days = CONFIG["stages"][stage]["log_retention_days"]
    groups = {r["Properties"]["LogGroupName"]: r["Properties"]["RetentionInDays"]
              for r in resources.values() if r.get("Type") == "AWS::Logs::LogGroup"}
    names = {f"/aws/lambda/predictions-{stage}{suffix}" for suffix in ("", "-warmer", "-site", "-pretraffic")}
    assert groups == {**dict.fromkeys(names, days), f"/aws/apigateway/predictions-{stage}-access": days}
    # Chalice's own log_retention_in_days makes a template whose API log group refers to nothing.
    assert "log_retention_in_days" not in json.dumps(CONFIG)


def test_the_access_log_is_one_json_object_per_request_with_the_request_id():
    rest = merged("prod")["Resources"]["RestAPI"]["Properties"]
    fields = json.loads(rest["AccessLogSetting"]["Format"])
    assert fields["requestId"] == "$context.requestId" and fields["status"] == "$context.status"
    assert rest["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def test_the_saved_query_sorts_the_api_requests_by_latency():
    query = merged("prod")["Resources"]["SlowestRequestsQuery"]["Properties"]
    assert query["LogGroupNames"] == ["/aws/lambda/predictions-prod"]
    assert "sort LatencyMs desc" in query["QueryString"] and "request_metrics" in query["QueryString"]


def test_the_local_stage_has_no_hook_and_no_traffic_shift():
    resources = merged("local")["Resources"]
    assert "PreTraffic" not in resources and "DeploymentPreference" not in resources["APIHandler"]["Properties"]


@pytest.mark.parametrize(("section", "named"), [
    ({"deployment": {"traffic_shifting": "Canary50Percent"}}, "deployment.traffic_shifting"),
    ({"deployment": {"trafic_shifting": "AllAtOnce"}}, "unknown keys ['trafic_shifting']"),
    ({"api_throttle": {"rate_limit": 0}}, "api_throttle.rate_limit"),
    ({"api_throttle": {"burst_limit": 2.5}}, "api_throttle.burst_limit"),
    ({"api_throttle": {"burst_limit": True}}, "api_throttle.burst_limit"),
    ({"api_throttle": "fast"}, "api_throttle must be an object"),
    ({"log_retention_days": 10}, "log_retention_days=10"),
    ({"api_access_logs": "yes"}, "api_access_logs"),
    ({"deployment": {"p99_latency_ms": 60000}}, "deployment.p99_latency_ms"),
])
def test_a_wrong_stage_setting_stops_the_package_naming_it(section, named):
    with pytest.raises(StageError, match="stage prod: .*" if "unknown" not in named else "unknown keys") as err:
        app_template.app_settings("prod", section)
    assert named in str(err.value)


def test_a_template_that_reaches_the_function_past_the_alias_is_refused():
    from app import app

    template = {"Resources": {
        "APIHandler": {"Properties": {"AutoPublishAlias": "live"}},
        "APIHandlerInvokePermission": {"Properties": {"FunctionName": {"Ref": "APIHandler"}}},
        "RestAPI": {"Properties": {"DefinitionBody": {"paths": app_template.route_paths(app.routes)}}}}}
    template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]["/health"]["get"][
        "x-amazon-apigateway-integration"]["uri"] = {"Fn::Sub": "...functions/${APIHandler.Arn}/invocations"}
    problems = app_template.check_alias(template)
    assert len(problems) == 2
    assert problems[0].startswith("GET /health: integration") and "APIHandlerInvokePermission" in problems[1]


# -- the packaged template, as CloudFormation's SAM transform leaves it -------------------------------

@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """dev and prod packaged as `make deploy` packages them (merge template included), then transformed."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the transform's pseudo parameters want one
        for stage in SHARED:
            template, _ = app_stack.package(stage, "predictions", CONFIG, PROJECT_DIR, run=_package)
            lint = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"),
                                   os.path.join(PROJECT_DIR, "build", f"package-{stage}", "sam.json")],
                                  capture_output=True, text=True, timeout=300)
            found[stage] = (transform(app_stack.with_code_uri(template, "artifacts", "app/code.zip"), {},
                                      NoManagedPolicies()), lint)
    return found


def _package(args, project_dir):
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([sys.executable, "-m", "deploy.chalice_cli", *args], cwd=project_dir, env=env,
                          capture_output=True, timeout=600).returncode


def of_type(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.mark.slow
@pytest.mark.parametrize("stage", SHARED)
def test_api_gateway_invokes_the_alias_not_latest_in_the_deployed_swagger(transformed, stage):
    template, _ = transformed[stage]
    (alias_id, alias), = of_type(template, "AWS::Lambda::Alias").items()
    assert alias["Properties"]["Name"] == "live"
    (api,) = of_type(template, "AWS::ApiGateway::RestApi").values()
    uris = [e["x-amazon-apigateway-integration"]["uri"] for ms in api["Properties"]["Body"]["paths"].values()
            for e in ms.values()]
    assert len(uris) == 5 and all(json.dumps(u).count(f'{{"Ref": "{alias_id}"}}') == 1 for u in uris)
    assert "APIHandler.Arn" not in json.dumps(api)
    permission = template["Resources"]["APIHandlerInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": alias_id}


@pytest.mark.slow
@pytest.mark.parametrize("stage", SHARED)
def test_codedeploy_shifts_the_alias_with_the_hook_and_rolls_back_on_alarms(transformed, stage):
    template, _ = transformed[stage]
    (group,) = of_type(template, "AWS::CodeDeploy::DeploymentGroup").values()
    props = group["Properties"]
    shifting = CONFIG["stages"][stage]["deployment"]["traffic_shifting"]
    assert props["DeploymentConfigName"] == {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}",
                                                         {"ConfigName": shifting}]}
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert set(props["AutoRollbackConfiguration"]["Events"]) >= {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"}
    assert len(props["AlarmConfiguration"]["Alarms"]) == 3
    (alias,) = of_type(template, "AWS::Lambda::Alias").values()
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": "PreTraffic"}
    hook_env = template["Resources"]["PreTraffic"]["Properties"]["Environment"]["Variables"]
    (version_id,) = of_type(template, "AWS::Lambda::Version")
    assert hook_env["TARGET_FUNCTION"] == f"predictions-{stage}"
    assert hook_env["TARGET_VERSION"] == {"Fn::GetAtt": [version_id, "Version"]}
    assert template["Resources"]["PreTraffic"]["Properties"]["FunctionName"] == f"predictions-{stage}-pretraffic"
    warmer_env = template["Resources"]["Warmer"]["Properties"]["Environment"]["Variables"]
    assert warmer_env["WARM_TARGET_FUNCTION"] == f"predictions-{stage}:live"
    assert warmer_env["WARMER_CONCURRENCY"]  # the merge adds the alias, the rest of the environment stays


@pytest.mark.slow
@pytest.mark.parametrize("stage", SHARED)
def test_the_stage_throttle_and_access_log_are_on_the_api_stage(transformed, stage):
    template, _ = transformed[stage]
    (api_stage,) = of_type(template, "AWS::ApiGateway::Stage").values()
    throttle = CONFIG["stages"][stage]["api_throttle"]
    (setting,) = api_stage["Properties"]["MethodSettings"]
    assert (setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]) == (
        throttle["rate_limit"], throttle["burst_limit"])
    assert api_stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage", SHARED)
def test_cfn_lint_passes_the_packaged_template(transformed, stage):
    _, lint = transformed[stage]
    assert lint.returncode == 0, lint.stdout + lint.stderr


# -- the pre-traffic hook ---------------------------------------------------------------------------

@pytest.fixture
def version(s3, local_env):
    """The app as a new version would run it: the Lambda handler called with API Gateway's proxy events."""
    from app import app

    def invoke(event):
        context = types.SimpleNamespace(aws_request_id="hook-test", function_name="predictions-local",
                                        memory_limit_in_mb=128, invoked_function_arn="arn", log_group_name="g",
                                        log_stream_name="s", get_remaining_time_in_millis=lambda: 10000)
        return app(event, context)

    return invoke


def test_a_healthy_version_passes_health_and_one_real_batch_read(version, put_batch):
    put_batch("2026-11-20", n=3)
    assert canary.check_version(version) == []


def test_a_stage_with_no_batch_yet_passes(version):
    assert canary.check_version(version) == []


def test_a_version_that_cannot_read_its_batch_fails(version, put_batch, monkeypatch):
    put_batch("2026-11-20", n=3)
    monkeypatch.setenv("PREDICTIONS_BUCKET", "no-such-bucket")
    failures = canary.check_version(version)
    assert len(failures) == 1 and failures[0].startswith("GET /predictions/latest: status 503")


def test_a_version_that_crashes_fails_with_the_reason():
    def crashing(event):
        raise RuntimeError("ImportError: No module named 'zlib_ng'")

    failures = canary.check_version(crashing)
    assert len(failures) == 2 and all("did not answer" in f and "zlib_ng" in f for f in failures)


def test_the_proxy_event_routes_through_chalice_like_api_gateway(version, put_batch):
    put_batch("2026-11-20", n=3)
    answer = version(canary.proxy_event("/predictions/{date}", {"date": "latest"}, {"limit": "1"}, {}))
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200 and body["date"] == "2026-11-20" and len(body["items"]) == 1


def _lambda_answering(statuses: list[int]):
    import boto3

    client = boto3.client("lambda", region_name="us-east-1")
    stub = Stubber(client)
    bodies = [{"status": "ok"}, {"date": "2026-11-20", "items": [{"id": "a"}]}]
    for status, body in zip(statuses, bodies, strict=True):
        payload = {"statusCode": status, "headers": {},
                   "body": json.dumps(body if status == 200 else {"error": {"code": "internal_error"}})}
        stub.add_response("invoke", {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(payload).encode())},
                          {"FunctionName": "predictions-prod", "Qualifier": "7",
                           "InvocationType": "RequestResponse", "Payload": ANY})
    stub.activate()
    return client


def _codedeploy_expecting(status: str):
    import boto3

    client = boto3.client("codedeploy", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "h-1"},
                      {"deploymentId": "d-1", "lifecycleEventHookExecutionId": "h-1", "status": status})
    stub.activate()
    return client, stub


@pytest.mark.parametrize(("statuses", "verdict"), [([200, 200], "Succeeded"), ([200, 500], "Failed")])
def test_the_hook_reports_its_verdict_to_codedeploy(statuses, verdict, capsys):
    codedeploy, stub = _codedeploy_expecting(verdict)
    env = {"TARGET_FUNCTION": "predictions-prod", "TARGET_VERSION": "7"}
    result = canary.run({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"}, env,
                        _lambda_answering(statuses), codedeploy)
    stub.assert_no_pending_responses()
    assert result["status"] == verdict
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "pre_traffic_hook" and line["status"] == verdict and line["version"] == "7"


def test_the_hook_without_its_target_fails_the_deployment():
    codedeploy, stub = _codedeploy_expecting("Failed")
    result = canary.run({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"}, {}, None, codedeploy)
    stub.assert_no_pending_responses()
    assert result["failures"] == ["TARGET_FUNCTION and TARGET_VERSION must be set (deploy/app_template.py sets them)"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", SHARED)
def test_the_deployer_policy_knows_every_resource_type_of_the_canary_stack(transformed, stage):
    from test_deployer_policy import APP_TYPES

    template, _ = transformed[stage]
    assert {r["Type"] for r in template["Resources"].values()} <= APP_TYPES


def test_the_hook_sends_the_origin_header_a_locked_version_requires(version, put_batch, origin_check_on):
    import boto3

    put_batch("2026-11-20", n=3)
    parameter = os.environ["ORIGIN_SECRET_PARAMETER"]  # the local stage's, from local_env
    boto3.client("ssm", region_name="us-east-1").put_parameter(Name=parameter, Value="new-secret,old-secret",
                                                               Type="SecureString")
    headers = canary.origin_headers(os.environ)
    assert headers == {"X-Origin-Verify": "new-secret"}  # what CloudFront sends now
    assert canary.check_version(version, headers) == []
    refused = canary.check_version(version)  # a version called without it refuses, as the execute-api URL does
    assert len(refused) == 2 and all("status 403" in f for f in refused)
