"""Abuse and cost protection in the stage stack's template (deploy/stack.json), read statically
(docs/protection.md): the origin secret goes to the API origin only and is never shown, the web ACL is off
by default and complete when on, the budget notifies a topic AWS Budgets may publish to."""

from __future__ import annotations

import json

import pytest

from chalice_app.api import origin
from deploy import stack, stack_template
from tools.cloudfront import _Context, load_distribution

TEMPLATE = json.loads(open(stack_template.TEMPLATE_PATH, encoding="utf-8").read())
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
SECRET = "s" * 43
API_DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"


def condition(name: str, region: str = "us-east-1", **params: str) -> bool:
    ctx = _Context(TEMPLATE, {"Stage": "prod", **params})
    ctx.params["AWS::Region"] = region
    return ctx.condition(name, "test")


# -- the origin secret ---------------------------------------------------------------------------

def test_the_secret_is_a_noecho_parameter_without_a_value_of_its_own():
    spec = PARAMETERS["OriginSecret"]
    assert spec["NoEcho"] is True and spec["Default"] == ""
    assert "OriginSecret" not in json.dumps(TEMPLATE["Outputs"])  # never shown


def test_cloudfront_sends_it_to_the_api_origin_and_never_to_the_bucket():
    dist = load_distribution(TEMPLATE, {"Stage": "prod", "ApiDomain": API_DOMAIN, "OriginSecret": SECRET})
    api = dist.behavior_for("/api/predictions").origin
    site = dist.behavior_for("/index.html").origin
    assert api.custom_headers == ((origin.HEADER, SECRET),)
    assert site.is_s3 and site.custom_headers == ()
    # Without a value (a template read by hand) there is no header at all, never an empty one.
    bare = load_distribution(TEMPLATE, {"Stage": "prod", "ApiDomain": API_DOMAIN})
    assert bare.behavior_for("/api/predictions").origin.custom_headers == ()


def test_every_deploy_passes_the_secret(monkeypatch):
    monkeypatch.setattr(stack, "api_domain", lambda *a, **k: API_DOMAIN)
    monkeypatch.setattr(stack, "origin_secret_value", lambda stage, region, **_: f"{stage}-secret-0123456789")
    values = stack.parameters("prod", "us-east-1", cfn=object())
    assert values["OriginSecret"] == "prod-secret-0123456789"
    assert set(values) <= set(PARAMETERS)


# -- the web ACL -----------------------------------------------------------------------------------

def test_the_web_acl_is_off_by_default_and_only_in_us_east_1():
    assert PARAMETERS["WafEnabled"]["Default"] == "false"
    assert RESOURCES["WebAcl"]["Condition"] == "WafOn"
    assert condition("WafOn") is False
    assert condition("WafOn", WafEnabled="true") is True
    assert condition("WafOn", "eu-west-1", WafEnabled="true") is False  # Scope CLOUDFRONT: us-east-1 only
    assert TEMPLATE["Outputs"]["WebAclArn"]["Condition"] == "WafOn"
    config = RESOURCES["Distribution"]["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == {"Fn::If": ["WafOn", {"Fn::GetAtt": ["WebAcl", "Arn"]}, {"Ref": "AWS::NoValue"}]}


def test_no_stage_turns_it_on_unasked():
    settings = json.load(open(stack.STAGES_PATH, encoding="utf-8"))
    assert all(not entry.get("waf_enabled", False) for entry in settings.values())


def test_the_web_acl_limits_each_ip_and_drops_known_bad_addresses():
    acl = RESOURCES["WebAcl"]["Properties"]
    assert acl["Scope"] == "CLOUDFRONT" and acl["DefaultAction"] == {"Allow": {}}
    rate, reputation = sorted(acl["Rules"], key=lambda r: r["Priority"])
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"] == {"RateBasedStatement": {"Limit": {"Ref": "WafRateLimit"}, "AggregateKeyType": "IP",
                                                        "EvaluationWindowSec": 300}}
    assert PARAMETERS["WafRateLimit"]["Default"] == 1000 and PARAMETERS["WafRateLimit"]["MinValue"] == 10
    assert reputation["OverrideAction"] == {"None": {}}
    assert reputation["Statement"] == {"ManagedRuleGroupStatement": {
        "VendorName": "AWS", "Name": "AWSManagedRulesAmazonIpReputationList"}}
    for visible in (acl, rate, reputation):
        config = visible["VisibilityConfig"]
        assert config["CloudWatchMetricsEnabled"] is True and config["SampledRequestsEnabled"] is True
    names = [rate["VisibilityConfig"]["MetricName"], reputation["VisibilityConfig"]["MetricName"]]
    assert len(set(json.dumps(n) for n in names)) == 2


def test_the_checkov_suppression_says_the_acl_is_optional_and_what_it_costs():
    (waf,) = [s for s in RESOURCES["Distribution"]["Metadata"]["checkov"]["skip"] if s["id"] == "CKV_AWS_68"]
    for fact in ("optional", "waf_enabled", "$5", "$1 per rule", "$0.60 per million", "docs/protection.md"):
        assert fact in waf["comment"]


# -- the budget ------------------------------------------------------------------------------------

def test_a_monthly_cost_budget_notifies_the_alarm_topic():
    budget = RESOURCES["Budget"]
    assert "Condition" not in budget  # every stage, every region
    assert budget["DependsOn"] == "AlarmTopicPolicy"  # AWS Budgets checks it may publish when it is created
    spec = budget["Properties"]["Budget"]
    assert (spec["BudgetType"], spec["TimeUnit"]) == ("COST", "MONTHLY")
    assert spec["BudgetLimit"] == {"Amount": {"Ref": "MonthlyBudgetUsd"}, "Unit": "USD"}
    assert PARAMETERS["MonthlyBudgetUsd"]["Default"] == 25
    notes = {(n["Notification"]["NotificationType"], n["Notification"]["Threshold"]): n
             for n in budget["Properties"]["NotificationsWithSubscribers"]}
    assert set(notes) == {("ACTUAL", 80), ("FORECASTED", 100)}
    for note in notes.values():
        assert note["Notification"]["ThresholdType"] == "PERCENTAGE"
        assert note["Notification"]["ComparisonOperator"] == "GREATER_THAN"
        assert note["Subscribers"] == [{"SubscriptionType": "SNS", "Address": {"Ref": "AlarmTopic"}}]


def test_budgets_and_the_alarms_may_publish_to_the_topic_for_this_account_only():
    policy = RESOURCES["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    by_service = {s["Principal"]["Service"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(by_service) == {"budgets.amazonaws.com", "cloudwatch.amazonaws.com"}
    for statement in by_service.values():
        assert statement["Effect"] == "Allow" and statement["Action"] == "SNS:Publish"
        assert statement["Resource"] == {"Ref": "AlarmTopic"}
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "budgets::${AWS::AccountId}:" in by_service["budgets.amazonaws.com"]["Condition"]["ArnLike"][
        "aws:SourceArn"]["Fn::Sub"]


@pytest.mark.parametrize("key, value, expected", [
    ("waf_enabled", True, "true"), ("waf_enabled", False, "false"), ("waf_rate_limit", 500, "500"),
    ("monthly_budget_usd", 75, "75")])
def test_the_stage_settings_become_the_parameters(tmp_path, monkeypatch, key, value, expected):
    stages = tmp_path / "stages.json"
    stages.write_text(json.dumps({"prod": {key: value}}))
    monkeypatch.setattr(stack, "api_domain", lambda *a, **k: "")
    monkeypatch.setattr(stack, "origin_secret_value", lambda *a, **k: SECRET)
    values = stack.parameters("prod", "us-east-1", cfn=object(), stages_path=str(stages))
    assert values[stack.STAGE_PARAMETERS[key]] == expected
