"""Training from s3:// URLs on a real moto S3 server (127.0.0.1): no S3 call is mocked."""
from __future__ import annotations

import pytest
import torch
from conftest import SMALL

import vattfw
from vattfw.data import make_loader
from vattfw.data.loader import Source
from vattfw.data.urls import StorageError

pytestmark = pytest.mark.server
PATTERN = "shard-{000000..000003}.tar"


def upload(client, shard_dir, bucket: str) -> None:
    client.create_bucket(Bucket=bucket)
    for path in sorted(shard_dir.iterdir()):
        client.put_object(Bucket=bucket, Key=f"clips/{path.name}", Body=path.read_bytes())


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def _same(a, b):
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_s3_batches_equal_local_batches(s3_server, shard_dir):
    upload(s3_server.client(), shard_dir, "train")
    local = _take(make_loader([Source((str(shard_dir / PATTERN),))], SMALL, batch_size=3, seed=2), 3)
    remote = _take(make_loader([Source((f"s3://train/clips/{PATTERN}",))], {**SMALL, "num_workers": 2},
                               batch_size=3, seed=2), 3)
    for a, b in zip(local, remote):
        _same(a, b)


def test_missing_url_is_an_error_at_start_naming_it(s3_server, shard_dir, tmp_path):
    s3_server.client().create_bucket(Bucket="empty")
    with pytest.raises(vattfw.UserError, match=r"shards s3://empty/nope-000000\.tar, s3://empty/nope-000001\.tar do not exist"):
        make_loader([Source(("s3://empty/nope-{000000..000001}.tar",))], SMALL, batch_size=2)
    with pytest.raises(vattfw.UserError, match="missing.tar does not exist"):
        make_loader([Source((str(tmp_path / "missing.tar"),))], SMALL, batch_size=2)


def test_store_outage_retries_then_fails_and_the_state_still_resumes(moto_s3, shard_dir):
    settings = {**SMALL, "io_retries": 2, "io_backoff_s": 0.05}
    src = Source(("s3://outage/clips/" + PATTERN,))
    expected = _take(make_loader([Source((str(shard_dir / PATTERN),))], SMALL, batch_size=3, seed=4), 6)

    server = moto_s3()
    upload(server.client(), shard_dir, "outage")
    loader = make_loader([src], settings, batch_size=3, seed=4)
    it = iter(loader)
    got = [next(it) for _ in range(2)]
    state = loader.state_dict()
    server.stop()
    with pytest.raises(StorageError, match="failed after 3 tries"):
        next(it)

    server = moto_s3()  # the store comes back (new endpoint, same bucket and keys)
    upload(server.client(), shard_dir, "outage")
    resumed = make_loader([src], {**settings, "num_workers": 1}, batch_size=3, seed=4)
    resumed.load_state_dict(state)
    got += _take(resumed, 4)
    for a, b in zip(expected, got):
        _same(a, b)


def test_http_urls_and_redacted_reprs(shard_dir):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shard_dir))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        remote = _take(make_loader([Source((f"{base}/{PATTERN}",))], SMALL, batch_size=2, seed=1), 1)[0]
        local = _take(make_loader([Source((str(shard_dir / PATTERN),))], SMALL, batch_size=2, seed=1), 1)[0]
        _same(local, remote)
    finally:
        server.shutdown()
    config = vattfw.build("datasource", {"name": "webdataset", "urls": "https://user:secret@host/x.tar?sig=abc"})
    assert "secret" not in repr(config) and "sig=" not in repr(config)
    from vattfw.data.urls import redact
    assert redact("https://user:secret@host/x.tar?sig=abc") == "https://host/x.tar"
    from vattfw_plugins.datasources.webdataset import Config
    cfg = Config(urls=["s3://key:secret@bucket/x.tar"])
    assert "secret" not in repr(cfg)
