"""finetune_image: images become clips (repeated over the temporal patch) through the unchanged
video branch; an image folder (one sub-folder per class) or a manifest; learns a toy task."""
import subprocess

import pytest
import torch

import vattfw
from vattfw.spec.loader import validate
from vattfw_plugins.evaluators.finetune_image import Config, list_images, transform

MODEL = {
    "tokenizers": {"video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2]}},
    "backbones": {"video": {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 2,
                            "dropout": 0.0, "attention_dropout": 0.0}},
}
COLOURS = {"red": "0xD02020", "green": "0x20C040", "blue": "0x3030E0"}


def _png(path, colour: str, w: int, h: int) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={colour}:size={w}x{h}",
                    "-frames:v", "1", str(path)], check=True)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for split, n in (("train", 3), ("test", 2)):
        for name, colour in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                _png(root / split / name / f"{j}.png", colour, 40 + 8 * j, 30 + 4 * j)
    return root


def test_folder_and_manifest_give_the_same_classes(image_folder, tmp_path):
    paths, ids, classes = list_images(str(image_folder / "train"), "t")
    assert classes == ["blue", "green", "red"] and len(paths) == 9 and sorted(set(ids)) == [0, 1, 2]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{p.split('/')[-2]}\n" for p in paths))
    m_paths, m_ids, m_classes = list_images(str(manifest), "t")
    assert m_classes == classes and m_ids == ids


def test_an_image_becomes_a_clip_repeated_over_the_temporal_patch():
    cfg = Config(train="x", test="y", num_classes=2, size=16)
    img = torch.arange(24 * 32 * 3, dtype=torch.float32).reshape(24, 32, 3).remainder(256).to(torch.uint8)
    clip = transform(img, cfg, frames=4)
    assert clip.shape == (4, 16, 16, 3) and clip.min() >= -1 and clip.max() <= 1
    assert all(torch.equal(clip[0], clip[t]) for t in range(4))
    import numpy as np
    train_clip = transform(img, cfg, frames=2, rng=np.random.default_rng(0))
    assert train_clip.shape == (2, 16, 16, 3) and torch.equal(train_clip[0], train_clip[1])


@pytest.mark.xla  # trained by the engine's Trainer (XLA on the CPU)
def test_fine_tunes_a_tiny_model_on_colour_classes(image_folder):
    from vattfw.model import build_model
    spec = validate({"model": MODEL}, vattfw.default_host())
    torch.manual_seed(0)
    model = build_model(spec.model)
    ev = vattfw.build("evaluator", {"name": "finetune_image", "train": str(image_folder / "train"),
                                    "test": str(image_folder / "test"), "num_classes": 3, "size": 16,
                                    "steps": 15, "train_batch_size": 9, "workers": 0,
                                    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})
    out = ev.run(model, spec)
    assert out["finetune_image/top1"] == 1.0, out  # colour is trivially separable
    assert set(out) == {"finetune_image/top1", "finetune_image/train_loss"}  # top5 > classes: not reported


def test_missing_video_branch_is_a_user_error(image_folder):
    spec = validate({"model": {"tokenizers": {"audio": {"name": "waveform"}}}}, vattfw.default_host())
    ev = vattfw.build("evaluator", {"name": "finetune_image", "train": str(image_folder / "train"),
                                    "test": str(image_folder / "test"), "num_classes": 3})
    with pytest.raises(vattfw.UserError, match="no voxel video tokenizer"):
        ev.run(None, spec)


def test_the_shipped_imagenet_spec_validates_with_every_source_shape():
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "specs" / "finetune" / "imagenet.yaml"
    spec = vattfw.load_spec(path)
    ev = spec.eval.evaluators[0].config
    assert ev.train == "/data/imagenet-shards/train"  # a `vattfw data build` output folder
    shards = [{"name": "webdataset", "urls": "s3://b/in1k/val/shard-{000000..000049}.tar"}]
    spec = vattfw.load_spec(path, [f"eval.evaluators.0.test={shards}"])
    assert spec.eval.evaluators[0].config.test[0].config.urls == [shards[0]["urls"]]
