"""`vattfw data build` on images: ImageNet-style folders and labelled manifests -> image shards
(the encoded bytes kept), corrupt images reported, and finetune_image reading those shards."""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import vattfw
from vattfw.data.builder import build
from vattfw.data.inspect import inspect

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 60), "red": (210, 30, 30)}
MODEL = {
    "tokenizers": {"video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2]}},
    "backbones": {"video": {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 2,
                            "dropout": 0.0, "attention_dropout": 0.0}},
}


def _image(path, colour, w: int, h: int, seed: int) -> None:
    """A class colour plus noise, so a decoder difference would show in the pixels."""
    noise = np.random.default_rng(seed).integers(-25, 25, (h, w, 3))
    pixels = np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """train/{blue,green,red}/{0.jpg,1.PNG,2.jpeg} and test/{...}/{0.jpg,1.png}, sizes varying."""
    root = tmp_path_factory.mktemp("imagenet")
    for split, names in (("train", ["0.jpg", "1.PNG", "2.jpeg"]), ("test", ["0.jpg", "1.png"])):
        for c, (name, colour) in enumerate(COLOURS.items()):
            (root / split / name).mkdir(parents=True)
            for j, file in enumerate(names):
                _image(root / split / name / file, colour, 24 + 8 * j, 20 + 4 * c, seed=100 * c + j)
    return root


@pytest.fixture(scope="module")
def built(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    for split in ("train", "test"):
        build(str(images / split), str(out / split), max_count=4, workers=1, label_from_folder=True,
              progress=False)
    return out


def _samples(folder) -> dict[str, dict[str, bytes]]:
    found: dict[str, dict[str, bytes]] = {}
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                found.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return found


def test_folder_build_keeps_the_bytes_and_takes_classes_from_folders(images, built):
    index = json.loads((built / "train" / "index.json").read_text())
    assert index["samples"] == 9 and len(index["shards"]) == 3 and index["classes"] == sorted(COLOURS)
    assert json.loads((built / "train" / "classes.json").read_text()) == ["blue", "green", "red"]
    samples = _samples(built / "train")
    assert sorted(samples) == [f"{c}/{j}" for c in sorted(COLOURS) for j in range(3)]
    for key, members in samples.items():
        meta = json.loads(members["json"])
        image_ext = next(e for e in members if e != "json")
        source = images / "train" / meta["original"]
        assert members[image_ext] == source.read_bytes()  # stored as given, no re-encode
        assert image_ext == source.suffix.lower().lstrip(".")
        assert meta["label_name"] == key.split("/")[0] and meta["label"] == sorted(COLOURS).index(meta["label_name"])
        with Image.open(source) as im:
            assert (meta["width"], meta["height"]) == im.size and meta["modalities"] == ["image"]


def test_manifests_with_class_names_or_ids_give_the_same_labels(images, built, tmp_path):
    files = sorted((images / "train").rglob("*.*"))
    by_name = tmp_path / "names.csv"
    by_name.write_text("path,label\n" + "".join(f"train/{f.parent.name}/{f.name},{f.parent.name}\n" for f in files))
    by_id = tmp_path / "ids.jsonl"
    by_id.write_text("".join(json.dumps({"path": f"train/{f.parent.name}/{f.name}",
                                         "label": sorted(COLOURS).index(f.parent.name)}) + "\n" for f in files))
    (tmp_path / "train").symlink_to(images / "train")  # manifest paths are relative to the manifest
    labels = {}
    for manifest in (by_name, by_id):
        index = build(str(manifest), str(tmp_path / manifest.stem), workers=1, progress=False)
        assert index["samples"] == 9
        labels[manifest.stem] = {k: json.loads(m["json"])["label"] for k, m in _samples(tmp_path / manifest.stem).items()}
    folder = {k: json.loads(m["json"])["label"] for k, m in _samples(built / "train").items()}
    assert json.loads((tmp_path / "names" / "classes.json").read_text()) == sorted(COLOURS)
    assert not (tmp_path / "ids" / "classes.json").exists()  # ids alone name no classes
    assert labels["names"] == labels["ids"]
    assert {k.removeprefix("train/"): v for k, v in labels["names"].items()} == folder


def test_a_corrupt_image_is_skipped_and_reported(images, tmp_path):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    (src / "dog").mkdir()
    _image(src / "cat" / "a.jpg", (200, 100, 0), 16, 16, 1)
    _image(src / "dog" / "b.png", (0, 100, 200), 16, 16, 2)
    (src / "dog" / "broken.jpg").write_bytes((src / "cat" / "a.jpg").read_bytes()[:40])  # header only
    (src / "dog" / "empty.webp").write_bytes(b"")
    index = build(str(src), str(tmp_path / "out"), workers=1, label_from_folder=True, progress=False)
    assert index["samples"] == 2 and index["skipped"] == {"undecodable": 1, "empty": 1}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["built"] == 2
    assert {(s["path"], s["reason"]) for s in report["skipped"]} == {("dog/broken.jpg", "undecodable"),
                                                                     ("dog/empty.webp", "empty")}
    assert index["classes"] == ["cat", "dog"]  # a class keeps its id even if one of its images is bad


@pytest.mark.parametrize("rows, problem", [
    ('{"path": "a.png", "label": "cat"}\n{"path": "b.png"}\n', r"m\.jsonl:2: row 2 has no label"),
    ('{"path": "a.png", "label": "cat"}\n{"label": "dog"}\n', r"m\.jsonl:2: row 2 has no path"),
    ('{"path": "a.png", "label": "cat"}\n{"path": "nope.png", "label": "dog"}\n', r"m\.jsonl:2: row 2: no such file .*nope\.png"),
])
def test_a_bad_manifest_row_is_a_user_error_naming_file_and_row(tmp_path, rows, problem):
    _image(tmp_path / "a.png", (1, 2, 3), 8, 8, 0)
    (tmp_path / "m.jsonl").write_text(rows)
    with pytest.raises(vattfw.UserError, match=problem) as err:
        build(str(tmp_path / "m.jsonl"), str(tmp_path / "out"), workers=1, progress=False)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)


def test_bad_csv_row_from_the_command_line_is_one_line(cli, tmp_path):
    _image(tmp_path / "a.png", (1, 2, 3), 8, 8, 0)
    (tmp_path / "m.csv").write_text("path,label\na.png,cat\na.png,\n")
    r = cli("data", "build", str(tmp_path / "m.csv"), str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "m.csv:3: row 2 has no label" in r.stderr  # CSV line 3 = data row 2 (after the header)


def test_images_and_clips_in_one_folder_are_refused(tmp_path):
    _image(tmp_path / "a.jpg", (1, 2, 3), 8, 8, 0)
    (tmp_path / "b.mp4").write_bytes(b"\0" * 10)
    with pytest.raises(vattfw.UserError, match=r"mixes images \(.*a\.jpg\) and media clips \(.*b\.mp4\)"):
        build(str(tmp_path), str(tmp_path / "out"), workers=1, progress=False)


def test_inspect_shows_counts_classes_and_image_sizes(built):
    report = inspect([str(built / "train")], decode=2)  # the build folder itself is accepted
    assert report["samples"] == 9 and report["modalities"] == {"image": 9} and report["classes"] == 3
    assert report["labels"] == {"blue": 3, "green": 3, "red": 3}
    assert report["image_sizes"]["min"] == [24, 20] and report["image_sizes"]["max"] == [40, 28]
    assert len(report["decoded"]) == 2 and all(len(d["image"]) == 3 and "error" not in d for d in report["decoded"])


def _evaluator(train, test, steps: int = 4):
    return vattfw.build("evaluator", {"name": "finetune_image", "train": train, "test": test, "num_classes": 3,
                                      "size": 16, "steps": steps, "train_batch_size": 9, "workers": 0,
                                      "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})


def test_finetune_image_reads_shards_as_it_reads_the_folder(images, built):
    from vattfw.spec.loader import validate
    from vattfw_plugins.evaluators.finetune_image import _Images, open_split
    folder = _evaluator(str(images / "train"), str(images / "test"))
    pattern = str(built / "train" / "shard-{000000..000002}.tar")
    datasource = [{"name": "webdataset", "urls": pattern}]
    for train in (str(built / "train"), pattern, datasource):  # every shard shape: the same decoded inputs
        for is_train in (True, False):
            ref = _Images(open_split(folder.config.train, "train", "t"), folder.config, 2, is_train)
            got = _Images(open_split(_evaluator(train, "x").config.train, "train", "t"), folder.config, 2, is_train)
            assert len(got) == len(ref) == 9
            for i in range(len(ref)):
                (x0, y0, _), (x1, y1, _) = ref[i], got[i]
                assert y0 == y1 and torch.equal(x0, x1)
    spec = validate({"model": MODEL}, vattfw.default_host())
    results = []
    from vattfw.model import build_model
    for ev in (folder, _evaluator(str(built / "train"), str(built / "test"))):
        torch.manual_seed(0)
        results.append(ev.run(build_model(spec.model), spec))
    assert set(results[0]) == {"finetune_image/top1", "finetune_image/train_loss"}
    assert results[0] == results[1]  # same seed, same images, same order: the same run
