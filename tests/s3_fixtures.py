"""A real S3-compatible server for the tests: OpenStack Swift with s3api (scripts/swift_s3.sh).

Import the fixtures into a test module (``from tests.s3_fixtures import s3_server, s3_env``);
the server starts once per test session and is stopped at its end. ``MLTRACK_TEST_S3_URL``
points the tests at an S3 endpoint that is already running (key/secret from the AWS variables).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a running S3-compatible server (started for this session)."""
    given = os.environ.get("MLTRACK_TEST_S3_URL")
    if given:
        yield given
        return
    root = tempfile.mkdtemp(prefix="mltrack-swift-", dir="/tmp")
    env = {**os.environ, "SWIFT_ROOT": root}
    script = str(ROOT / "scripts" / "swift_s3.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        subprocess.run([script, "stop"], env=env, capture_output=True)
        pytest.fail(
            "Could not start Swift (S3) for the artifact tests: "
            f"{started.stderr.strip()}\nRun scripts/install-system-deps.sh (apt-get) first."
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (and our S3 repository) at the test server; returns the endpoint."""
    from jupyter_mltrack.store import artifacts_s3

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_server)
    if not os.environ.get("MLTRACK_TEST_S3_URL"):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    artifacts_s3.forget_clients()
    yield s3_server
    artifacts_s3.forget_clients()


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the test server."""
    from jupyter_mltrack.store.artifacts_s3 import _client

    name = f"mltrack-{uuid.uuid4().hex[:12]}"
    _client().create_bucket(Bucket=name)
    return name
