"""load_model: the bundled default, local folders, checkpoints, hub ids, and every way to fail."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from models import DEFAULT_MODEL, ModelLoadError, RunError, load_model, run_attention
from models.core import loading
from models.core.settings import Settings
from tests.helpers import ROOT
from tests.tiny_models import MODEL_CLASSES, gpt2_tokenizer, tiny_config


def test_default_alias_is_the_bundled_minilm(default_model):
    assert default_model.spec == DEFAULT_MODEL
    assert default_model.source == str(loading.bundled_model_path())
    assert (default_model.kind, default_model.num_layers, default_model.num_heads) == ("encoder", 6, 12)
    assert default_model.model.config._attn_implementation == "attention_explorer"
    assert not default_model.model.training
    assert default_model.max_tokens == 512


@pytest.mark.parametrize("kind, expected, model_class, mlm", [
    ("bert", "encoder", "BertForMaskedLM", True),
    ("distilbert", "encoder", "DistilBertModel", False),
    ("roberta", "encoder", "RobertaModel", False),
    ("gpt2", "decoder", "GPT2LMHeadModel", False),
    ("t5", "encoder-decoder", "T5ForConditionalGeneration", False),
    ("bart", "encoder-decoder", "BartForConditionalGeneration", False),
])
def test_local_folders_load_with_the_right_kind(tiny_models, kind, expected, model_class, mlm):
    loaded = load_model(str(tiny_models[kind]))
    assert loaded.kind == expected
    assert type(loaded.model).__name__ == model_class
    assert loaded.has_mlm_head is mlm


def test_trainer_checkpoint_takes_the_tokenizer_of_its_series_folder(tiny_models, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(tiny_models["bert"], series)
    checkpoint = series / "checkpoint-10"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(series / name, checkpoint / name)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 10, "log_history": []}))
    loaded = load_model(str(checkpoint))
    assert loaded.has_mlm_head and loaded.tokenizer.mask_token == "[MASK]"


@pytest.mark.parametrize("spec, message", [
    ("", "No model given"),
    ("   ", "No model given"),
    ("/no/such/folder", "does not exist"),
    ("not a model!", "neither a hub model id"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(spec)


def test_a_file_is_not_a_model_folder(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(str(path))


def test_a_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_a_series_folder_points_to_its_checkpoints(tiny_models, tmp_path):
    shutil.copytree(tiny_models["bert"], tmp_path / "checkpoint-5")
    with pytest.raises(ModelLoadError, match="checkpoint-5"):
        load_model(str(tmp_path))


def test_half_written_weights_fail_cleanly(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "broken")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="Couldn't load the model"):
        load_model(str(folder))


def test_models_that_need_remote_code_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "my-custom-arch", "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    (tmp_path / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelLoadError, match="never runs remote code"):
        load_model(str(tmp_path))


def test_unreachable_hub_answers_within_seconds(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading.hub_constants, "ENDPOINT", "https://192.0.2.1")  # TEST-NET: never routes
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="hub can't be reached"):
        load_model("some-org/some-model-not-cached")
    assert time.monotonic() - start < loading.HUB_TIMEOUT_S + 5


def test_offline_setting_means_no_hub():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert not loading.hub_reachable()


def _hub_cache(tmp_path, repo_id, folder, revision="main", commit="0" * 40):
    """Lay out `folder` as the Hugging Face cache would after downloading `repo_id` at `revision`."""
    repo = tmp_path / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return tmp_path


def test_hub_ids_load_from_the_hub_cache(tiny_models, tmp_path):
    cache = _hub_cache(tmp_path, "tiny-org/tiny-gpt2", tiny_models["gpt2"])
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    script = "from models import load_model; m = load_model('tiny-org/tiny-gpt2'); print(m.kind, m.source)"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["decoder", "tiny-org/tiny-gpt2"], out.stderr


def test_hub_revisions_load_their_own_snapshot(tiny_models, tmp_path):
    cache = _hub_cache(tmp_path, "tiny-org/series", tiny_models["gpt2"])
    _hub_cache(tmp_path, "tiny-org/series", tiny_models["bert"], revision="step10", commit="1" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    script = ("from models import load_model; print(load_model('tiny-org/series').kind, "
              "load_model('tiny-org/series@step10').kind)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["decoder", "encoder"], out.stderr


def test_a_cached_hub_revision_counts_as_available_offline_in_a_checkpoint_series(tiny_models, tmp_path):
    cache = _hub_cache(tmp_path, "tiny-org/series", tiny_models["bert"], revision="step10", commit="1" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    script = ("from models.checkpoints.discovery import hub_checkpoints\n"
              "for c in hub_checkpoints(['tiny-org/series@step10', 'tiny-org/series@step20'], lambda: False):\n"
              "    print(c.spec, c.problem is None)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["tiny-org/series@step10", "True", "tiny-org/series@step20", "False"], out.stderr


def test_a_malformed_revision_is_refused():
    with pytest.raises(ModelLoadError, match="org/name@revision"):
        load_model("org/name@bad revision!")


# --- a config's own choices never beat the app's; any failure while loading is a ModelLoadError ---

def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize("settings", [None, Settings(allowed_folders=None)], ids=["plain", "server settings"])
def test_a_config_asking_for_flash_attention_loads_with_the_apps_attention(tiny_models, tmp_path, settings):
    folder = _edit_config(shutil.copytree(tiny_models["bert"], tmp_path / "flash"),
                          attn_implementation="flash_attention_2")  # flash-attn is not installed here
    loaded = load_model(str(folder), settings)
    assert loaded.model.config._attn_implementation == "attention_explorer"
    reference = load_model(str(tiny_models["bert"]))
    np.testing.assert_array_equal(run_attention(loaded, "The cat sat.").attentions,
                                  run_attention(reference, "The cat sat.").attentions)


@pytest.mark.parametrize("settings, step", [(None, "loading its weights"),
                                            (Settings(allowed_folders=None), "counting its parameters")])
def test_a_config_transformers_cannot_build_is_a_model_load_error(tiny_models, tmp_path, settings, step):
    folder = _edit_config(shutil.copytree(tiny_models["bert"], tmp_path / "odd"), hidden_size=30)  # 4 heads
    with pytest.raises(ModelLoadError, match=f"Couldn't load the model '.*odd': {step} failed with ValueError: "
                                             "The hidden size \\(30\\) is not a multiple"):
        load_model(str(folder), settings)


def test_a_broken_tokenizer_is_a_model_load_error(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["gpt2"], tmp_path / "broken-tokenizer")
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"')  # cut short
    with pytest.raises(ModelLoadError, match="loading its tokenizer failed with"):
        load_model(str(folder))


# --- a load that lacks parts never passes silently ---

def _checkpoint_with_tokenizer_config_only(series):
    checkpoint = series / "checkpoint-10"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        shutil.copy(series / name, checkpoint / name)
    return checkpoint


def test_a_tokenizer_config_without_vocabulary_is_not_used_the_series_tokenizer_is(tiny_models, tmp_path):
    series = shutil.copytree(tiny_models["bert"], tmp_path / "series")
    loaded = load_model(str(_checkpoint_with_tokenizer_config_only(series)))
    assert len(loaded.tokenizer) == 30522  # not the 5 special tokens of a tokenizer without vocab.txt
    run = run_attention(loaded, "The capital of [MASK] is Rome.")
    assert run.tokens == ["[CLS]", "the", "capital", "of", "[MASK]", "is", "rome", ".", "[SEP]"]
    assert not loaded.notices


def test_a_tokenizer_config_alone_with_no_tokenizer_above_is_refused(tiny_models, tmp_path):
    checkpoint = tmp_path / "checkpoint-10"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        shutil.copy(tiny_models["bert"] / name, checkpoint / name)
    with pytest.raises(ModelLoadError, match="has no tokenizer vocabulary .* nor has the folder above it"):
        load_model(str(checkpoint))


def test_the_tokenizer_above_a_checkpoint_is_read_only_where_the_server_allows(tiny_models, tmp_path):
    checkpoint = _checkpoint_with_tokenizer_config_only(shutil.copytree(tiny_models["bert"], tmp_path / "series"))
    with pytest.raises(ModelLoadError, match="doesn't load the one in the folder above it"):
        load_model(str(checkpoint), Settings(allowed_folders=(checkpoint,)))
    assert load_model(str(checkpoint), Settings(allowed_folders=(tmp_path,)))


def _drop_weights(folder, drop) -> None:
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not drop(k)}, folder / "model.safetensors",
              metadata={"format": "pt"})


def test_weights_that_miss_part_of_the_model_body_are_refused(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "partial")
    _drop_weights(folder, lambda key: ".layer.1." in key)
    with pytest.raises(ModelLoadError, match="The weights of '.*partial' don't cover the model: 16 of its weights "
                                             "are missing \\(bert.encoder.layer.1.attention"):
        load_model(str(folder))


def test_weights_without_the_output_head_load_with_a_notice_and_no_predictions(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "headless")
    _drop_weights(folder, lambda key: key.startswith("cls."))
    loaded = load_model(str(folder))
    assert not loaded.has_mlm_head  # its predictions would come from random weights
    assert loaded.notices == ("The weights have no output head (cls.predictions.bias, cls.predictions.decoder.bias, "
                              "cls.predictions.transform.LayerNorm.bias, ...), so this model makes no predictions "
                              "here; its attention is complete.",)
    reference = load_model(str(tiny_models["bert"]))
    np.testing.assert_array_equal(run_attention(loaded, "The cat sat.").attentions,
                                  run_attention(reference, "The cat sat.").attentions)


def test_a_decoder_without_its_next_token_head_makes_no_predictions(tmp_path):
    config = tiny_config("llama")
    config.tie_word_embeddings = False  # lm_head has weights of its own, which the file then lacks
    MODEL_CLASSES["llama"](config).save_pretrained(tmp_path)
    gpt2_tokenizer().save_pretrained(tmp_path)
    _drop_weights(tmp_path, lambda key: key.startswith("lm_head."))
    loaded = load_model(str(tmp_path))
    assert loaded.kind == "decoder" and not loaded.has_lm_head
    assert loaded.notices[0].startswith("The weights have no output head (lm_head.weight)")


def test_a_tokenizer_far_smaller_than_the_embedding_gets_a_notice(tmp_path):
    config = tiny_config("gpt2")
    config.vocab_size = 1000
    MODEL_CLASSES["gpt2"](config).save_pretrained(tmp_path)
    tokenizer = gpt2_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    assert len(tokenizer) == 340
    assert load_model(str(tmp_path)).notices == (
        "The tokenizer has only 340 tokens but the model's embedding 1,000 rows: it is probably not this model's "
        "tokenizer, and its tokens may mean other words to the model.",)


def test_a_tokenizer_larger_than_the_embedding_gets_a_notice_and_its_ids_a_run_error(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["gpt2"], tmp_path / "bert-tokenizer")
    shutil.copy(tiny_models["bert"] / "tokenizer.json", folder / "tokenizer.json")  # 30,522 tokens for 400 rows
    loaded = load_model(str(folder))
    assert loaded.notices == (f"The tokenizer has {len(loaded.tokenizer):,} tokens but the model's embedding only 400 "
                              "rows: a text with the tokens past them can't run. Is this the model's own tokenizer?",)
    with pytest.raises(RunError, match="token ids past the model's 400 embedding rows"):
        run_attention(loaded, "The cat sat on the mat.")


# --- every file a load reads lies inside the model folder ---

QUERY_WEIGHT = "bert.encoder.layer.0.attention.self.query.weight"


def _sharded_with_one_weight_outside(tiny_models, tmp_path):
    """A sharded checkpoint whose index names '../outside.safetensors' (all 7s) for one weight."""
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "sharded")
    weights = load_file(folder / "model.safetensors")
    inside = {k: v for k, v in weights.items() if k != QUERY_WEIGHT}
    save_file(inside, folder / "model-00001-of-00001.safetensors", metadata={"format": "pt"})
    save_file({QUERY_WEIGHT: weights[QUERY_WEIGHT].clone().fill_(7.0)}, tmp_path / "outside.safetensors",
              metadata={"format": "pt"})
    (folder / "model.safetensors").unlink()
    weight_map = {k: "model-00001-of-00001.safetensors" for k in inside} | {QUERY_WEIGHT: "../outside.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


@pytest.mark.parametrize("settings", [None, "only the checkpoint"])
def test_a_weights_index_naming_a_file_outside_the_folder_is_refused(tiny_models, tmp_path, settings):
    folder = _sharded_with_one_weight_outside(tiny_models, tmp_path)
    allowed = Settings(allowed_folders=(folder,)) if settings else None
    with pytest.raises(ModelLoadError, match="points outside itself \\(model.safetensors.index.json names "
                                             "'../outside.safetensors'\\), and a model is only ever read from inside"):
        load_model(str(folder), allowed)


def test_a_weights_index_of_files_inside_the_folder_loads(tiny_models, tmp_path):
    folder = _sharded_with_one_weight_outside(tiny_models, tmp_path)
    shutil.move(tmp_path / "outside.safetensors", folder / "model-00002-of-00002.safetensors")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"][QUERY_WEIGHT] = "model-00002-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = load_model(str(folder))
    assert (dict(loaded.model.named_parameters())[QUERY_WEIGHT] == 7.0).all()


@pytest.mark.parametrize("link", ["model.safetensors", "tokenizer.json", "extra"])
def test_a_symlink_out_of_the_folder_is_refused(tiny_models, tmp_path, link):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "linked")
    outside = shutil.copytree(tiny_models["bert"], tmp_path / "elsewhere")
    if link == "extra":  # a linked folder: a load could read anything below it
        (folder / "extra").symlink_to(outside, target_is_directory=True)
    else:
        (folder / link).unlink()
        (folder / link).symlink_to(outside / link)
    with pytest.raises(ModelLoadError, match=f"points outside itself \\('{link}' links to '{outside}"):
        load_model(str(folder))


def test_symlinks_within_the_folder_and_a_linked_folder_load(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["bert"], tmp_path / "real")
    (folder / "weights").mkdir()
    shutil.move(folder / "model.safetensors", folder / "weights" / "model.safetensors")
    (folder / "model.safetensors").symlink_to(folder / "weights" / "model.safetensors")
    (tmp_path / "alias").symlink_to(folder, target_is_directory=True)
    assert load_model(str(tmp_path / "alias")).kind == "encoder"


def test_a_hub_cache_snapshot_folder_may_read_its_blobs(tiny_models, tmp_path):
    repo = tmp_path / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in tiny_models["bert"].iterdir():  # the cache's layout: snapshot files link to ../../blobs
        shutil.copy(file, repo / "blobs" / file.name)
        (snapshot / file.name).symlink_to(Path("../../blobs") / file.name)
    assert load_model(str(snapshot)).kind == "encoder"


def test_tokenizer_files_named_by_tokenizer_config_are_read_only_inside_the_folder(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models["gpt2"], tmp_path / "model")
    outside = shutil.copytree(tiny_models["bert"], tmp_path / "outside")  # 30,522 tokens; the model's has 340
    config = json.loads((folder / "tokenizer_config.json").read_text())
    stale = {"tokenizer_file": str(outside / "tokenizer.json"), "vocab_file": "../outside/vocab.txt"}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **stale}))
    assert len(load_model(str(folder)).tokenizer) == 340  # transformers opens the folder's own files
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "fast_tokenizer_files": [
        "tokenizer.4.0.json", "tokenizer./../../outside/tokenizer.json"]}))
    with pytest.raises(ModelLoadError, match="tokenizer_config.json names 'tokenizer./../../outside/tokenizer.json'"):
        load_model(str(folder))


def test_the_tokenizer_above_a_checkpoint_is_checked_too(tiny_models, tmp_path):
    series = shutil.copytree(tiny_models["bert"], tmp_path / "series")
    checkpoint = _checkpoint_with_tokenizer_config_only(series)
    (series / "tokenizer.json").unlink()
    (series / "tokenizer.json").symlink_to(tiny_models["bert"] / "tokenizer.json")
    with pytest.raises(ModelLoadError, match=f"'{series}' points outside itself \\('tokenizer.json' links to"):
        load_model(str(checkpoint))
