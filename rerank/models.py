"""The two reranker families behind one interface: ``score(query, documents) -> scores``.

- :class:`CrossEncoderReranker`: ``AutoModelForSequenceClassification`` checkpoints
  (ms-marco MiniLM, bge-reranker...).  The score is the single logit (or its
  sigmoid), or the softmax probability of the relevant class.
- :class:`LLMReranker`: causal LMs used as cross-encoders (Qwen3-Reranker,
  bge-reranker-gemma style).  The score is P("yes") against P("no") at the
  last position of a prompt built from a template.

Both tokenize once, sort pairs by length, run batches of ``batch_size`` under
``torch.inference_mode()`` and put the scores back in input order.
Loading a checkpoint as one of them is :mod:`rerank.loading`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from rerank._text import (
    PromptParts,
    Segment,
    cut_segments,
    cut_to_tokens,
    length_sorted_batches,
    pair_budget,
    render_prompt,
    split_template,
    token_owners,
)
from rerank.errors import RerankConfigError
from rerank.settings import RerankSettings

__all__ = [
    "Reranker",
    "ScoredPairs",
    "CrossEncoderReranker",
    "LLMReranker",
]

logger = logging.getLogger(__name__)

# Used when neither the setting nor the model gives a smaller limit (LLMs claim 32k+).
_DEFAULT_MAX_LENGTH_CAP = 8192
# RoBERTa-style position ids start after the padding index, so two positions are unusable.
_POSITION_OFFSET_MODELS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})
Encoded = dict[str, list[int]]


@dataclass(frozen=True)
class ScoredPairs:
    """Scores of (query, document) pairs in input order, and the tokens each pair used."""

    scores: list[float]
    tokens: list[int]


@runtime_checkable
class Reranker(Protocol):
    """What the service and the in-process adapter need from a reranker."""

    model_id: str
    max_length: int

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in input order (higher = more relevant)."""
        ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> ScoredPairs:
        """Scores of (query, document) pairs in input order, with tokens per pair."""
        ...

    def info(self) -> dict[str, Any]:
        """What /info reports."""
        ...


class _TorchReranker:
    """Shared machinery: length-sorted batches, inference mode, scores back in input order."""

    kind = "base"

    def __init__(
        self, *, model: Any, tokenizer: Any, settings: RerankSettings, device: str, dtype: torch.dtype
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.device = device
        self.dtype = dtype
        self.model_id = settings.reported_model_id
        self.batch_size = settings.batch_size
        self.max_length = _resolve_max_length(model.config, tokenizer, settings.max_length)

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.score_pairs([(query, document) for document in documents]).scores

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> ScoredPairs:
        if not pairs:
            return ScoredPairs([], [])
        encoded = self._encode(self._cut_documents(pairs))
        lengths = [len(item["input_ids"]) for item in encoded]
        scores = [0.0] * len(pairs)
        with torch.inference_mode():
            for batch in length_sorted_batches(lengths, self.batch_size):
                tensors = self._collate([encoded[i] for i in batch])
                values = self._forward(tensors).float().cpu().tolist()
                if len(values) != len(batch):
                    raise RuntimeError(f"the model returned {len(values)} scores for {len(batch)} pairs")
                for i, value in zip(batch, values, strict=True):
                    scores[i] = float(value)
        return ScoredPairs(scores, lengths)

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "revision": self.settings.revision,
            "kind": self.kind,
            "max_length": self.max_length,
            "max_query_share": self.settings.max_query_share,
            "max_doc_tokens": self.settings.max_doc_tokens,
            "batch_size": self.batch_size,
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "backend": self.settings.backend,
            "quantization": self.settings.quantize,
        }

    def _cut_documents(self, pairs: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
        """The pairs with each document cut to ``max_doc_tokens`` tokens (each distinct document tokenized once).

        A product text is scored on what it starts with (title, then description), and its cost is then what it
        is: a batch is padded to its longest pair, not to ``max_length``.
        """
        budget = self.settings.max_doc_tokens
        if not budget:
            return pairs
        distinct = list(dict.fromkeys(document for _, document in pairs))
        if getattr(self.tokenizer, "is_fast", False):
            encoding = self.tokenizer(distinct, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            spans = encoding["offset_mapping"]
            cut = {doc: cut_to_tokens(doc, offsets, budget) for doc, offsets in zip(distinct, spans, strict=True)}
        else:  # no character offsets: decode the kept tokens (spacing may differ slightly from the original)
            ids = self.tokenizer(distinct, add_special_tokens=False, verbose=False)["input_ids"]
            cut = {
                doc: doc if len(tokens) <= budget else self.tokenizer.decode(tokens[:budget])
                for doc, tokens in zip(distinct, ids, strict=True)
            }
        return [(query, cut[document]) for query, document in pairs]

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[Encoded]:
        raise NotImplementedError

    def _collate(self, items: list[Encoded]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad(items, padding=True, return_tensors="pt")
        return {name: tensor.to(self.device) for name, tensor in batch.items()}

    def _forward(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class CrossEncoderReranker(_TorchReranker):
    """A sequence-classification model scoring (query, document) pairs.

    Pairs are truncated with ``truncation="only_second"``: the document is cut,
    the query kept whole, unless the query alone needs more than
    ``max_query_share`` of the tokens, in which case it is cut to that share first.
    """

    kind = "cross_encoder"

    def __init__(
        self, *, model: Any, tokenizer: Any, settings: RerankSettings, device: str, dtype: torch.dtype
    ) -> None:
        if tokenizer.pad_token is None:
            # Sequence-classification heads on causal LMs (Qwen3-Reranker "seq-cls" conversions) often
            # ship without a pad token; they pool the last non-pad token, so both must agree.
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        super().__init__(model=model, tokenizer=tokenizer, settings=settings, device=device, dtype=dtype)
        self.num_labels = int(model.config.num_labels)
        self.score_mode = _cross_encoder_score_mode(settings, self.num_labels)
        self._special_tokens = int(tokenizer.num_special_tokens_to_add(pair=True))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "score": self.score_mode, "num_labels": self.num_labels}

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[Encoded]:
        cut = {query: self._fit_query(query) for query in {query for query, _ in pairs}}
        encoding = self.tokenizer(
            [cut[query] for query, _ in pairs],
            [document for _, document in pairs],
            truncation="only_second",
            max_length=self.max_length,
        )
        names = list(encoding.keys())
        return [{name: encoding[name][i] for name in names} for i in range(len(pairs))]

    def _fit_query(self, query: str) -> str:
        """The query, cut at a token boundary when it exceeds its share of ``max_length``."""
        available = self.max_length - self._special_tokens
        cap = max(1, int(available * self.settings.max_query_share))
        for _ in range(3):  # re-tokenizing a cut word can add a token; converge in a few steps
            tokens = self.tokenizer(query, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            offsets = tokens["offset_mapping"]
            if len(offsets) <= cap:
                return query
            query = query[: offsets[cap - 1][1]]
            cap -= 1
        return query

    def _forward(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        logits: torch.Tensor = self.model(**tensors).logits
        if self.score_mode == "logit":
            return logits[:, 0]
        if self.score_mode == "sigmoid":
            return torch.sigmoid(logits[:, 0 if self.num_labels == 1 else self.settings.relevant_label])
        return torch.softmax(logits.float(), dim=-1)[:, self.settings.relevant_label]


class LLMReranker(_TorchReranker):
    """A causal LM used as a cross-encoder: score = P(yes) / (P(yes) + P(no)) at the last position.

    The prompt comes from ``llm_template``; batches are left-padded with
    position ids counted from the first real token, so a pair scores the same
    whatever it is batched with.
    """

    kind = "llm"

    def __init__(
        self, *, model: Any, tokenizer: Any, settings: RerankSettings, device: str, dtype: torch.dtype
    ) -> None:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        super().__init__(model=model, tokenizer=tokenizer, settings=settings, device=device, dtype=dtype)
        self.parts: PromptParts = split_template(settings.llm_template, instruction=settings.llm_instruction)
        self.yes_id = _single_token_id(tokenizer, settings.yes_token, "yes_token")
        self.no_id = _single_token_id(tokenizer, settings.no_token, "no_token")
        parameters = inspect.signature(model.forward).parameters
        self._keep_last_only = "logits_to_keep" in parameters

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "score": "p_yes",
            "template": self.settings.llm_template,
            "instruction": self.settings.llm_instruction,
            "yes_token": self.settings.yes_token,
            "no_token": self.settings.no_token,
        }

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[Encoded]:
        if not getattr(self.tokenizer, "is_fast", False):
            return [self._encode_piecewise(query, document) for query, document in pairs]
        rendered = [render_prompt(self.parts, query=query, document=document) for query, document in pairs]
        encoding = self.tokenizer(
            [text for text, _, _ in rendered],
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            verbose=False,  # over-long prompts are expected here; they are cut below
        )
        items: list[Encoded] = []
        for i, (_, query_span, document_span) in enumerate(rendered):
            ids = list(encoding["input_ids"][i])
            if len(ids) > self.max_length:
                ids = self._truncate(
                    ids, encoding["offset_mapping"][i], encoding["special_tokens_mask"][i], query_span, document_span
                )
            items.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
        return items

    def _encode_piecewise(self, query: str, document: str) -> Encoded:
        """For tokenizers without offsets: tokenize the template pieces, query and document apart."""
        ids = self.tokenizer("", add_special_tokens=True)["input_ids"]  # BOS, if the tokenizer adds one
        owners: list[Segment] = ["fixed"] * len(ids)
        for piece, slot in zip(self.parts.pieces, self.parts.slots, strict=True):
            text = piece if slot == "literal" else (query if slot == "query" else document)
            piece_ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            ids += piece_ids
            owners += ["fixed" if slot == "literal" else slot] * len(piece_ids)
        if len(ids) > self.max_length:
            keep_query, keep_document = pair_budget(
                n_fixed=owners.count("fixed"),
                n_query=owners.count("query"),
                n_document=owners.count("document"),
                max_length=self.max_length,
                max_query_share=self.settings.max_query_share,
            )
            ids = cut_segments(ids, owners, keep_query=keep_query, keep_document=keep_document)
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def _truncate(
        self,
        ids: list[int],
        offsets: Sequence[tuple[int, int]],
        special: Sequence[int],
        query_span: tuple[int, int],
        document_span: tuple[int, int],
    ) -> list[int]:
        owners = token_owners(offsets, special, query_span=query_span, document_span=document_span)
        keep_query, keep_document = pair_budget(
            n_fixed=owners.count("fixed"),
            n_query=owners.count("query"),
            n_document=owners.count("document"),
            max_length=self.max_length,
            max_query_share=self.settings.max_query_share,
        )
        return cut_segments(ids, owners, keep_query=keep_query, keep_document=keep_document)

    def _collate(self, items: list[Encoded]) -> dict[str, torch.Tensor]:
        tensors = super()._collate(items)
        # Left padding shifts absolute positions; count them from the first real token instead.
        tensors["position_ids"] = (tensors["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return tensors

    def _forward(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        extra: dict[str, Any] = {"use_cache": False}
        if self._keep_last_only:
            extra["logits_to_keep"] = 1
        logits = self.model(**tensors, **extra).logits[:, -1, :]
        pair = torch.stack([logits[:, self.no_id], logits[:, self.yes_id]], dim=-1).float()
        return torch.log_softmax(pair, dim=-1)[:, 1].exp()


def _cross_encoder_score_mode(settings: RerankSettings, num_labels: int) -> str:
    mode = settings.score
    if mode == "auto":
        mode = "logit" if num_labels == 1 else "softmax"
    if mode in ("softmax", "sigmoid") and num_labels > 1 and settings.relevant_label >= num_labels:
        raise RerankConfigError(
            f"relevant_label {settings.relevant_label} is out of range for a model with {num_labels} labels",
            field="relevant_label",
        )
    if mode == "softmax" and num_labels == 1:
        raise RerankConfigError(
            "score=softmax needs a model with two or more labels; use logit or sigmoid", field="score"
        )
    if mode == "logit" and num_labels > 1:
        raise RerankConfigError(f"score=logit needs a one-label model (this one has {num_labels})", field="score")
    return mode


def _single_token_id(tokenizer: Any, token: str, field: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise RerankConfigError(
            f"{field} {token!r} is {len(ids)} tokens ({ids}) for this tokenizer; "
            "set it to a string that is exactly one known token",
            field=field,
            token=token,
        )
    return int(ids[0])


def _resolve_max_length(config: Any, tokenizer: Any, setting: int | None) -> int:
    """The smallest of the tokenizer's limit, the model's positions and the setting."""
    limits: list[int] = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    positions = getattr(text_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if getattr(text_config, "model_type", "") in _POSITION_OFFSET_MODELS else 0
        limits.append(positions - offset)
    model_limit = min(limits) if limits else 512
    if setting is None:
        return min(model_limit, _DEFAULT_MAX_LENGTH_CAP)
    if setting > model_limit:
        logger.warning("max_length %s exceeds the model's limit %s; using %s", setting, model_limit, model_limit)
        return model_limit
    return setting
