"""The one S3 client of a container, configured to fail fast.

botocore's defaults (60 s connect and read timeouts, several retries) would outlast API
Gateway's 29 s limit; a request that cannot reach S3 must turn into a 503 within a few seconds.
botocore is used directly: boto3's extra layer costs import time and buys the API nothing.
"""

from __future__ import annotations

from typing import Any

from chalice_app.settings import Settings


def make_s3_client(settings: Settings) -> Any:
    # Imported here so that routes which never touch S3 (health) don't pay for botocore at import.
    import botocore.session
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
        tcp_keepalive=True,
    )
    return botocore.session.get_session().create_client("s3", config=config)
