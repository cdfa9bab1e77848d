"""Shard URLs: brace expansion and byte-range reads from local disk, S3-compatible
storage and http(s), with bounded retries.

S3 endpoint and credentials come from the standard AWS environment / config files
(``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID`` ...), read by
boto3 itself: nothing here stores, logs or returns them.
"""
from __future__ import annotations

import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import DataError, Problem, UserError

log = logging.getLogger("vattfw.data")
T = TypeVar("T")
_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}|\{([^{}]*,[^{}]*)\}")


class NotFound(Exception):
    """The object does not exist (never retried)."""


class StorageError(DataError):
    """Reading from storage kept failing after the configured retries."""


def expand(url: str) -> list[str]:
    """``shard-{000..002}.tar`` -> three URLs (zero padding kept); ``{a,b}`` alternatives too."""
    m = _BRACE.search(url)
    if not m:
        return [url]
    head, tail = url[:m.start()], url[m.end():]
    if m.group(3) is not None:
        options = m.group(3).split(",")
    else:
        lo, hi = m.group(1), m.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        step = 1 if int(hi) >= int(lo) else -1
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + step, step)]
    return [u for opt in options for u in expand(head + opt + tail)]


def scheme(url: str) -> str:
    if url.startswith("s3://"):
        return "s3"
    if url.startswith(("http://", "https://")):
        return "http"
    return "file"


def redact(url: str) -> str:
    """A URL safe to log: user:password@ and query strings (presigned tokens) removed."""
    url = re.sub(r"//[^/@]*@", "//", url)
    return url.split("?", 1)[0]


def _local_path(url: str) -> Path:
    return Path(url[len("file://"):] if url.startswith("file://") else url)


_S3 = None


def _s3():
    # One client per process (boto3 clients do not survive a fork) and per endpoint setting.
    global _S3
    ident = (os.getpid(), os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    if _S3 is None or _S3[0] != ident:
        import boto3
        from botocore.config import Config
        client = boto3.session.Session().client(
            "s3", config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                                read_timeout=60))
        _S3 = (ident, client)
    return _S3[1]


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def _read_once(url: str, start: int, end: int | None) -> bytes:
    kind = scheme(url)
    if kind == "file":
        path = _local_path(url)
        if not path.is_file():
            raise NotFound(url)
        with open(path, "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(end - start)
    rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
    if kind == "s3":
        from botocore.exceptions import ClientError
        bucket, key = _split_s3(url)
        try:
            if start == 0 and end is None:
                return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
            return _s3().get_object(Bucket=bucket, Key=key, Range=rng)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket", "InvalidRange"):
                raise NotFound(url) from None
            raise
    req = urllib.request.Request(url, headers={} if (start == 0 and end is None) else {"Range": rng})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read()
            if resp.status == 200 and (start or end is not None):  # server ignored Range
                data = data[start:end]
            return data
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410, 416):
            raise NotFound(url) from None
        raise


def with_retries(what: str, fn: Callable[[], T], retries: int, backoff_s: float) -> T:
    """Call ``fn``; on a transient failure retry ``retries`` times, doubling the delay."""
    delay = backoff_s
    for attempt in range(retries + 1):
        try:
            return fn()
        except NotFound:
            raise
        except Exception as exc:  # network, throttling, 5xx: all transient until proven otherwise
            if attempt == retries:
                raise StorageError(f"{what}: failed after {retries + 1} tries: "
                                   f"{type(exc).__name__}: {redact(str(exc))}") from None
            log.warning("%s: %s (try %d of %d, retrying in %.1f s)", what, type(exc).__name__,
                        attempt + 1, retries + 1, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def read_range(url: str, start: int = 0, end: int | None = None, retries: int = 5,
               backoff_s: float = 0.5) -> bytes:
    """Bytes [start, end) of the object at ``url`` (``end=None``: to its end)."""
    return with_retries(f"read {redact(url)}", lambda: _read_once(url, start, end), retries, backoff_s)


def exists(url: str, retries: int = 2, backoff_s: float = 0.2) -> bool:
    kind = scheme(url)
    if kind == "file":
        return _local_path(url).is_file()
    try:
        read_range(url, 0, 1, retries, backoff_s)
        return True
    except NotFound:
        return False


def require(url: str, what: str) -> None:
    """A user error naming ``url`` when it does not exist."""
    try:
        found = exists(url)
    except StorageError as exc:
        raise UserError(Problem(f"{what}: cannot reach {redact(url)}: {exc}")) from None
    if not found:
        raise UserError(Problem(f"{what}: {redact(url)} does not exist"))


def aws_environment() -> dict[str, str]:
    """The AWS settings of this process, to hand to loader workers (a fork server's children
    would otherwise see the environment the fork server started with).  Kept out of reprs."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def apply_environment(env: dict[str, str]) -> None:
    for k in [k for k in os.environ if k.startswith("AWS_") and k not in env]:
        del os.environ[k]
    os.environ.update(env)


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole object (local path or s3://): used by the builder and tests."""
    if scheme(url) == "s3":
        bucket, key = _split_s3(url)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = _local_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
