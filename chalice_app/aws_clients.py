"""The AWS clients of a container (S3 for batches, SSM for settings), configured to start fast.

botocore's defaults (60 s connect and read timeouts, several retries) would outlast API
Gateway's 29 s limit; a request that cannot reach S3 must turn into a 503 within a few seconds.
botocore is used directly: boto3's extra layer costs import time and buys the API nothing.
Importing botocore and creating its clients are most of a cold start, hence the lean data loader
below, shared by every client of the container (figures: docs/performance.md, `make bench`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from chalice_app.config.settings import Settings
from chalice_app.logs import log_event


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('NoSuchKey', '304', ...); '' for anything else."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# Every service this app makes a client for; the lean loader knows no other.
SERVICES = ("s3", "ssm")


@functools.cache
def _lean_loader_class() -> type:
    """botocore's data Loader, minus two costs that this app's clients do not need.

    - Before loading any model, the stock loader lists every service it knows (~400 listdir and
      ~900 stat calls, ~20 ms) only to check that the name asked for is one of them. A missing
      model still fails loudly (DataNotFoundError) when its version folder is looked up.
    - It parses its JSON files (endpoints.json alone is 1.2 MB) into OrderedDicts, which takes
      twice as long as plain dicts; dicts keep insertion order, and botocore only reads them.
    Built on first use so that importing this module does not import botocore.
    """
    import gzip
    import json

    from botocore.loaders import JSONFileLoader, Loader

    class PlainJSONFileLoader(JSONFileLoader):
        def load_file(self, file_path: str) -> Any:
            for ext in (".json", ".json.gz"):
                if os.path.isfile(file_path + ext):
                    with open(file_path + ext, "rb") as fh:
                        raw = fh.read()
                    # One call: faster than gzip.open's chunked reads.
                    return json.loads((gzip.decompress(raw) if ext == ".json.gz" else raw).decode("utf-8"))
            return None

    class LeanLoader(Loader):
        FILE_LOADER_CLASS = PlainJSONFileLoader

        def list_available_services(self, type_name: str) -> list[str]:
            return list(SERVICES)

    return LeanLoader


@functools.cache
def _lean_loader(data_path: str | None) -> Any:
    """One per container: its cache holds the parsed files, so a second client parses only its own
    model (endpoints.json and friends are shared). Same search path as botocore's create_loader."""
    loader_class = _lean_loader_class()
    if data_path is None:
        return loader_class()
    return loader_class(extra_search_paths=[os.path.expanduser(os.path.expandvars(p))
                                            for p in data_path.split(os.pathsep)])


def make_client(service: str, config: Any) -> Any:
    """A botocore client on its own session (sessions are not thread-safe) and the shared loader."""
    import botocore.session

    session = botocore.session.get_session()
    try:
        session.register_component("data_loader", _lean_loader(session.get_config_variable("data_path")))
        return session.create_client(service, config=config)
    except Exception as exc:  # noqa: BLE001 - a botocore this code does not know: lose speed, not service
        log_event("aws_client_fallback", service=service, error=type(exc).__name__, detail=str(exc)[:200])
        return botocore.session.get_session().create_client(service, config=config)


def make_s3_client(settings: Settings) -> Any:
    # Imported here so that routes which never touch S3 (health) don't pay for botocore at import.
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
        tcp_keepalive=True,
    )
    client = make_client("s3", config)
    # The XML botocore parses (listings, error answers) is refused with a DOCTYPE, as the
    # botocore-free client refuses it: S3 never sends one, and its entities could take hundreds of MB.
    client.meta.events.register_first("before-parse.s3", refuse_doctype)
    return client


def refuse_doctype(response_dict: dict | None = None, **_: Any) -> None:
    """botocore's before-parse hook: an XML answer with a DOCTYPE raises DoctypeRefused (not retried)."""
    from chalice_app.store.s3_http import DoctypeRefused, has_doctype

    body = (response_dict or {}).get("body")
    if isinstance(body, (bytes, bytearray)) and has_doctype(bytes(body)):
        raise DoctypeRefused("XML answer with a DOCTYPE")
