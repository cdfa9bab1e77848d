"""The quickstart's demo data (run.demo_data) is built once when several processes of one run
(torchrun ranks, XLA processes on a host) start at the same moment: the others wait for it."""
import json
import threading
import time
from types import SimpleNamespace

from vattfw.commands.run import prepare_data


def test_processes_starting_together_build_the_demo_data_once(tmp_path, monkeypatch):
    calls = []

    def slow_build(out, **kw):
        calls.append(out)
        time.sleep(0.5)  # long enough for every other caller to arrive while it builds
        (tmp_path / "demo" / "demo.json").write_text(json.dumps({"built": True}))

    monkeypatch.setattr("vattfw.data.demo.build_demo", slow_build)
    spec = SimpleNamespace(run=SimpleNamespace(demo_data=str(tmp_path / "demo")))
    seen = []

    def rank():
        prepare_data(spec)
        seen.append((tmp_path / "demo" / "demo.json").is_file())  # nobody goes on before it exists

    threads = [threading.Thread(target=rank) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(calls) == 1 and seen == [True] * 4
    prepare_data(spec)  # a later run finds it built
    assert len(calls) == 1
