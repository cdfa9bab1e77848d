"""The `vattfw data` commands and the spec -> build_loader path, as a user runs them."""
from __future__ import annotations

import json

import yaml

from vattfw.data.demo import COLOURS, MOTIONS, SHAPES, held_out


def test_build_and_inspect_from_the_command_line(cli, media_dir, tmp_path):
    out = tmp_path / "shards"
    r = cli("data", "build", str(media_dir), str(out), "--max-count", "4", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "10 samples in 3 shards" in r.stdout and "skipped 2" in r.stdout
    r = cli("data", "inspect", str(out / "shard-{000000..000002}.tar"), "--decode", "2")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["samples"] == 10 and report["modalities"]["audio"] == 10 and report["modalities"]["video"] == 8
    assert report["with_captions"] == 4 and len(report["decoded"]) == 2
    assert all("video" in d and "error" not in d for d in report["decoded"])
    r = cli("data", "inspect", str(tmp_path / "nothing-{0..1}.tar"))
    assert r.returncode == 2 and "nothing-0.tar, " in r.stderr


def test_a_manifest_builds_the_same_kind_of_shards(media_dir, tmp_path):
    from vattfw.data.builder import build
    manifest = tmp_path / "m.jsonl"
    rows = [{"path": str(media_dir / "clip01.mp4"), "captions": ["one", "two"], "label": "dog"},
            {"video": str(media_dir / "clip02.mp4"), "audio": str(media_dir / "sounds" / "tone0.flac"),
             "key": "pair", "labels": [1, 2]}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = build(str(manifest), str(tmp_path / "out"), progress=False, workers=1)
    assert index["samples"] == 2 and index["classes"] == ["dog"]


def test_spec_datasource_to_batches(shard_dir, tmp_path):
    import vattfw
    from vattfw.data import build_loader
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({
        "data": {"sources": [{"name": "webdataset", "urls": str(shard_dir / "shard-{000000..000003}.tar"),
                              "weight": 1, "require": ["video"]}],
                 "num_workers": 0, "video": {"frames": 4, "fps": 4, "size": 32}, "audio": {"sample_rate": 8000}},
        "train": {"global_batch_size": 8, "grad_accumulation": 2}}))
    spec = vattfw.load_spec(spec_file)
    loader = build_loader(spec, process_index=1, process_count=2)
    batch = next(iter(loader))
    assert batch["video"].shape == (2, 4, 32, 32, 3)  # 8 / 2 accumulation / 2 hosts
    assert "s3" not in repr(loader) and loader.skipped()["undecodable"] == 0


def test_demo_holds_out_triples_but_no_single_attribute():
    triples = [(s, c, m) for s in range(len(SHAPES)) for c in range(len(COLOURS)) for m in range(len(MOTIONS))]
    test = [t for t in triples if held_out(*t)]
    train = [t for t in triples if not held_out(*t)]
    assert len(test) == 32
    for axis in range(3):
        assert {t[axis] for t in train} == {t[axis] for t in triples}
