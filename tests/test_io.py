"""Model I/O: round trips, Hub repo ids from the offline cache, and clear errors for pickle and corrupt files."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import RecordingHfApi, populate_hub_cache
from genkit_vae import VAEPipeline
from safetensors.torch import load_file

import genkit
from genkit.errors import ConfigError, GenkitError, PickleRefusedError, WeightsError
from genkit.hub.push import push_to_hub
from genkit.io import upload_plan


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    return dst


def test_save_load_round_trip_is_bit_exact(tiny_vae, tmp_path):
    pipe = genkit.load(tiny_vae)
    assert isinstance(pipe, VAEPipeline)
    pipe.save_pretrained(tmp_path / "again")
    again = VAEPipeline.from_pretrained(tmp_path / "again")
    for key, value in pipe.vae.state_dict().items():
        assert torch.equal(value, again.vae.state_dict()[key]), key
    a = pipe.sample(8, seed=3, output_type="pt")
    b = again.sample(8, seed=3, output_type="pt")
    assert torch.equal(a, b)
    assert not torch.equal(a, pipe.sample(8, seed=4, output_type="pt"))
    files = {p.suffix for p in (tiny_vae / "vae").iterdir()}
    assert files == {".json", ".safetensors", ".py"}  # config, weights and the shipped modeling_vae.py


def test_load_by_hub_repo_id_from_offline_cache(tiny_vae):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    snapshot = populate_hub_cache(tiny_vae, "someone/tiny-vae")
    pipe = genkit.load("someone/tiny-vae")
    direct = VAEPipeline.from_pretrained("someone/tiny-vae")
    reference = genkit.load(tiny_vae)
    assert torch.equal(pipe.sample(4, seed=1, output_type="pt"), reference.sample(4, seed=1, output_type="pt"))
    assert torch.equal(direct.sample(4, seed=1, output_type="pt"), reference.sample(4, seed=1, output_type="pt"))
    assert snapshot.exists()


def test_uncached_repo_id_offline_is_a_clear_error():
    with pytest.raises(GenkitError, match="not in the local cache"):
        genkit.load("nobody/not-cached")


def test_pickle_weights_are_refused(tiny_vae, tmp_path):
    model = copy_model(tiny_vae, tmp_path / "m")
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), model / "vae" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(PickleRefusedError, match=r"refusing to load pickle file .*diffusion_pytorch_model\.bin"):
        genkit.load(model)
    with pytest.raises(PickleRefusedError):
        VAEPipeline.from_pretrained(model)


def test_truncated_weights_name_the_file(tiny_vae, tmp_path):
    model = copy_model(tiny_vae, tmp_path / "m")
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=r"diffusion_pytorch_model\.safetensors: truncated or corrupt"):
        genkit.load(model)


def test_garbage_weights_name_the_file(tiny_vae, tmp_path):
    model = copy_model(tiny_vae, tmp_path / "m")
    (model / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError, match=r"diffusion_pytorch_model\.safetensors"):
        genkit.load(model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("latent_dim"), r"config\.json: missing field 'latent_dim'"),
        (lambda c: c.update(latent_dim="sixteen"), r"config\.json: field 'latent_dim' must be int"),
        (lambda c: c.update(likelihood=3), r"config\.json: field 'likelihood' must be str"),
    ],
)
def test_bad_config_names_file_and_field(tiny_vae, tmp_path, edit, message):
    model = copy_model(tiny_vae, tmp_path / "m")
    config_file = model / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    edit(config)
    config_file.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        genkit.load(model)
    with pytest.raises(ConfigError, match=message):
        VAEPipeline.from_pretrained(model)


def test_invalid_json_names_the_file(tiny_vae, tmp_path):
    model = copy_model(tiny_vae, tmp_path / "m")
    (model / "vae" / "config.json").write_text("{ not json")
    with pytest.raises(ConfigError, match=r"vae/config\.json: invalid JSON"):
        genkit.load(model)


def test_folder_without_metadata_is_not_a_genkit_model(tmp_path):
    with pytest.raises(GenkitError, match="has no genkit.json"):
        genkit.load(tmp_path)


def test_push_dry_run_lists_model_files_but_not_checkpoints(tiny_vae):
    plan = push_to_hub(tiny_vae, "someone/tiny-vae", dry_run=True)
    paths = {f["path"] for f in plan["files"]}
    assert {
        "model_index.json",
        "genkit.json",
        "README.md",
        "samples.png",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    } <= paths
    assert not any(p.startswith("checkpoint-") for p in paths)
    assert plan["repo_type"] == "model" and plan["private"] is False


def test_push_creates_repo_and_uploads_folder_in_one_commit(tiny_vae):
    api = RecordingHfApi()
    push_to_hub(tiny_vae, "someone/tiny-vae", private=True, api=api)
    (name1, repo1, kw1), (name2, repo2, kw2) = api.calls  # one upload: weights and card in the same commit
    assert (name1, repo1) == ("create_repo", "someone/tiny-vae")
    assert kw1["private"] is True and kw1["exist_ok"] is True and kw1["repo_type"] == "model"
    assert (name2, repo2) == ("upload_folder", "someone/tiny-vae")
    sent = kw2["sent"]
    assert set(sent) == {rel for rel, _ in upload_plan(tiny_vae)}  # the plan, and nothing else
    assert not any(p.startswith(("checkpoint-", ".")) for p in sent)
    assert (
        sent["vae/diffusion_pytorch_model.safetensors"]
        == (tiny_vae / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    # the card's usage snippets name the repo instead of the local folder
    card = sent["README.md"].decode()
    assert 'genkit.load("someone/tiny-vae")' in card
    assert 'DiffusionPipeline.from_pretrained("someone/tiny-vae", trust_remote_code=True)' in card
    assert str(tiny_vae) not in card.split("## Use")[1].split("## Training")[0]
    assert (tiny_vae / "README.md").read_text().count(str(tiny_vae)) >= 1  # the local card is left as it was


def test_push_rejects_bad_repo_id(tiny_vae):
    with pytest.raises(GenkitError, match="invalid repo id"):
        push_to_hub(tiny_vae, "a/b/c", dry_run=True)


def test_save_writes_what_load_reads_and_guards_the_folder(tiny_vae, tmp_path):
    import genkit

    pipe = genkit.load(tiny_vae)
    with torch.no_grad():
        pipe.vae.from_latent.bias.add_(1.0)  # a change made in a notebook
    out = genkit.save(pipe, tmp_path / "edited")
    again = genkit.load(out)
    assert torch.equal(again.vae.from_latent.bias, pipe.vae.from_latent.bias)
    assert genkit.save(again, out) == out  # its own folder may be written again
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(GenkitError, match="non-empty folder that genkit did not write"):
        genkit.save(pipe, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(GenkitError, match="no installed genkit plugin defines"):
        genkit.save(object(), tmp_path / "x")
