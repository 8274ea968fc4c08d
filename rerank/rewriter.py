"""A causal LM as a query rewriter: ``rewrite(text) -> text`` from a prompt template, greedy decoding.

It reuses the rerank machinery (device and dtype choice, offline loading, the typed errors) and fits
the search side's hook (``HybridSearch(rewriter=load_rewriter(path))``; the search runs it within
``rewriter_timeout_s`` and falls back to the original text). Real checkpoints are a local folder the
user gives; the tests use a tiny causal LM built from a transformers config with a fixed seed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from rerank.errors import ModelLoadError, RerankConfigError
from rerank.loading import choose_device, choose_dtype

__all__ = ["DEFAULT_REWRITE_TEMPLATE", "LMQueryRewriter", "load_rewriter"]

logger = logging.getLogger(__name__)

DEFAULT_REWRITE_TEMPLATE = (
    "Rewrite the shopper's search query: fix spelling mistakes, keep brands, sizes and model numbers.\n"
    "Query: {query}\nRewritten:"
)


class LMQueryRewriter:
    """Greedy generation of at most ``max_new_tokens`` after the prompt; the first line is the rewrite.

    Args:
        model, tokenizer: a loaded causal LM and its tokenizer.
        template: the prompt, with one ``{query}`` placeholder.
        max_new_tokens: generation bound (a query is short).
        device: where the model is.
    """

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        template: str = DEFAULT_REWRITE_TEMPLATE,
        max_new_tokens: int = 24,
        device: str = "cpu",
    ) -> None:
        if template.count("{query}") != 1:
            raise RerankConfigError("the rewrite template needs exactly one {query} placeholder", field="template")
        if not 1 <= max_new_tokens <= 256:
            raise RerankConfigError("max_new_tokens must be within 1..256", field="max_new_tokens")
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.model_id = str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)

    def rewrite(self, text: str) -> str:
        prompt = self.template.replace("{query}", text)
        encoded = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            output = self.model.generate(
                **encoded, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad
            )
        new_tokens = output[0, encoded["input_ids"].shape[1] :]
        answer = str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))
        return answer.strip().split("\n", 1)[0].strip()


def load_rewriter(
    model: str,
    *,
    template: str = DEFAULT_REWRITE_TEMPLATE,
    max_new_tokens: int = 24,
    device: str = "auto",
    dtype: str = "auto",
    offline: bool = True,
) -> LMQueryRewriter:
    """Load a causal LM checkpoint folder as a query rewriter.

    Raises:
        ModelLoadError: the checkpoint or its tokenizer cannot be loaded.
        RerankConfigError: bad template, bound, device or dtype.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 - heavy, only when loading

    chosen = choose_device(device)
    torch_dtype = choose_dtype(dtype, chosen)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=offline)
        lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, local_files_only=offline)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(
            f"cannot load rewriter {model!r}: {e}. Pass a local checkpoint folder.", model=model
        ) from e
    lm.to(chosen)
    lm.eval()
    logger.info("loaded query rewriter %s on %s (%s)", model, chosen, torch_dtype)
    return LMQueryRewriter(
        model=lm, tokenizer=tokenizer, template=template, max_new_tokens=max_new_tokens, device=chosen
    )
