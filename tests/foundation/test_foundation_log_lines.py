"""vattfw's log warnings through the CLI's handler: one line each; in a run of several processes
(torchrun sets RANK / WORLD_SIZE) a process other than the first names itself."""
import pytest

from fixtures.processes import run_python

CODE = """
import logging, vattfw.cli as cli
cli._log_lines_name_their_process(); cli._log_lines_name_their_process()  # main() may run twice
logging.getLogger("vattfw.data").warning("skipped 3 corrupt samples")
logging.getLogger("vattfw.data").info("an info line")
"""


@pytest.mark.parametrize("env,want", [
    ({}, "skipped 3 corrupt samples"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "skipped 3 corrupt samples"),
    ({"RANK": "1", "WORLD_SIZE": "2"}, "process 1: skipped 3 corrupt samples"),
])
def test_warnings_are_one_line_and_name_a_process_other_than_the_first(env, want):
    res = run_python(CODE, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if "corrupt" in ln or "info line" in ln]
    assert lines == [want]
