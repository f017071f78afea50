"""Publishing the site of a stage against moto: bucket, OAC, distribution, uploads, invalidations."""

from __future__ import annotations

import json

import pytest
from botocore.awsrequest import AWSResponse

from deploy import site_config
from deploy.site_deploy import Clients, DeployError, api_domain, delete_site, load_state, publish_site

STAGE = "dev"
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"


class FakeHeadersPolicies:
    """moto answers 404 for response headers policies: emulate the four calls we make."""

    def __init__(self, client) -> None:
        self.policies: dict[str, dict] = {}
        self.calls: list[str] = []
        for op in ("Create", "Get", "Update", "Delete"):
            client.meta.events.register(f"before-call.cloudfront.{op}ResponseHeadersPolicy", getattr(self, op.lower()))
        client.meta.events.register("before-call.cloudfront.ListResponseHeadersPolicies", self.list)
        # before-call sees the serialized request; keep the API parameters for the fakes.
        client.meta.events.register("before-parameter-build.cloudfront", self._stash)

    @staticmethod
    def _stash(params, context, **_):
        context["api_params"] = dict(params)

    @staticmethod
    def _ok(parsed: dict):
        return AWSResponse("https://cloudfront", 200, {}, None), parsed

    def list(self, **_):
        items = [{"Type": "custom", "ResponseHeadersPolicy": {"Id": k, "ResponseHeadersPolicyConfig": v}}
                 for k, v in self.policies.items()]
        return self._ok({"ResponseHeadersPolicyList": {"Quantity": len(items), "Items": items}})

    def create(self, context, **_):
        params = context["api_params"]
        self.calls.append("create")
        policy_id = f"rhp-{len(self.policies) + 1}"
        self.policies[policy_id] = params["ResponseHeadersPolicyConfig"]
        return self._ok({"ResponseHeadersPolicy": {"Id": policy_id}, "ETag": "E1"})

    def get(self, context, **_):
        params = context["api_params"]
        return self._ok({"ResponseHeadersPolicy": {"Id": params["Id"]}, "ETag": "E1"})

    def update(self, context, **_):
        params = context["api_params"]
        self.calls.append("update")
        self.policies[params["Id"]] = params["ResponseHeadersPolicyConfig"]
        return self._ok({"ETag": "E2"})

    def delete(self, context, **_):
        params = context["api_params"]
        self.calls.append("delete")
        del self.policies[params["Id"]]
        return self._ok({})


class Recorder:
    """Every write call a client sends, with its parameters."""

    WRITES = ("Create", "Put", "Update", "Delete")

    def __init__(self, *clients) -> None:
        self.calls: list[tuple[str, dict]] = []
        for client in clients:
            client.meta.events.register("before-parameter-build", self.record)

    def record(self, model, params, **_):
        if model.name.startswith(self.WRITES):
            self.calls.append((model.name, params))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, name: str) -> dict:
        return next(p for n, p in self.calls if n == name)

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def deployed(tmp_path):
    folder = tmp_path / "deployed"
    folder.mkdir()
    (folder / f"{STAGE}.json").write_text(json.dumps({"resources": [
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123", "rest_api_url": API_URL}]}))
    return folder


@pytest.fixture
def site(tmp_path):
    out = tmp_path / "site"
    files = {"index.html": "<h1>latest</h1>", "d/2026-11-22.html": "<h1>22</h1>", "404.html": "nope",
             "assets/site.0123456789ab.css": "body{}", "assets/site.0123456789ab.js": "1;", "manifest.json": "{}"}
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return out


@pytest.fixture
def aws(s3):
    import boto3

    clients = Clients(s3, boto3.client("cloudfront", region_name="us-east-1"), boto3.client("sts"))
    FakeHeadersPolicies(clients.cloudfront)
    return clients


@pytest.fixture
def recorder(aws):
    return Recorder(aws.s3, aws.cloudfront)


def publish(aws, site, deployed, **kw):
    return publish_site(STAGE, str(site), clients=aws, deployed_dir=str(deployed), progress=lambda m: None, **kw)


def test_missing_api_deployment_is_one_clear_line(tmp_path):
    with pytest.raises(DeployError, match=r"run `chalice deploy --stage dev` first"):
        api_domain(STAGE, str(tmp_path))


def test_api_domain_comes_from_chalice_record(deployed):
    assert api_domain(STAGE, str(deployed)) == "abc123.execute-api.eu-west-1.amazonaws.com"


def test_bucket_is_private_encrypted_and_not_a_website(aws, site, deployed):
    report = publish(aws, site, deployed)
    block = aws.s3.get_public_access_block(Bucket=report.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = aws.s3.get_bucket_encryption(Bucket=report.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    with pytest.raises(aws.s3.exceptions.ClientError):
        aws.s3.get_bucket_website(Bucket=report.bucket)


def test_bucket_policy_lets_only_this_distribution_read(aws, site, deployed):
    report = publish(aws, site, deployed)
    policy = json.loads(aws.s3.get_bucket_policy(Bucket=report.bucket)["Policy"])
    [statement] = policy["Statement"]
    state = load_state(STAGE, str(deployed))
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == f"arn:aws:s3:::{report.bucket}/*"
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceArn": state["distribution_arn"]}}


def test_distribution_routes_site_to_s3_through_oac_and_api_to_api_gateway(aws, site, deployed, recorder):
    publish(aws, site, deployed)
    config = recorder.params("CreateDistribution")["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]["Items"]}
    oac_id = aws.cloudfront.list_origin_access_controls()["OriginAccessControlList"]["Items"][0]["Id"]
    assert origins["site-bucket"]["OriginAccessControlId"] == oac_id
    assert origins["site-bucket"]["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert origins["api-gateway"]["DomainName"] == "abc123.execute-api.eu-west-1.amazonaws.com"
    assert origins["api-gateway"]["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert config["DefaultRootObject"] == "index.html"
    default = config["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == "site-bucket"
    assert default["ViewerProtocolPolicy"] == "redirect-to-https" and default["Compress"] is True
    [api] = config["CacheBehaviors"]["Items"]
    assert api["PathPattern"] == "/api/*" and api["TargetOriginId"] == "api-gateway"
    assert api["CachePolicyId"] == site_config.USE_ORIGIN_CACHE_CONTROL_QUERY_STRINGS
    assert api["OriginRequestPolicyId"] == site_config.ALL_VIEWER_EXCEPT_HOST_HEADER
    assert api["ViewerProtocolPolicy"] == "redirect-to-https" and api["Compress"] is True
    assert default["ResponseHeadersPolicyId"] == api["ResponseHeadersPolicyId"] == "rhp-1"


def test_oac_signs_every_request_to_s3(aws, site, deployed):
    publish(aws, site, deployed)
    [item] = aws.cloudfront.list_origin_access_controls()["OriginAccessControlList"]["Items"]
    assert (item["SigningBehavior"], item["SigningProtocol"], item["OriginAccessControlOriginType"]) == (
        "always", "sigv4", "s3")


def test_headers_policy_sets_hsts_csp_nosniff_frames_and_referrer(aws, site, deployed, recorder):
    from chalice_app.website.serving import CONTENT_SECURITY_POLICY

    publish(aws, site, deployed)
    headers = recorder.params("CreateResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["ContentSecurityPolicy"]["ContentSecurityPolicy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"


def test_cloudfront_sends_every_header_the_local_edge_sends(aws, site, deployed, recorder):
    """The site is tested through the local edge: CloudFront must add the same headers."""
    from chalice_app.website.serving import SECURITY_HEADERS

    publish(aws, site, deployed)
    config = recorder.params("CreateResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    security = config["SecurityHeadersConfig"]
    hsts = security["StrictTransportSecurity"]
    sent = {
        "Content-Security-Policy": security["ContentSecurityPolicy"]["ContentSecurityPolicy"],
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": security["FrameOptions"]["FrameOption"],
        "Referrer-Policy": security["ReferrerPolicy"]["ReferrerPolicy"],
        "Strict-Transport-Security": f"max-age={hsts['AccessControlMaxAgeSec']}"
                                     + ("; includeSubDomains" if hsts["IncludeSubdomains"] else ""),
        **{h["Header"]: h["Value"] for h in config["CustomHeadersConfig"]["Items"]},
    }
    assert sent == SECURITY_HEADERS


def test_uploads_carry_type_and_cache_headers(aws, site, deployed):
    report = publish(aws, site, deployed)
    html = aws.s3.head_object(Bucket=report.bucket, Key="index.html")
    css = aws.s3.head_object(Bucket=report.bucket, Key="assets/site.0123456789ab.css")
    assert html["ContentType"] == "text/html; charset=utf-8"
    assert html["CacheControl"] == "no-cache"
    assert css["ContentType"] == "text/css; charset=utf-8"
    assert css["CacheControl"] == "public, max-age=31536000, immutable"


def test_second_run_with_nothing_changed_writes_nothing(aws, site, deployed, recorder):
    publish(aws, site, deployed)
    recorder.clear()
    report = publish(aws, site, deployed)
    assert recorder.names() == []
    assert report.plan.uploads == [] and report.invalidation_id is None


def test_only_changed_files_are_uploaded_and_only_changed_html_invalidated(aws, site, deployed, recorder):
    publish(aws, site, deployed)
    recorder.clear()
    (site / "d" / "2026-11-22.html").write_text("<h1>changed</h1>")
    (site / "assets" / "site.fedcba987654.css").write_text("body{color:red}")
    report = publish(aws, site, deployed)
    uploaded = [p["Key"] for n, p in recorder.calls if n == "PutObject"]
    assert uploaded == ["assets/site.fedcba987654.css", "d/2026-11-22.html"]
    paths = recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"]
    assert paths == ["/d/2026-11-22.html"]
    assert report.invalidation_id


def test_files_no_longer_built_are_deleted_and_their_html_invalidated(aws, site, deployed, recorder):
    report = publish(aws, site, deployed)
    recorder.clear()
    (site / "d" / "2026-11-22.html").unlink()
    (site / "assets" / "site.0123456789ab.js").unlink()
    publish(aws, site, deployed)
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=report.bucket)["Contents"]}
    assert "d/2026-11-22.html" not in keys and "assets/site.0123456789ab.js" not in keys
    assert recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"] == ["/d/2026-11-22.html"]


def test_changed_index_invalidates_the_root_too(aws, site, deployed, recorder):
    publish(aws, site, deployed)
    (site / "index.html").write_text("<h1>new</h1>")
    recorder.clear()
    publish(aws, site, deployed)
    assert recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"] == ["/", "/index.html"]


def test_dry_run_changes_nothing(aws, site, deployed, recorder):
    report = publish(aws, site, deployed, dry_run=True)
    assert recorder.names() == []
    assert len(report.plan.uploads) == 6
    assert load_state(STAGE, str(deployed)) == {}


def test_state_is_recorded_for_reruns_and_teardown(aws, site, deployed):
    report = publish(aws, site, deployed)
    state = load_state(STAGE, str(deployed))
    assert state["bucket"] == report.bucket
    assert state["distribution_id"] and state["domain"]
    assert report.url == f"https://{state['domain']}/"


def test_a_lost_record_adopts_the_stage_distribution_instead_of_making_another(aws, site, deployed, recorder):
    first = publish(aws, site, deployed)
    first_id = load_state(STAGE, str(deployed))["distribution_id"]
    (deployed / f"{STAGE}-site.json").unlink()
    recorder.clear()
    second = publish(aws, site, deployed)
    assert "CreateDistribution" not in recorder.names()
    assert load_state(STAGE, str(deployed))["distribution_id"] == first_id
    assert second.bucket == first.bucket and second.plan.uploads == []


def test_delete_site_tears_everything_down(aws, site, deployed):
    report = publish(aws, site, deployed)
    delete_site(STAGE, clients=aws, deployed_dir=str(deployed), progress=lambda m: None)
    assert report.bucket not in [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
    assert aws.cloudfront.list_distributions()["DistributionList"].get("Quantity", 0) == 0
    assert not aws.cloudfront.list_origin_access_controls()["OriginAccessControlList"].get("Items")
    assert load_state(STAGE, str(deployed)) == {}


def test_delete_site_without_a_record_is_a_clear_error(aws, deployed):
    with pytest.raises(DeployError, match="no site to delete"):
        delete_site(STAGE, clients=aws, deployed_dir=str(deployed))


# -- the command line: python build_site.py --stage S --publish -------------------------------


@pytest.fixture
def cli(aws, deployed, tmp_path, monkeypatch):
    from chalice_app.publishing.sample import make_batch, write_folder
    from deploy import site_deploy

    bucket_dir = tmp_path / "bucket"
    write_folder(str(bucket_dir), "predictions/", [make_batch("2026-11-22", 20), make_batch("2026-11-23", 20)])
    monkeypatch.setattr(site_deploy, "DEPLOYED_DIR", str(deployed))
    monkeypatch.setattr(site_deploy.Clients, "create", classmethod(lambda cls: aws))

    def run(*args: str) -> int:
        import build_site

        return build_site.main(["--stage", STAGE, "--source", str(bucket_dir), "--out", str(tmp_path / "out"),
                                *args])

    return run


def test_cli_publish_builds_uploads_and_prints_the_url(cli, aws, capsys):
    assert cli("--publish") == 0
    out = capsys.readouterr().out
    assert "site of stage dev published: https://" in out
    from deploy import site_deploy

    state = load_state(STAGE, site_deploy.DEPLOYED_DIR)
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=state["bucket"])["Contents"]}
    assert {"index.html", "404.html", "manifest.json"} <= keys


def test_cli_publish_twice_uploads_nothing_the_second_time(cli, aws, capsys):
    assert cli("--publish") == 0
    recorder = Recorder(aws.s3, aws.cloudfront)
    assert cli("--publish") == 0
    assert recorder.names() == []
    assert "0 to upload, 0 to delete" in capsys.readouterr().err


def test_cli_publish_without_chalice_deploy_is_one_line(cli, deployed, capsys):
    (deployed / f"{STAGE}.json").unlink()
    assert cli("--publish") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("build_site: error: ")
    assert err[0].endswith(f"{STAGE}.json not found: run `chalice deploy --stage dev` first, "
                           "so the site can route /api/* to the stage's API")


def test_cli_dry_run_changes_nothing(cli, aws, capsys):
    recorder = Recorder(aws.s3, aws.cloudfront)
    assert cli("--publish", "--dry-run") == 0
    assert recorder.names() == []
    assert "dry run:" in capsys.readouterr().err


def test_cli_delete_site(cli, aws):
    assert cli("--publish") == 0
    assert cli("--delete-site") == 0
    assert aws.cloudfront.list_distributions()["DistributionList"].get("Quantity", 0) == 0


def test_publish_names_the_values_the_site_function_must_have(aws, site, deployed):
    lines: list[str] = []
    report = publish_site(STAGE, str(site), clients=aws, deployed_dir=str(deployed), progress=lines.append)
    assert report.bucket == "example-predictions-site-dev"  # the site function's SITE_BUCKET (.chalice/config.json)
    dist_id = load_state(STAGE, str(deployed))["distribution_id"]
    assert f"warning: set SITE_DISTRIBUTION_ID={dist_id} in .chalice/config.json (lambda_functions.site)" in "\n".join(
        lines)
