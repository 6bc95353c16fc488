"""Model references: a mistyped local folder fails at once with the nearest folder suggested (no 25 s of hub
retries), ``eval`` on a folder that is no checkpoint raises a typed error, and a LoRA checkpoint's relative base
is found from the checkpoint's folders or named in the error."""

from __future__ import annotations

import json
import shutil

import pytest

import orsta_trl
from orsta_trl.api import check_paths
from orsta_trl.errors import MissingFileError, RecipeError
from orsta_trl.models.lora import merge_adapter
from orsta_trl.models.paths import adapter_base

RECORD = {
    "id": "q1",
    "data_source": "toy",
    "prompt": [{"role": "user", "content": "2+2?"}],
    "reward": {"verifier": "math", "ground_truth": "4"},
}


@pytest.fixture()
def project(tmp_path, tiny_lm, monkeypatch):
    """A working folder with demo/tiny-vl (a model), demo/run (a model), demo/notes (no model) and data; the hub
    is *not* switched off, so only our check can stop a typo before transformers asks the network."""
    for name in ("tiny-vl", "run"):
        shutil.copytree(tiny_lm, tmp_path / "demo" / name)
    (tmp_path / "demo" / "notes").mkdir()
    (tmp_path / "data.jsonl").write_text(json.dumps(RECORD) + "\n")
    monkeypatch.chdir(tmp_path)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_a_mistyped_model_folder_fails_at_once_naming_the_nearest(project):
    recipe = orsta_trl.load_recipe(
        None,
        {"model_name_or_path": "demo/tiny-vll", "train_files": ["data.jsonl"], "output_dir": "out"},
        use_cpu=True,
        bf16=False,
    )
    with pytest.raises(
        RecipeError, match=r"model_name_or_path: no such folder demo/tiny-vll .*did you mean demo/tiny-vl"
    ):
        check_paths(recipe)


def test_eval_of_a_mistyped_or_non_model_folder_is_a_typed_error(project):
    with pytest.raises(
        MissingFileError, match=r"checkpoint: no such folder demo/runn .*did you mean demo/run"
    ):
        orsta_trl.evaluate("demo/runn", ["data.jsonl"])
    with pytest.raises(
        MissingFileError, match=r"checkpoint: demo/notes has no config.json \(is it a model folder\?\)"
    ):
        orsta_trl.evaluate("demo/notes", ["data.jsonl"])


def test_a_lora_checkpoints_relative_base_is_found_from_the_checkpoint(
    project, tmp_path_factory, monkeypatch
):
    checkpoint = project / "runs" / "lora" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    adapter = {"base_model_name_or_path": "demo/tiny-vl", "peft_type": "LORA"}
    (checkpoint / "adapter_config.json").write_text(json.dumps(adapter))
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)  # merge or eval run from another folder than the training
    assert adapter_base(checkpoint) == str(project / "demo" / "tiny-vl")
    (checkpoint / "adapter_config.json").write_text(
        json.dumps({**adapter, "base_model_name_or_path": "demo/gone"})
    )
    with pytest.raises(MissingFileError, match=r"its base model 'demo/gone' .* pass the base"):
        merge_adapter(checkpoint, elsewhere / "merged")
    assert not (elsewhere / "merged").exists()


def test_a_legacy_hub_id_without_its_org_is_found_in_the_cache_or_named_with_its_org(project, monkeypatch):
    """``gpt2`` reads as a folder (no ``org/``): missing, the error says how the hub spells it; in the local hub
    cache (written here in the hub library's own layout), it is a usable reference."""
    import huggingface_hub.constants

    from orsta_trl.models.paths import missing_model_message

    cache = project / "hub-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert "gpt2 is openai-community/gpt2 on the hub" in missing_model_message("gpt2")
    snapshot = cache / "models--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--gpt2" / "refs").mkdir()
    (cache / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    assert missing_model_message("gpt2") is None
    assert "did you mean" in missing_model_message("demo/tiny-vll")  # a folder typo is still one
