"""Publishing the site of a stage against moto: the files into the stack's bucket, targeted invalidations,
and --delete-site (every version out of both buckets, then the stack).

The stack is created from deploy/stack.json by moto's CloudFormation (buckets with versioning); moto skips
the distribution, so its outputs are stood in for by a distribution made with deploy/site_config.py
(tests/test_stack_template.py checks the two agree) — a recorded stub of what AWS's outputs would say.
"""

from __future__ import annotations

import pytest

from deploy import site_config, stack
from deploy.site_deploy import Clients, DeployError, delete_site, publish_site

STAGE = "dev"
# moto's CloudFormation warns once per resource type it skips (shared/MOTO.md): expected here.
pytestmark = [pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
              pytest.mark.slow]  # moto in every test: not in make test-fast


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
def site(tmp_path):
    out = tmp_path / "site"
    files = {"index.html": "<h1>latest</h1>", "d/2026-11-22.html": "<h1>22</h1>", "404.html": "nope",
             "assets/site.0123456789ab.css": "body{}", "assets/site.0123456789ab.js": "1;", "manifest.json": "{}"}
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return out


@pytest.fixture
def aws(s3, monkeypatch):
    import boto3

    clients = Clients(s3, boto3.client("cloudfront", region_name="us-east-1"),
                      boto3.client("cloudformation", region_name="us-east-1"))
    params = stack.parameters(STAGE, "us-east-1", deployed_dir="/nonexistent")
    stack.deploy_stack(clients.cloudformation, STAGE, params, progress=lambda m: None, delay=0)
    config = site_config.distribution_config(
        stage=STAGE, caller_reference="r", bucket_domain="b.s3.amazonaws.com", oac_id="",
        api_domain="abc123.execute-api.us-east-1.amazonaws.com", headers_policy_id="hp")
    dist = clients.cloudfront.create_distribution(DistributionConfig=config)["Distribution"]
    resources = clients.cloudformation.list_stack_resources(StackName=stack.stack_name(STAGE))
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources["StackResourceSummaries"]}
    outputs = {"SiteBucketName": physical["SiteBucket"], "LogBucketName": physical["LogBucket"],
               "DistributionId": dist["Id"], "SiteUrl": f"https://{dist['DomainName']}/"}
    # Measured with moto 5.2.5: its CloudFormation leaves VersioningConfiguration out; AWS applies it.
    for bucket in (physical["SiteBucket"], physical["LogBucket"]):
        clients.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setattr(stack, "outputs_of", lambda found: dict(outputs) if found else {})
    clients.outputs = outputs
    return clients


@pytest.fixture
def recorder(aws):
    return Recorder(aws.s3, aws.cloudfront)


def publish(aws, site, **kw):
    return publish_site(STAGE, str(site), clients=aws, progress=lambda m: None, **kw)


def test_the_site_goes_to_the_stacks_versioned_bucket(aws, site):
    report = publish(aws, site)
    assert report.bucket == "predictions-site-dev-123456789012"
    assert report.url == aws.outputs["SiteUrl"]


def test_first_publish_uploads_everything_and_invalidates_the_html(aws, site, recorder):
    report = publish(aws, site)
    assert len(report.plan.uploads) == 6
    assert "/index.html" in recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"]


def test_without_the_stack_publishing_is_one_clear_error(s3):
    import boto3

    clients = Clients(s3, boto3.client("cloudfront", region_name="us-east-1"),
                      boto3.client("cloudformation", region_name="us-east-1"))
    with pytest.raises(DeployError, match=r"stack predictions-dev-site not found: run `python -m deploy.stack"):
        publish(clients, "unused")


def test_uploads_carry_type_and_cache_headers(aws, site):
    report = publish(aws, site)
    html = aws.s3.head_object(Bucket=report.bucket, Key="index.html")
    css = aws.s3.head_object(Bucket=report.bucket, Key="assets/site.0123456789ab.css")
    assert html["ContentType"] == "text/html; charset=utf-8"
    assert html["CacheControl"] == "public, max-age=0, s-maxage=86400"
    assert css["ContentType"] == "text/css; charset=utf-8"
    assert css["CacheControl"] == "public, max-age=31536000, immutable"


def test_second_run_with_nothing_changed_writes_nothing(aws, site, recorder):
    publish(aws, site)
    recorder.clear()
    report = publish(aws, site)
    assert recorder.names() == []
    assert report.plan.uploads == [] and report.invalidation_id is None


def test_only_changed_files_are_uploaded_and_only_changed_html_invalidated(aws, site, recorder):
    publish(aws, site)
    recorder.clear()
    (site / "d" / "2026-11-22.html").write_text("<h1>changed</h1>")
    (site / "assets" / "site.fedcba987654.css").write_text("body{color:red}")
    report = publish(aws, site)
    uploaded = [p["Key"] for n, p in recorder.calls if n == "PutObject"]
    assert uploaded == ["assets/site.fedcba987654.css", "d/2026-11-22.html"]
    paths = recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"]
    assert paths == ["/d/2026-11-22.html"]
    assert report.invalidation_id


def test_files_no_longer_built_are_deleted_and_their_html_invalidated(aws, site, recorder):
    report = publish(aws, site)
    recorder.clear()
    (site / "d" / "2026-11-22.html").unlink()
    (site / "assets" / "site.0123456789ab.js").unlink()
    publish(aws, site)
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=report.bucket)["Contents"]}
    assert "d/2026-11-22.html" not in keys and "assets/site.0123456789ab.js" not in keys
    assert recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"] == ["/d/2026-11-22.html"]


def test_changed_index_invalidates_the_root_too(aws, site, recorder):
    publish(aws, site)
    (site / "index.html").write_text("<h1>new</h1>")
    recorder.clear()
    publish(aws, site)
    assert recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"] == ["/", "/index.html"]


def test_dry_run_changes_nothing(aws, site, recorder):
    report = publish(aws, site, dry_run=True)
    assert recorder.names() == []
    assert len(report.plan.uploads) == 6


def test_delete_site_empties_every_version_of_both_buckets_then_deletes_the_stack(aws, site):
    publish(aws, site)
    (site / "index.html").write_text("<h1>v2</h1>")
    publish(aws, site)  # a second version of index.html
    bucket = aws.outputs["SiteBucketName"]
    assert len(aws.s3.list_object_versions(Bucket=bucket)["Versions"]) == 7
    aws.s3.put_object(Bucket=aws.outputs["LogBucketName"], Key="cloudfront/x.gz", Body=b"log")
    plan = delete_site(STAGE, clients=aws, progress=lambda m: None, delay=0)
    assert plan[-1] == "stack predictions-dev-site"
    names = {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}
    assert bucket not in names and aws.outputs["LogBucketName"] not in names
    assert "predictions-local" in names  # the predictions bucket is never touched
    with pytest.raises(DeployError, match="not found: nothing to delete"):
        delete_site(STAGE, clients=aws, progress=lambda m: None, delay=0)


def test_delete_site_dry_run_deletes_nothing(aws, site):
    publish(aws, site)
    plan = delete_site(STAGE, clients=aws, dry_run=True, progress=lambda m: None)
    assert plan == [f"every object version in bucket {aws.outputs['SiteBucketName']}",
                    f"every object version in bucket {aws.outputs['LogBucketName']}", "stack predictions-dev-site"]
    assert aws.s3.head_bucket(Bucket=aws.outputs["SiteBucketName"])


# -- the command line: python build_site.py --stage S --publish -------------------------------


@pytest.fixture
def cli(aws, tmp_path, monkeypatch):
    from chalice_app.publishing.sample import make_batch, write_folder
    from deploy import site_deploy

    bucket_dir = tmp_path / "bucket"
    write_folder(str(bucket_dir), "predictions/", [make_batch("2026-11-22", 20), make_batch("2026-11-23", 20)])
    monkeypatch.setattr(site_deploy.Clients, "create", classmethod(lambda cls: aws))

    def run(*args: str) -> int:
        import build_site

        return build_site.main(["--stage", STAGE, "--source", str(bucket_dir), "--out", str(tmp_path / "out"),
                                *args])

    return run


def test_cli_publish_builds_uploads_and_prints_the_url(cli, aws, capsys):
    assert cli("--publish") == 0
    assert f"site of stage dev published: {aws.outputs['SiteUrl']}" in capsys.readouterr().out
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.outputs["SiteBucketName"])["Contents"]}
    assert {"index.html", "404.html", "manifest.json"} <= keys


def test_cli_publish_twice_uploads_nothing_the_second_time(cli, aws, capsys):
    assert cli("--publish") == 0
    recorder = Recorder(aws.s3, aws.cloudfront)
    assert cli("--publish") == 0
    assert recorder.names() == []
    assert "0 to upload, 0 to delete" in capsys.readouterr().err


def test_cli_publish_without_the_stack_is_one_line(cli, aws, capsys, monkeypatch):
    monkeypatch.setattr(stack, "stack_name", lambda stage, app_name="predictions": "missing-stack")
    assert cli("--publish") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_site: error: stack missing-stack not found")


def test_cli_dry_run_changes_nothing(cli, aws, capsys):
    recorder = Recorder(aws.s3, aws.cloudfront)
    assert cli("--publish", "--dry-run") == 0
    assert recorder.names() == []
    assert "dry run:" in capsys.readouterr().err


def test_cli_delete_site(cli, aws, monkeypatch):
    monkeypatch.setattr(stack.time, "sleep", lambda s: None)
    assert cli("--publish") == 0
    assert cli("--delete-site") == 0
    assert aws.cloudformation.describe_stacks()["Stacks"] == [] or all(
        s["StackStatus"] == "DELETE_COMPLETE" for s in aws.cloudformation.describe_stacks()["Stacks"])


def test_a_new_manifest_invalidates_the_api_answers_too(aws, site, recorder):
    """The API's answers are kept at the edge until the next publish (docs/api.md): a site whose batches
    changed (a new manifest.json) invalidates them all, one path; a change of a page alone does not."""
    publish(aws, site)
    assert "/api/*" in recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"]
    recorder.clear()
    (site / "manifest.json").write_text('{"latest": "2026-11-23"}')
    publish(aws, site)
    assert recorder.params("CreateInvalidation")["InvalidationBatch"]["Paths"]["Items"] == ["/manifest.json",
                                                                                            "/api/*"]
