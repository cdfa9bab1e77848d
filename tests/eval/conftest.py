"""A tiny real VATT model (1-layer encoders) for the evaluator tests."""
import pytest

TINY_MODEL = {
    "tokenizers": {
        "video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2]},
        "audio": {"name": "waveform", "patch": 32, "samples": 512},
        "text": {"name": "word_embedding", "vocab_size": 100, "dim": 16, "max_words": 4},
    },
    "backbones": {m: {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 2,
                      "agg_token": m != "text"}  # the text tokenizer adds its own
                  for m in ("video", "audio", "text")},
    "heads": {"fac": {"name": "fac", "d_va": 16, "d_vt": 8}},
}


@pytest.fixture
def tiny_model():
    import torch
    from vattfw.model import build_model
    torch.manual_seed(0)
    return build_model(TINY_MODEL).eval()


COLOURS = [("red", 0xD02020), ("green", 0x20C040), ("blue", 0x3030E0)]
SMALL_DATA = {"video": {"frames": 4, "fps": 4, "size": 16}, "audio": {"sample_rate": 2048},
              "num_workers": 0}


def _clip(path, rgb: int, freq: int | None) -> bytes:
    import subprocess
    sound = ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=8000:duration=2", "-c:a", "aac"] if freq else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x{rgb:06X}:size=32x32:rate=4:duration=2", *sound,
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1",
                    "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                    "-shortest", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture(scope="session")
def eval_media(tmp_path_factory):
    """Labelled, captioned clips in two shard sets (train: 9, test: 6): class = colour, and the
    sound's pitch and the caption follow it; and a set of 3 silent, caption-less clips (mute).  Returns (root, vocabulary path)."""
    import json
    from vattfw.data.shards import ShardWriter
    root = tmp_path_factory.mktemp("evalmedia")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["a", "red", "green", "blue", "clip", "number", "one", "two", "three"]) + "\n")
    for split, per_class in (("train", 3), ("test", 2)):
        writer = ShardWriter(root / split, max_count=4)
        for k, (name, rgb) in enumerate(COLOURS):
            for j in range(per_class):
                shade = rgb + 0x080808 * j if split == "train" else rgb + 0x040404 * (j + 1)
                data = _clip(root / f"{split}{k}{j}.mp4", shade, 300 * (k + 1) + 20 * j)
                meta = {"label": k, "captions": [f"a {name} clip number {['one', 'two', 'three'][j]}"],
                        "duration": 2.0, "modalities": ["video", "audio", "text"]}
                writer.add(f"{split}{k}{j}", {"mp4": data, "json": json.dumps(meta).encode()}, meta)
        writer.close()
    writer = ShardWriter(root / "mute", max_count=4)  # video only: no sound, no captions
    for k, (name, rgb) in enumerate(COLOURS):
        writer.add(f"mute{k}", {"mp4": _clip(root / f"mute{k}.mp4", rgb, None),
                                "json": json.dumps({"label": k}).encode()})
    writer.close()
    return root, vocab


@pytest.fixture
def eval_spec(eval_media):
    """A spec with the tiny model and the small data settings (the evaluators add their sources)."""
    import vattfw
    from vattfw.spec.loader import validate
    root, vocab = eval_media
    data = {**SMALL_DATA, "text": {"vocabulary": str(vocab), "max_words": 4, "candidates": 2}}
    return validate({"model": TINY_MODEL, "data": data}, vattfw.default_host()), root
