"""Settings of the rerank deployable: one object, every field bounded and described.

Read from keyword arguments or from ``ESHYBRID_RERANK_<FIELD>`` environment
variables (``ESHYBRID_RERANK_MODEL=/models/bge-reranker-base``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.services.wire import niceness_field
from rerank.errors import RerankConfigError

__all__ = ["RerankSettings", "DEFAULT_LLM_TEMPLATE", "DEFAULT_LLM_INSTRUCTION"]

# The Qwen3-Reranker prompt: a chat turn asking for "yes" or "no", with the
# assistant's (empty) thinking block already closed so the next token is the answer.
DEFAULT_LLM_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)
DEFAULT_LLM_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

# The document budget: the smallest of (64, 96, 128, 192) tokens losing <= 0.005 nDCG@10 on the ESCI dev
# queries against the uncut text (the rule and the run: bench/rerank_doc_budget.py, with all-MiniLM-L6-v2 as the
# stand-in scorer: no real cross-encoder ships offline). Run 2026-12-06: uncut 0.7775, 64 tokens 0.7923 (no loss:
# a product's title and first lines carry its relevance), 96 0.7858, 128 0.7876, 192 0.7757.
_DEFAULT_MAX_DOC_TOKENS = 64

ModelKind = Literal["auto", "cross_encoder", "llm"]


class RerankSettings(BaseSettings):
    """Everything the rerank service needs to load a model and serve it."""

    model_config = SettingsConfigDict(
        env_prefix="ESHYBRID_RERANK_", extra="forbid", frozen=True, protected_namespaces=()
    )

    # --- the model -----------------------------------------------------------------
    model: str = Field(min_length=1, description="local checkpoint folder or hub id of the reranker")
    revision: str | None = Field(default=None, description="hub revision (branch, tag or commit) to load")
    model_id: str | None = Field(
        default=None, min_length=1, description="name reported by /info and responses; default: `model`"
    )
    offline: bool = Field(default=True, description="load from local files / the HF cache only (HF_HUB_OFFLINE=1)")
    kind: ModelKind = Field(
        default="auto",
        description="cross_encoder (sequence classification) or llm (causal LM yes/no); auto reads the config",
    )
    trust_remote_code: bool = Field(default=False, description="allow custom modelling code from the checkpoint")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when available")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="auto: bfloat16 (or float16) on GPU, float32 on CPU"
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="intra-op threads per replica (torch and ONNX Runtime); default on CPU: the Ray cluster's CPUs "
        "divided among the replicas (one replica: all of them), else the CPUs given to the replica",
    )
    backend: Literal["torch", "onnx"] = Field(
        default="torch",
        description="torch; onnx: ONNX Runtime on CPU, cross-encoders only, exported once from the local folder",
    )
    quantize: Literal["none", "int8"] = Field(
        default="none", description="int8: dynamic int8 MatMul weights (backend onnx only); none: full precision"
    )
    backend_cache_dir: str | None = Field(
        default=None, description="where exported models are cached; default <model folder>/.eshybrid"
    )
    max_length: int | None = Field(
        default=None, ge=8, le=131072, description="tokens per (query, document) pair; default: the model's limit"
    )
    max_query_share: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="share of max_length a query may use before it is cut"
    )
    max_doc_tokens: int = Field(
        default=_DEFAULT_MAX_DOC_TOKENS,
        ge=0,
        le=131072,
        description="tokens a document keeps before it is paired with the query (chosen by "
        "bench/rerank_doc_budget.py); 0: no cut but max_length",
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="pairs per forward pass (sorted by length)")
    # --- cross-encoders --------------------------------------------------------------
    score: Literal["auto", "logit", "sigmoid", "softmax"] = Field(
        default="auto",
        description="cross-encoder score: auto = the logit for one label, softmax of relevant_label otherwise",
    )
    relevant_label: int = Field(default=1, ge=0, le=1000, description="class index of 'relevant' (softmax score)")
    # --- LLM rerankers -----------------------------------------------------------------
    llm_template: str = Field(
        default=DEFAULT_LLM_TEMPLATE,
        min_length=1,
        description="prompt with {query} and {document} (and optionally {instruction}) placeholders",
    )
    llm_instruction: str = Field(default=DEFAULT_LLM_INSTRUCTION, description="fills {instruction} in the template")
    yes_token: str = Field(default="yes", min_length=1, description="token whose probability is the score")
    no_token: str = Field(default="no", min_length=1, description="token the yes token is weighed against")
    # --- batching, limits and backpressure (names as in the embedding service) ---------
    max_documents_per_request: int = Field(default=1000, ge=1, le=100_000, description="documents per request")
    max_query_chars: int = Field(default=8192, ge=1, le=1_000_000, description="characters per query")
    max_chars_per_document: int = Field(default=100_000, ge=1, le=10_000_000, description="characters per document")
    max_batch_pairs: int = Field(
        default=256, ge=1, le=100_000, description="pairs gathered across concurrent requests per @serve.batch call"
    )
    batch_wait_timeout_s: float = Field(default=0.005, ge=0.0, le=1.0, description="how long a batch waits to fill")
    max_pending_pairs: int = Field(
        default=8192, ge=1, le=10_000_000, description="pairs waiting in one replica before it answers 429"
    )
    max_ongoing_requests: int = Field(default=32, ge=1, le=10_000, description="requests one replica works on at once")
    max_queued_requests: int = Field(
        default=128, ge=1, le=1_000_000, description="requests queued per proxy/handle before 429 (Ray Serve)"
    )
    retry_after_s: float = Field(default=1.0, ge=0.0, le=3600.0, description="Retry-After sent with 429")
    api_key: SecretStr | None = Field(
        default=None, description="bearer token required on /v1/rerank, /info and /metrics (/healthz stays open)"
    )
    # --- scaling and HTTP ------------------------------------------------------------
    replicas: int = Field(default=1, ge=1, le=1024, description="fixed replica count")
    num_cpus_per_replica: float = Field(default=1.0, ge=0.0, le=1024.0, description="Ray CPUs reserved per replica")
    num_gpus_per_replica: float = Field(
        default=1.0, gt=0.0, le=16.0, description="Ray GPUs per replica when it runs on GPU"
    )
    niceness: int | None = niceness_field()
    app_name: str = Field(default="rerank", min_length=1, max_length=100, description="Ray Serve application name")
    route_prefix: str = Field(
        default="/rerank", pattern=r"^/[A-Za-z0-9_\-/]*$", description="HTTP route prefix of the app"
    )
    host: str = Field(default="127.0.0.1", description="HTTP bind address of the Serve proxy")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port of the Serve proxy")

    @model_validator(mode="after")
    def _check(self) -> RerankSettings:
        if self.kind != "cross_encoder":
            for placeholder in ("{query}", "{document}"):
                if placeholder not in self.llm_template:
                    raise RerankConfigError(
                        f"llm_template must contain {placeholder}", field="llm_template", placeholder=placeholder
                    )
        if self.yes_token == self.no_token:
            raise RerankConfigError("yes_token and no_token must differ", field="yes_token")
        if self.device == "cpu" and self.dtype in ("float16", "bfloat16"):
            # Half precision on CPU is slower than float32 and loses accuracy for nothing.
            raise RerankConfigError(f"dtype {self.dtype} needs a GPU; use float32 on CPU", field="dtype")
        if self.quantize == "int8" and self.backend != "onnx":
            raise RerankConfigError("quantize int8 needs backend onnx", field="quantize")
        if self.backend == "onnx" and self.device == "cuda":
            raise RerankConfigError("backend onnx runs on CPU only; on a GPU use backend torch", field="backend")
        if self.backend == "onnx" and self.dtype not in ("auto", "float32"):
            raise RerankConfigError(f"backend onnx runs float32 (or int8), not dtype {self.dtype}", field="dtype")
        if self.backend == "onnx" and self.kind == "llm":
            raise RerankConfigError("backend onnx serves cross-encoders; LLM rerankers run on torch", field="backend")
        return self

    @property
    def reported_model_id(self) -> str:
        """The id reported to clients (and used in score cache keys)."""
        return self.model_id or self.model
