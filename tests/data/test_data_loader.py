"""The loader: fixed shapes, exact resume, worker-count independence, host split, mixing."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import SMALL

from vattfw.data import make_loader
from vattfw.data.loader import Source, batch_counts


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _src(shard_dir, **kw):
    return Source((str(shard_dir / "shard-{000000..000003}.tar"),), **kw)


def test_batches_have_the_contract_shapes(shard_dir):
    loader = make_loader([_src(shard_dir)], SMALL, batch_size=4, seed=1)
    b = _take(loader, 1)[0]
    assert b["video"].shape == (4, 4, 32, 32, 3) and b["video"].dtype == torch.float32
    assert b["audio"].shape == (4, 8000) and b["text"].shape == (4, 5, 16) and b["text"].dtype == torch.int64
    for k in ("text_mask", "audio_mask", "video_mask"):
        assert b[k].shape == (4,)
    assert b["video"].min() >= -1 and b["video"].max() <= 1 and b["audio"].abs().max() <= 1
    # A clip without captions gets zero ids and mask 0; one with captions gets ids and mask 1.
    for ids, m in zip(b["text"], b["text_mask"]):
        assert (ids.abs().sum() > 0) == (m == 1)


def test_resume_is_exact_and_worker_count_free(shard_dir):
    n, k = 7, 3
    full = _take(make_loader([_src(shard_dir)], {**SMALL, "num_workers": 2}, batch_size=3, seed=5), n)
    first = make_loader([_src(shard_dir)], SMALL, batch_size=3, seed=5)
    head = _take(first, k)
    state = json.loads(json.dumps(first.state_dict()))  # a checkpoint stores it as JSON
    resumed = make_loader([_src(shard_dir)], {**SMALL, "num_workers": 1}, batch_size=3, seed=5)
    resumed.load_state_dict(state)
    tail = _take(resumed, n - k)
    for a, b in zip(full, head + tail):
        _same(a, b)
    assert state["sources"][0]["position"] == 9 and state["batches"] == 3


def test_another_seed_gives_other_batches(shard_dir):
    a = _take(make_loader([_src(shard_dir)], SMALL, batch_size=3, seed=0), 1)[0]
    b = _take(make_loader([_src(shard_dir)], SMALL, batch_size=3, seed=1), 1)[0]
    assert not torch.equal(a["video"], b["video"])


def test_resume_refuses_changed_settings(shard_dir):
    import vattfw
    first = make_loader([_src(shard_dir)], SMALL, batch_size=3, seed=5)
    state = first.state_dict()
    other = make_loader([_src(shard_dir)], SMALL, batch_size=3, seed=6)
    with pytest.raises(vattfw.UserError, match="seed"):
        other.load_state_dict(state)


def test_hosts_read_their_rows_of_the_one_host_batches(shard_dir):
    # The global batch does not depend on the process count: host h of 2 reads rows
    # [2h, 2h+2) of what one host reads as a batch of 4 (and resumes onto another count).
    one = _take(make_loader([_src(shard_dir)], SMALL, batch_size=4, seed=3), 3)
    halves = [_take(make_loader([_src(shard_dir)], SMALL, batch_size=2, seed=3, process_index=h,
                                process_count=2), 3) for h in range(2)]
    for b in range(3):
        for k in ("video", "audio", "text"):
            assert torch.equal(torch.cat([halves[0][b][k], halves[1][b][k]]), one[b][k]), (b, k)
    state = json.loads(json.dumps(make_loader([_src(shard_dir)], SMALL, batch_size=4, seed=3).state_dict()))
    make_loader([_src(shard_dir)], SMALL, batch_size=2, seed=3, process_index=1, process_count=2).load_state_dict(state)


def test_weights_fix_the_share_of_every_batch():
    assert batch_counts([1, 1], 8) == [4, 4]
    assert batch_counts([1, 1], 7) == [4, 3]
    assert batch_counts([3, 1], 8) == [6, 2]
    assert sum(batch_counts([0.2, 0.3, 0.5], 11)) == 11


def test_mixed_sources_take_a_fixed_count(shard_dir):
    video = _src(shard_dir, require=("video",))
    audio_only = Source((str(shard_dir / "shard-{000000..000003}.tar"),), require=("audio",), weight=1.0)
    loader = make_loader([video, audio_only], SMALL, batch_size=4, seed=0)
    b = _take(loader, 2)[1]
    assert b["video"].shape[0] == 4
    assert loader.maker.counts == [2, 2]


def test_eval_split_is_finite_and_equal_per_host(shard_dir):
    seen, lengths = [], set()
    for host in range(3):
        loader = make_loader([_src(shard_dir, require=("audio",))], {**SMALL, "eval": {"clips": 1, "crops": 1}},
                             batch_size=2,
                             split="eval", process_index=host, process_count=3)  # 4 + 4 + 2 clips
        lengths.add(len(loader))
        for batch in loader:
            seen += [int(s) for s, v in zip(batch["sample"], batch["valid"]) if v == 1]
    assert lengths == {2} and sorted(seen) == list(range(10))
