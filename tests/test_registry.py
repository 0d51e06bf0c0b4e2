"""Plugin discovery through entry points: built-in, third-party, broken, incomplete and duplicate plugins."""

import sys
import warnings
from pathlib import Path

import pytest

import genkit
from genkit.errors import GenkitError, PluginError
from genkit.plugin import registry


def make_distribution(root, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees it: a .dist-info folder beside its modules."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[genkit.plugins]\n{lines}")
    for name, source in modules.items():
        (root / name).write_text(source)


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("fake_plugin")]:
        del sys.modules[name]
    registry.refresh()


VALID = """
from genkit_vae.plugin import VAEPlugin

class Renamed(VAEPlugin):
    name = "{name}"

plugin = Renamed()
"""


def test_builtin_plugins_are_discovered_through_entry_points():
    assert "vae" in genkit.list_plugins()
    plugin = genkit.get_plugin("vae")
    assert plugin.name == "vae" and plugin.task == "image"
    assert set(plugin.presets) >= {"tiny", "small", "base"}


def test_third_party_plugin_is_discovered(site):
    make_distribution(
        site, "fake-plugin-ok", {"vae2": "fake_plugin_ok:plugin"}, {"fake_plugin_ok.py": VALID.format(name="vae2")}
    )
    assert "vae2" in genkit.list_plugins()
    assert genkit.get_plugin("vae2").name == "vae2"


def test_plugin_that_fails_to_import_is_reported_and_does_not_break_others(site):
    make_distribution(
        site,
        "fake-plugin-broken",
        {"broken": "fake_plugin_broken:plugin"},
        {"fake_plugin_broken.py": "raise RuntimeError('boom at import')\n"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = genkit.list_plugins()
    assert "vae" in names and "broken" not in names
    assert any("broken" in str(w.message) and "boom at import" in str(w.message) for w in caught)
    assert "boom at import" in genkit.broken_plugins()["broken"]
    with pytest.raises(PluginError, match=r"fake-plugin-broken 1\.0.*boom at import"):
        genkit.get_plugin("broken")


def test_plugin_missing_hooks_names_entry_point_distribution_and_hooks(site):
    source = (
        "class Half:\n    name = 'half'\n    task = 'image'\n"
        "    def build(self, config, info):\n        return {}\n\nplugin = Half()\n"
    )
    make_distribution(site, "fake-plugin-half", {"half": "fake_plugin_half:plugin"}, {"fake_plugin_half.py": source})
    with pytest.warns(UserWarning):
        with pytest.raises(PluginError) as err:
            genkit.get_plugin("half")
    message = str(err.value)
    assert "'half'" in message and "fake-plugin-half 1.0" in message and "fake_plugin_half:plugin" in message
    for missing in ("training_step()", "to_pipeline()", "presets", "default_dataset"):
        assert missing in message


def test_duplicate_names_warn_with_both_sources(site):
    make_distribution(
        site, "fake-plugin-dup", {"vae": "fake_plugin_dup:plugin"}, {"fake_plugin_dup.py": VALID.format(name="vae")}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.refresh()
        registry.list_plugins()
    twice = [str(w.message) for w in caught if "declared twice" in str(w.message)]
    assert len(twice) == 1
    assert "fake-plugin-dup 1.0 (fake_plugin_dup:plugin)" in twice[0] and "(genkit_vae:plugin)" in twice[0]


def test_the_same_plugin_declared_by_a_left_over_distribution_is_not_a_duplicate(site):
    # An older install under another distribution name (genkit-hf was once "genkit") that points to the same code.
    make_distribution(site, "genkit-old-name", {"vae": "genkit_vae:plugin"}, {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.refresh()
        names = registry.list_plugins()
    assert not [w for w in caught if "declared twice" in str(w.message)]
    assert "vae" in names


def test_unknown_plugin_lists_known_ones():
    with pytest.raises(GenkitError, match=r"unknown plugin 'nope'; known plugins: .*vae"):
        genkit.get_plugin("nope")


def test_plugins_md_is_a_complete_reference():
    """docs/plugins.md names every hook and attribute of genkit.Plugin and every trainer config key."""
    import inspect

    from genkit.config import TRAINER_DEFAULTS
    from genkit.config.settings import settings_table
    from genkit.plugin import Plugin

    doc = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    members = {n for n, _ in inspect.getmembers(Plugin) if not n.startswith("_")}
    members |= set(Plugin.__annotations__)
    missing = sorted(n for n in members if f"`{n}" not in doc)
    assert not missing, f"docs/plugins.md does not describe: {missing}"
    keys = sorted(k for k in TRAINER_DEFAULTS if f"`{k}`" not in doc)
    assert not keys, f"docs/plugins.md lacks trainer keys: {keys}"
    table = doc.split("<!-- settings-table: generated from genkit.config.settings.settings_table() -->\n")[1]
    assert table.split("\n<!-- end settings-table -->")[0] == settings_table()  # the one declaration, as it is
    for name in ("OptimizerSpec", "StepContext", "PreparedData", "DataInfo", "ConfigError", "check-plugin"):
        assert name in doc


def test_flags_are_derived_from_defaults(tmp_path):
    """Every plugin setting is a train flag, typed from limits/defaults; a True-by-default switch can be turned off."""
    import argparse

    from genkit.cli.main import build_parser
    from genkit.config import TRAINER_DEFAULTS

    for name in ("vae", "dcgan", "ddpm", "lstm", "autoencoder", "flow"):
        plugin = genkit.get_plugin(name)
        parser = argparse.ArgumentParser()
        plugin.add_arguments(parser)
        dests = {a.dest for a in parser._actions}
        assert {k for k in plugin.defaults if k not in TRAINER_DEFAULTS} <= dests, name
    ddpm = genkit.get_plugin("ddpm")
    args = build_parser(ddpm, "train").parse_args(
        ["train", "ddpm", "--eval-steps", "3", "--no-clip-sample", "--attention-levels", "--beta-end", "0.01"]
    )
    assert (args.eval_steps, args.clip_sample, args.attention_levels, args.beta_end) == (3, False, [], 0.01)
    assert build_parser(ddpm, "train").parse_args(["train", "ddpm"]).clip_sample is None  # not given: preset decides
