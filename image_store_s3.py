"""Images in an S3-compatible object store (IMAGE_STORAGE=s3), through boto3.

One object per upload, `<S3_PREFIX><stored name>` in S3_BUCKET (stored names are unique: they end
in the upload's id). Credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, a profile, an instance role); S3_ENDPOINT_URL names a store other than AWS
(MinIO, Ceph, ...). Tested against moto's server: no S3 service runs here.
"""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

MISSING = {"404", "NoSuchKey", "NotFound"}
# Few retries, short timeouts: an upload waits for the store inside its request.
CLIENT_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class S3Images:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG)

    def key(self, stored_name: str) -> str:
        return f"{self.prefix}{stored_name}"

    def put_file(self, path: Any, stored_name: str, bucket: str | None = None) -> None:
        with open(path, "rb") as handle:
            self.client.put_object(Bucket=bucket or self.bucket, Key=self.key(stored_name), Body=handle)

    def put_bytes(self, data: bytes, stored_name: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(stored_name), Body=data)

    def get(self, stored_name: str, bucket: str | None = None) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        return answer["Body"].read()

    def exists(self, stored_name: str, bucket: str | None = None) -> bool:
        try:
            self.client.head_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return False
            raise
        return True

    def delete(self, stored_name: str, bucket: str | None = None) -> None:
        # Deleting a missing object is not an error in S3: doing it twice is harmless.
        self.client.delete_object(Bucket=bucket or self.bucket, Key=self.key(stored_name))
