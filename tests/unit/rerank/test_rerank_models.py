"""The two reranker families on tiny local models (built from configs, seeded; no network).

Each check compares with the same model run directly through transformers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rerank.errors import ModelLoadError, RerankConfigError  # noqa: E402
from rerank.loading import detect_kind, load_reranker  # noqa: E402
from rerank.models import CrossEncoderReranker, LLMReranker  # noqa: E402
from rerank.settings import RerankSettings  # noqa: E402
from tests.fixtures.rerank import (  # noqa: E402
    CORPUS,
    LLM_TEMPLATE,
    direct_cross_encoder_logits,
    direct_llm_scores,
)

QUERY = "waterproof case for running"
TOL = 1e-4


@pytest.fixture(scope="module")
def cross_encoder(cross_encoder_path: Path) -> CrossEncoderReranker:
    reranker = load_reranker(RerankSettings(model=str(cross_encoder_path), batch_size=3, device="cpu"))
    assert isinstance(reranker, CrossEncoderReranker)
    return reranker


@pytest.fixture(scope="module")
def llm(llm_reranker_path: Path) -> LLMReranker:
    reranker = load_reranker(RerankSettings(model=str(llm_reranker_path), llm_template=LLM_TEMPLATE, batch_size=3))
    assert isinstance(reranker, LLMReranker)
    return reranker


def test_cross_encoder_scores_equal_the_models_logit(
    cross_encoder: CrossEncoderReranker, cross_encoder_path: Path
) -> None:
    documents = list(CORPUS)
    scores = cross_encoder.score(QUERY, documents)
    direct = direct_cross_encoder_logits(cross_encoder_path, QUERY, documents)[:, 0].tolist()
    assert scores == pytest.approx(direct, abs=TOL)
    assert max(scores) - min(scores) > 0.1  # the tiny model tells documents apart
    assert cross_encoder.info()["score"] == "logit"
    assert cross_encoder.max_length == 64  # from the model (tokenizer and positions)


def test_two_label_cross_encoder_scores_the_relevant_class_probability(cross_encoder_2label_path: Path) -> None:
    reranker = load_reranker(RerankSettings(model=str(cross_encoder_2label_path)))
    documents = list(CORPUS)
    direct = torch.softmax(direct_cross_encoder_logits(cross_encoder_2label_path, QUERY, documents), dim=-1)[:, 1]
    assert reranker.score(QUERY, documents) == pytest.approx(direct.tolist(), abs=TOL)
    with pytest.raises(RerankConfigError):
        load_reranker(RerankSettings(model=str(cross_encoder_2label_path), score="logit"))


def test_batches_smaller_than_the_input_give_the_same_scores(cross_encoder: CrossEncoderReranker) -> None:
    documents = [" ".join(CORPUS[: 1 + i % len(CORPUS)]) for i in range(23)]  # 23 pairs, batch_size 3
    together = cross_encoder.score(QUERY, documents)
    alone = [cross_encoder.score(QUERY, [document])[0] for document in documents]
    assert together == pytest.approx(alone, abs=TOL)


def test_score_pairs_mixes_queries_and_reports_tokens(cross_encoder: CrossEncoderReranker) -> None:
    pairs = [("red shoes", CORPUS[0]), (QUERY, CORPUS[1]), ("tea", CORPUS[5])]
    scored = cross_encoder.score_pairs(pairs)
    assert scored.scores == pytest.approx([cross_encoder.score(q, [d])[0] for q, d in pairs], abs=TOL)
    assert all(t > 2 for t in scored.tokens)
    assert cross_encoder.score(QUERY, []) == []


def test_long_document_is_cut_and_the_query_kept(cross_encoder: CrossEncoderReranker, cross_encoder_path: Path) -> None:
    long_document = " ".join(CORPUS * 10)
    encoded = cross_encoder._encode([(QUERY, long_document)])[0]
    assert len(encoded["input_ids"]) == 64
    query_ids = cross_encoder.tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert encoded["input_ids"][1 : 1 + len(query_ids)] == query_ids  # [CLS] query [SEP] ...
    direct = direct_cross_encoder_logits(cross_encoder_path, QUERY, [long_document])[0, 0].item()
    assert cross_encoder.score(QUERY, [long_document])[0] == pytest.approx(direct, abs=TOL)


def test_max_doc_tokens_cuts_the_document_before_pairing(cross_encoder_path: Path) -> None:
    reranker = load_reranker(RerankSettings(model=str(cross_encoder_path), max_doc_tokens=5, device="cpu"))
    document = " ".join(CORPUS)
    kept = reranker.tokenizer(document, add_special_tokens=False)["input_ids"][:5]
    scored = reranker.score_pairs([(QUERY, document), (QUERY, CORPUS[0])])
    query_tokens = len(reranker.tokenizer(QUERY, add_special_tokens=False)["input_ids"])
    assert scored.tokens[0] == query_tokens + len(kept) + 3  # [CLS] query [SEP] document [SEP]
    cut = reranker.tokenizer.decode(kept)
    assert scored.scores[0] == pytest.approx(reranker.score(QUERY, [cut])[0], abs=TOL)
    assert reranker.info()["max_doc_tokens"] == 5
    uncut = load_reranker(RerankSettings(model=str(cross_encoder_path), max_doc_tokens=0, device="cpu"))
    assert uncut.score_pairs([(QUERY, document)]).tokens[0] == 64  # only max_length cuts


def test_a_too_long_query_is_cut_to_its_share(cross_encoder: CrossEncoderReranker) -> None:
    long_query = " ".join(CORPUS * 5)
    encoded = cross_encoder._encode([(long_query, "red running shoes")])[0]
    assert len(encoded["input_ids"]) <= 64
    second = encoded["token_type_ids"].index(1)
    query_tokens = second - 2  # [CLS] query [SEP]
    assert 0 < query_tokens <= int((64 - 3) * 0.5)
    assert (
        encoded["input_ids"][second:-1]
        == cross_encoder.tokenizer("red running shoes", add_special_tokens=False)["input_ids"]
    )


def test_llm_scores_equal_p_yes_against_no(llm: LLMReranker, llm_reranker_path: Path) -> None:
    documents = list(CORPUS)
    scores = llm.score(QUERY, documents)
    assert scores == pytest.approx(direct_llm_scores(llm_reranker_path, LLM_TEMPLATE, QUERY, documents), abs=TOL)
    assert all(0.0 < s < 1.0 for s in scores)
    assert max(scores) - min(scores) > 0.05
    assert llm.tokenizer.padding_side == "left"


def test_llm_left_padding_does_not_change_scores(llm: LLMReranker) -> None:
    documents = ["tea", " ".join(CORPUS[:4]), "usb c cable", " ".join(CORPUS[4:9])]
    together = llm.score(QUERY, documents)
    alone = [llm.score(QUERY, [document])[0] for document in documents]
    assert together == pytest.approx(alone, abs=TOL)


def test_llm_long_document_keeps_template_and_query(llm: LLMReranker) -> None:
    long_document = " ".join(CORPUS * 20)
    encoded = llm._encode([(QUERY, long_document)])[0]["input_ids"]
    assert len(encoded) == llm.max_length == 256
    suffix = llm.tokenizer("\nRelevant (yes or no):", add_special_tokens=False)["input_ids"]
    assert encoded[-len(suffix) :] == suffix  # the question the last position answers survives
    text = llm.tokenizer.decode(encoded)
    assert text.startswith(f"Query: {QUERY}\nDocument: ")
    assert 0.0 < llm.score(QUERY, [long_document])[0] < 1.0


def test_llm_too_long_query_is_cut_to_its_share(llm: LLMReranker) -> None:
    long_query = " ".join(CORPUS * 20)
    encoded = llm._encode([(long_query, "red running shoes")])[0]["input_ids"]
    assert len(encoded) <= 256
    assert llm.tokenizer.decode(encoded).endswith("Document: red running shoes\nRelevant (yes or no):")


def test_llm_default_template_works(llm_reranker_path: Path) -> None:
    reranker = load_reranker(RerankSettings(model=str(llm_reranker_path)))
    encoded = reranker._encode([(QUERY, "tea")])[0]["input_ids"]
    assert encoded[0] == reranker.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert 0.0 < reranker.score(QUERY, ["tea"])[0] < 1.0


def test_yes_token_must_be_one_token(llm_reranker_path: Path) -> None:
    with pytest.raises(RerankConfigError, match="yes_token"):
        load_reranker(
            RerankSettings(model=str(llm_reranker_path), llm_template=LLM_TEMPLATE, yes_token="waterproofness")
        )


def test_max_length_setting_is_capped_by_the_model(cross_encoder_path: Path) -> None:
    assert load_reranker(RerankSettings(model=str(cross_encoder_path), max_length=32)).max_length == 32
    assert load_reranker(RerankSettings(model=str(cross_encoder_path), max_length=4096)).max_length == 64


def test_detect_kind() -> None:
    config = transformers.PretrainedConfig(architectures=["BertForSequenceClassification"])
    assert detect_kind(config) == "cross_encoder"
    assert detect_kind(transformers.PretrainedConfig(architectures=["Qwen3ForCausalLM"])) == "llm"
    with pytest.raises(RerankConfigError, match="kind"):
        detect_kind(transformers.PretrainedConfig(architectures=["BertModel"]))


def test_missing_model_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="local checkpoint folder"):
        load_reranker(RerankSettings(model=str(tmp_path / "nope")))


def test_settings_are_bounded_and_strict() -> None:
    with pytest.raises(ValueError):
        RerankSettings(model="m", unknown_option=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        RerankSettings(model="m", batch_size=0)
    with pytest.raises(ValueError):
        RerankSettings(model="m", llm_template="no slots here")
    with pytest.raises(ValueError):
        RerankSettings(model="m", device="cpu", dtype="float16")
    assert RerankSettings(model="m").reported_model_id == "m"
    assert RerankSettings(model="m", model_id="name").reported_model_id == "name"


def test_llm_without_offsets_tokenizes_piecewise(llm: LLMReranker, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = ["tea", " ".join(CORPUS * 20)]
    fast = llm._encode([(QUERY, d) for d in documents])
    monkeypatch.setattr(type(llm.tokenizer), "is_fast", property(lambda self: False))
    slow = llm._encode([(QUERY, d) for d in documents])
    assert len(slow[1]["input_ids"]) == llm.max_length
    assert slow[1]["input_ids"][-5:] == fast[1]["input_ids"][-5:]  # the question at the end survives
    assert llm.tokenizer.decode(slow[0]["input_ids"]).startswith(f"Query: {QUERY}\nDocument: tea")
