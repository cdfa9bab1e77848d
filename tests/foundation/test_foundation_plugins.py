"""The plugin host against real installed distributions: a third-party package (tests/foundation/
sample_plugin) is pip-installed into a throwaway folder and found through its entry point."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.processes import run_cli, run_python

SAMPLE = Path(__file__).parent / "sample_plugin"
BUILTIN_ENTRY_POINTS = ["backbones", "classifiers", "datasources", "evaluators", "heads", "losses", "optimizers",
                        "schedules", "tokenizers", "trackers"]


def pip_install_to(target: Path, source: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)


def make_package(root: Path, dist: str, module: str, body: str, ep_name: str) -> Path:
    (root / module).mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "0.0.1"
        [project.entry-points.vattfw]
        {ep_name} = "{module}"
        [tool.setuptools]
        packages = ["{module}"]
    """))
    (root / module / "__init__.py").write_text(textwrap.dedent(body))
    return root


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    pip_install_to(site, SAMPLE)
    return site


def listed_names(stdout: str) -> set[str]:
    return {line.split()[1] for line in stdout.splitlines()[1:] if len(line.split()) > 1}


def env_with(*sites: Path, **extra: str) -> dict:
    return {"PYTHONPATH": ":".join(str(s) for s in sites), **extra}


def test_builtins_are_listed_with_their_distribution():
    res = run_cli("plugins")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split() == ["KIND", "NAME", "DISTRIBUTION", "VERSION", "PLUGIN"]
    rows = [line.split() for line in res.stdout.splitlines()[1:]]
    assert rows, "no built-in components registered"
    assert all(r[2] == "vattfw" for r in rows)


def test_third_party_plugin_is_discovered_listed_and_built(sample_site, tmp_path):
    env = env_with(sample_site)
    listed = run_cli("plugins", "loss", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.split()[1:2] == ["cosine"])
    assert row == ["loss", "cosine", "vattfw-sample", "1.2.0", "sample"]

    fields = run_cli("plugins", "loss", "cosine", env=env)
    assert fields.returncode == 0
    assert "scale" in fields.stdout and "Multiplies the loss." in fields.stdout

    spec = tmp_path / "s.yaml"
    spec.write_text("losses:\n  terms:\n    va: {loss: {name: cosine, scale: 2.0}, x: video_va, y: audio_va}\n")
    assert run_cli("validate", str(spec), env=env).returncode == 0

    # The same spec section built through the Python API gives the plugin's real loss.
    res = run_python(f"""
        import torch, vattfw
        spec = vattfw.load_spec({str(spec)!r})
        loss = vattfw.build("loss", spec.losses.terms["va"].loss)
        x = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        print(float(loss(x, y)))
    """, env=env)
    assert res.returncode == 0, res.stderr
    assert float(res.stdout) == pytest.approx(2.0 * (0 + 1) / 2)  # scale * mean(1 - cos)


def test_plugin_is_gone_without_its_distribution():
    res = run_cli("plugins", "loss")
    assert res.returncode == 0
    assert "cosine" not in listed_names(res.stdout)


def test_autoload_can_be_disabled_and_p_loads_by_name(sample_site):
    off = run_cli("plugins", env=env_with(sample_site, VATTFW_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert off.returncode == 0 and "cosine" not in listed_names(off.stdout)
    assert "vattfw" in off.stdout  # built-ins still load
    explicit = run_cli("-p", "sample", "plugins", env=env_with(sample_site, VATTFW_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert explicit.returncode == 0 and "cosine" in listed_names(explicit.stdout)


def test_p_no_blocks_an_entry_point(sample_site):
    res = run_cli("-p", "no:sample", "plugins", env=env_with(sample_site))
    assert res.returncode == 0 and "cosine" not in listed_names(res.stdout)


def test_two_distributions_registering_one_name_is_an_error_naming_both(sample_site, tmp_path):
    clash = make_package(tmp_path / "src", "vattfw-clash", "vattfw_clash", """
        import vattfw, vattfw_sample
        @vattfw.hookimpl
        def vattfw_components():
            return [vattfw.Component("loss", "cosine", vattfw_sample.Config, vattfw_sample.build)]
    """, ep_name="clash")
    site2 = tmp_path / "site2"
    pip_install_to(site2, clash)
    res = run_cli("plugins", env=env_with(sample_site, site2))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "vattfw-sample 1.2.0" in res.stderr and "vattfw-clash 0.0.1" in res.stderr
    assert "loss 'cosine'" in res.stderr


def test_a_plugin_that_fails_to_import_names_its_distribution_and_entry_point(tmp_path):
    broken = make_package(tmp_path / "src", "vattfw-broken", "vattfw_broken",
                          "import a_module_that_does_not_exist\n", ep_name="broken")
    site = tmp_path / "site"
    pip_install_to(site, broken)
    res = run_cli("plugins", env=env_with(site))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "'broken'" in res.stderr and "vattfw-broken 0.0.1" in res.stderr
    assert "a_module_that_does_not_exist" in res.stderr
    assert "run without it with -p no:broken" in res.stderr
    skipped = run_cli("-p", "no:broken", "plugins", env=env_with(site))  # ... and that advice works
    assert skipped.returncode == 0, skipped.stderr


def test_a_misspelled_hook_is_an_error_naming_plugin_and_hook(tmp_path):
    typo = make_package(tmp_path / "src", "vattfw-typo", "vattfw_typo", """
        import vattfw
        @vattfw.hookimpl
        def vattfw_step_ended(step, metrics):
            pass
    """, ep_name="typo")
    site = tmp_path / "site"
    pip_install_to(site, typo)
    res = run_cli("plugins", env=env_with(site))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "plugin 'typo' (vattfw-typo 0.0.1; skip it with -p no:typo)" in line
    assert "unknown hook 'vattfw_step_ended'; did you mean 'vattfw_step_end'?" in line


def test_p_no_with_an_unknown_name_warns(sample_site):
    res = run_cli("-p", "no:smaple", "plugins", env=env_with(sample_site))
    assert res.returncode == 0 and "cosine" in listed_names(res.stdout)
    assert res.stderr.strip().splitlines() == [
        "warning: -p no:smaple: no plugin of that name is installed, so it blocks nothing "
        f"(entry points of group 'vattfw': {', '.join(sorted(BUILTIN_ENTRY_POINTS + ['sample']))})"]


def test_a_component_of_a_blocked_plugin_says_it_is_blocked(sample_site, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("losses:\n  terms:\n    va: {loss: {name: cosine}, x: video_va, y: audio_va}\n")
    res = run_cli("-p", "no:sample", "validate", str(spec), env=env_with(sample_site))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert ("loss 'cosine' is blocked: plugin 'sample' (vattfw-sample 1.2.0) provides it and -p no:sample "
            "blocks it") in res.stderr
    assert "unknown loss" not in res.stderr


def test_load_order_is_deterministic(sample_site):
    first = run_cli("plugins", env=env_with(sample_site)).stdout
    second = run_cli("plugins", env=env_with(sample_site)).stdout
    assert first == second


def test_build_from_a_config_instance_and_unknown_names():
    res = run_python("""
        import vattfw
        from vattfw import UserError
        try:
            vattfw.build("loss", {"name": "no_such_loss"})
        except UserError as e:
            print("ERR", e)
        try:
            vattfw.build("widget", {"name": "x"})
        except UserError as e:
            print("ERR", e)
    """)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "unknown loss 'no_such_loss'" in lines[0] and "registered losss" not in lines[0]
    assert "unknown component kind 'widget'" in lines[1] and "tokenizer" in lines[1]
