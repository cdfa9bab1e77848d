"""`extends`: input paths in a base are relative to the base, another plugin name replaces the base's
section, and an error names the file and line that set the value (through `vattfw validate`)."""
from __future__ import annotations

import os

import vattfw
from fixtures.processes import run_cli

BASE = """\
data:
  text: {vocabulary: vocab.txt}
  sources: [{name: webdataset, urls: ["shards/a-{000000..000001}.tar", "s3://bucket/b.tar"]}]
model:
  tokenizers:
    text: {name: word_embedding, vectors: ../vectors/glove.npy}
optimizer: {name: adam, lr: 0.001, betas: [0.9, 0.98]}
schedule: warmup_cosine
"""


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_input_paths_of_a_base_are_relative_to_the_base(tmp_path, monkeypatch):
    write(tmp_path / "specs" / "base" / "base.yaml", BASE)
    child = write(tmp_path / "specs" / "child.yaml", "extends: base/base.yaml\nrun: {name: child}\n")
    monkeypatch.chdir(tmp_path)
    spec = vattfw.load_spec("specs/child.yaml")
    assert spec.data.text.vocabulary == os.path.join("specs", "base", "vocab.txt")
    assert spec.model.tokenizers["text"].config.vectors == os.path.join("specs", "vectors", "glove.npy")
    assert spec.data.sources[0].config.urls == [os.path.join("specs", "base", "shards", "a-{000000..000001}.tar"),
                                                "s3://bucket/b.tar"]
    # what the extending file or --set names stays relative to the working directory
    write(child, "extends: base/base.yaml\ndata: {text: {vocabulary: mine.txt}}\n")
    spec = vattfw.load_spec(child, ["model.tokenizers.text.vectors=v.npy"])
    assert spec.data.text.vocabulary == "mine.txt" and spec.model.tokenizers["text"].config.vectors == "v.npy"


def test_another_plugin_name_replaces_the_section(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    # sgd has no betas: the base's adam fields do not leak into it
    spec = vattfw.load_spec(write(tmp_path / "sgd.yaml", "extends: base.yaml\noptimizer: {name: sgd, lr: 0.1}\n"))
    assert spec.optimizer.name == "sgd" and spec.optimizer.config.lr == 0.1
    # no name, or the same name: the base's plugin is tuned, its other fields kept
    for text in ("optimizer: {lr: 0.01}\n", "optimizer: {name: adam, lr: 0.01}\n"):
        spec = vattfw.load_spec(write(tmp_path / "tune.yaml", "extends: base.yaml\n" + text))
        assert spec.optimizer.name == "adam" and spec.optimizer.config.lr == 0.01
        assert tuple(spec.optimizer.config.betas) == (0.9, 0.98)
    # a base's shorthand (`schedule: warmup_cosine`) is tuned by a mapping without a name
    spec = vattfw.load_spec(write(tmp_path / "sched.yaml", "extends: base.yaml\nschedule: {warmup_steps: 7}\n"))
    assert spec.schedule.name == "warmup_cosine" and spec.schedule.config.warmup_steps == 7
    # a plugin section in a mapping of them (model.tokenizers.text): same name, tuned
    spec = vattfw.load_spec(write(tmp_path / "tok.yaml", "extends: base.yaml\nmodel: {tokenizers: {text: "
                                                         "{name: word_embedding, max_words: 4}}}\n"))
    text = spec.model.tokenizers["text"].config
    assert text.max_words == 4 and text.vectors.endswith("glove.npy")


def test_an_error_names_the_file_and_line_that_set_the_value(tmp_path):
    base = write(tmp_path / "base.yaml", "run: {name: b}\ntrain:\n  steps: lots\ndata:\n  sources:\n"
                                         "    - {name: webdataset, urls: [a.tar], weight: 2}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntrain: {log_every: 5}\n")
    res = run_cli("validate", str(child))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"error: {base}:3: train.steps: got 'lots'" in res.stderr
    # the child replaced the list: a problem in it is the child's line, not the base's stale one
    write(child, "extends: base.yaml\ntrain: {steps: 5}\ndata:\n  sources:\n    - {name: webdataset, weight: 1}\n")
    res = run_cli("validate", str(child))
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {child}:5: data.sources.0.urls: missing required field"), line
