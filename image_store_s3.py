"""Images in an S3-compatible object store (IMAGE_STORAGE=s3), through boto3.

One object per upload, `<S3_PREFIX><stored name>` in S3_BUCKET (stored names are unique: they end
in the upload's id). Credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, a profile, an instance role); S3_ENDPOINT_URL names a store other than AWS
(MinIO, Ceph, ...). Tested against moto's server: no S3 service runs here.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

MISSING = {"404", "NoSuchKey", "NotFound"}
# Few retries, short timeouts: an upload waits for the store inside its request.
CLIENT_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class StoreUnavailable(OSError):
    """The bucket could not be reached or refused the request: to the service, a failing disk
    (an upload answers 503 storage_unavailable, a worker round goes back with its attempts refunded)."""


@contextmanager
def _as_storage_error(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING:
            raise
        raise StoreUnavailable(f"S3 {action}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"S3 {action}: {exc}") from exc


class S3Images:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG)

    def key(self, stored_name: str) -> str:
        return f"{self.prefix}{stored_name}"

    def put_file(self, path: Any, stored_name: str, bucket: str | None = None) -> None:
        with open(path, "rb") as handle, _as_storage_error("put"):
            self.client.put_object(Bucket=bucket or self.bucket, Key=self.key(stored_name), Body=handle)

    def put_bytes(self, data: bytes, stored_name: str) -> None:
        with _as_storage_error("put"):
            self.client.put_object(Bucket=self.bucket, Key=self.key(stored_name), Body=data)

    def get(self, stored_name: str, bucket: str | None = None) -> bytes | None:
        try:
            with _as_storage_error("get"):
                return self.client.get_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))["Body"].read()
        except ClientError:  # only a missing object comes through as itself
            return None

    def exists(self, stored_name: str, bucket: str | None = None) -> bool:
        try:
            with _as_storage_error("head"):
                self.client.head_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))
        except ClientError:  # only a missing object comes through as itself
            return False
        return True

    def delete(self, stored_name: str, bucket: str | None = None) -> None:
        # Deleting a missing object is not an error in S3: doing it twice is harmless.
        with _as_storage_error("delete"):
            self.client.delete_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))
