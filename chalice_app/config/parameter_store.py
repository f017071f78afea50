"""Optional settings from Parameter Store: `CONFIG_SSM_PATH` names a path such as /predictions/prod/.

Read once per container. Parameters are named like the environment variables
(`/predictions/prod/POINTER_TTL_SECONDS`); unknown names are logged and ignored. A path that is
missing or cannot be read is one log line and the other sources, never a crash loop.
"""

from __future__ import annotations

from typing import Any

from chalice_app.config.settings import ENV_VARS
from chalice_app.logs import log_event


def normalize_path(path: str) -> str:
    return "/" + path.strip("/") + "/"


def read_parameters(client: Any, path: str) -> dict[str, str]:
    """Environment-variable-named values found under `path`; {} (and a log line) when unreadable."""
    path = normalize_path(path)
    found: dict[str, str] = {}
    try:
        kwargs = {"Path": path, "Recursive": False, "WithDecryption": False}
        while True:
            page = client.get_parameters_by_path(**kwargs)
            for parameter in page.get("Parameters", []):
                name = parameter["Name"][len(path):]
                if name in ENV_VARS:
                    found[name] = parameter["Value"]
                else:
                    log_event("ssm_parameter_ignored", path=path, name=name[:100],
                              reason="not a setting name (see docs/settings.md)")
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    except Exception as exc:  # noqa: BLE001 - any failure: defaults and one line, not a crash loop
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        log_event("ssm_settings_unavailable", path=path, code=code,
                  detail="using environment variables and defaults")
        return {}
    if not found:
        log_event("ssm_settings_empty", path=path, detail="no settings under this path")
    return found


def make_ssm_client(connect_timeout: float, read_timeout: float) -> Any:
    from botocore.config import Config

    from chalice_app.aws_clients import make_client

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"total_max_attempts": 2, "mode": "standard"})
    # The S3 client's lean model loader: a stock botocore client would add ~80 ms to a cold start.
    return make_client("ssm", config)
