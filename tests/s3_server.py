"""A real S3-compatible server on loopback for the backup tests: moto's server in a
subprocess (one per test process), with signatures checked.

The server starts with authentication on after three free actions, which create an IAM
user, its access key and a policy that lets it do anything in S3: every later request
must be signed with that key, so a wrong secret or an unknown key is refused as AWS
would refuse it. The test process's AWS configuration points at files that do not exist
and its AWS variables are cleared, so nothing reads the real ``~/.aws``.

``s3_server`` is re-exported by ``tests/conftest.py``, where pytest finds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures import free_port

from latentspace.backup_settings import BackupSettings

REGION = "us-east-1"
# moto's server, in a process that ends with the test process however that ends (killed
# by a timeout, say): it watches its parent and stops when the parent is gone.
_SERVE = """
import os, sys, time
from moto.server import ThreadedMotoServer
parent = os.getppid()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
while os.getppid() == parent:
    time.sleep(0.5)
server.stop()
"""
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    """Where the server answers and the one key it accepts."""

    endpoint: str
    access_key_id: str
    secret_access_key: str

    def settings(self, **overrides: Any) -> BackupSettings:
        """Backup settings that reach this server with its key."""
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region": REGION,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "addressing_style": "path",
        }
        return BackupSettings(**{**values, **overrides})

    def client(self) -> Any:
        """A boto3 S3 client of this server, signed with its key."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def new_bucket(self) -> str:
        """A new, empty bucket of its own (tests share the server, never a bucket)."""
        name = f"ls-{uuid.uuid4().hex[:24]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix``, sorted."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes."""
        with self.client().get_object(Bucket=bucket, Key=key)["Body"] as body:
            return bytes(body.read())

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Store ``data`` as an object."""
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


def _started(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    # The server on a free port, answering (a port taken meanwhile: another one).
    for _ in range(3):
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            command = [sys.executable, "-c", _SERVE, str(port)]
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as answer:
                    if answer.status == 200:
                        return process, endpoint
            except OSError:
                time.sleep(0.1)
        _stop(process)
    raise RuntimeError(f"the moto server did not start:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for this test process, stopped at its end."""
    import boto3

    home = tmp_path_factory.mktemp("aws")
    isolated = {
        "AWS_CONFIG_FILE": str(home / "config"),  # neither file exists
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-role probe either
    }
    log = home / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(isolated, INITIAL_NO_AUTH_ACTION_COUNT="3")
    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in isolated.items():
            patch.setenv(name, value)
        process, endpoint = _started(env, log)
        try:
            # the three actions before authentication starts: a user, its key, its policy
            iam = boto3.session.Session().client(
                "iam",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="setup",
                aws_secret_access_key="setup",
            )
            iam.create_user(UserName="backups")
            key = iam.create_access_key(UserName="backups")["AccessKey"]
            iam.put_user_policy(
                UserName="backups", PolicyName="s3", PolicyDocument=json.dumps(_ALLOW_S3)
            )
            yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        finally:
            _stop(process)
