"""Where lake objects go: S3 (aiobotocore) in service, or a local folder for the benchmark."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from railpulse_archiver.errors import LakeUnavailableError

__all__ = ["LocalStore", "ObjectStore", "S3Store"]


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def delete(self, key: str) -> None: ...


class S3Store:
    """One bucket through an open aiobotocore S3 client; failures become `LakeUnavailableError`."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def put(self, key: str, data: bytes) -> None:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise LakeUnavailableError(f"put s3://{self.bucket}/{key}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise LakeUnavailableError(f"get s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise LakeUnavailableError(f"get s3://{self.bucket}/{key}: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise LakeUnavailableError(f"delete s3://{self.bucket}/{key}: {exc}") from exc


class LocalStore:
    """A folder laid out like the bucket (benchmarks; DuckDB reads it with the same globs)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        await asyncio.to_thread(_write, path, data)

    async def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    async def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic like an S3 PUT: readers see the old object or the new one
