"""The training runs themselves: sentence-transformers' trainers and losses, not a hand-written loop.

* :func:`fit_embedder` - ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss`` on
  ``(query, positive, hard negative)`` triplets (in-batch negatives besides the mined one; a no-duplicates
  sampler so a batch never holds the same text twice).
* :func:`prune_layers` + :func:`distil_student` - a student keeping K of the teacher's layers, trained to
  reproduce the teacher's embeddings of the shop's own texts (``MSELoss``, as sentence-transformers'
  distillation examples do) before it is fine-tuned like the full model.
* :func:`fit_reranker` - a ``CrossEncoder`` (one logit) initialised from the base encoder's weights with a
  fresh, seeded head, ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss`` on soft graded labels. Pairs are
  padded per batch by the trainer's collator (dynamic padding), never to a fixed length.

torch, transformers, datasets and sentence-transformers are imported inside the functions (the ``train``
extra): this module is one of the two training entry points the import contract lets import torch.

The embedder's hyperparameters are not searched (rule fixed before any run, README "Models that learn the
shop"): the trainer's own defaults (learning rate 5e-5, linear decay) with a 10% warm-up, batch 32, and as many
epochs as fit the stated time budget on 2 CPU cores (embedder 2, distillation as the embedder; see
``bench/train.py``).

The 3-layer student's kNN (0.614 held out, base 0.771) points at its distillation: 63 steps at 5e-5 from layers
[0, 2, 4] that never produced the final embedding. A dev round, its rule written before its run (2026-12-07):
the distillation's learning rate in {5e-5, 2e-4} (same 1,000 texts, 2 epochs: no extra bench time), then the
usual fine-tune on the fit side of the training queries (80/20, seed 13); the higher dev kNN nDCG@10 (exact
cosine over the whole corpus) wins, a tie within 0.005 keeps 5e-5. Run (58 fit / 14 dev queries; the base's dev
kNN 0.697): 5e-5 -> 0.587, 2e-4 -> 0.595, so :data:`DISTIL_LEARNING_RATE` is 2e-4. Still far below the base:
the distillation MSE ends at 0.0018 per dimension (cosine to the teacher ~0.66), so longer distillation (more
texts, the queries among them) is the next thing to try, on the same dev split.

A second dev round, its rule written here before its run (2026-12-07, same dev split, same distillation rate
2e-4, 2 epochs, then the same fine-tune): the number of corpus texts the student is distilled on, in {1,000
(the default), 3,000, 6,764 (every corpus text)}, drawn as before (``random.Random(seed)``); the highest dev kNN
nDCG@10 wins, but a larger sample must beat the next smaller one by more than 0.005 (else the smaller, cheaper
one stays), and none whose extra distillation time (measured in the round) would take ``bench/train.py`` past 25
minutes (12 minutes with 1,000 texts) is eligible. Run (58 fit / 14 dev queries, load 1.4-4): 1,000 texts ->
dev kNN 0.5948 (distilled in 176 s under load; the first round's 0.595 again), 3,000 -> 0.6160 (452 s), 6,764 ->
0.6307 (417 s at a lower load; about +9 minutes of bench time with the teacher's own encoding, so ~21 in all). Every
corpus text wins: :data:`connector.train.data.DISTIL_TEXTS` is 10,000 (a sample of at most that many; every text of a smaller corpus,
as measured; a corpus above 10,000 texts was not measured). The cosine to the teacher is still far from 1:
the student kNN stays well below the base's.

A third dev round, its rule written here before its run (2026-12-07, same dev split, every corpus text, then the
same fine-tune): the distillation's length and rate, {2 epochs at 2e-4 (now: dev kNN 0.6307, the second round's
figure, not re-run), 4 epochs at 2e-4, 2 epochs at 6e-4}. The highest dev kNN nDCG@10 wins if it beats 0.6307 by
more than 0.005 (else nothing moves); 4 epochs only while its measured extra distillation time keeps
``bench/train.py`` under 27 minutes (18.8 now). Both changes winning is not a license to combine them untested:
the combination would need its own run. Run (58 fit / 14 dev, every corpus text, load ~2): 2 epochs at 6e-4 ->
dev kNN 0.6533 (distilled in 408 s, cosine to the teacher 0.881); 4 epochs at 2e-4 -> 0.6534 (787 s: +370 s,
bench ~25 min; cosine 0.873). Both beat 0.6307 by more than 0.005; the rule takes the highest, 4 epochs at 2e-4
(:data:`DISTIL_EPOCHS`), by 0.0001 - a tie within noise the rule did not foresee (it had no tie clause; the
cheaper 6e-4 would have been the sensible tie-break, not applied after the fact).

A fourth dev round, its rule also written before its run (2026-12-07): the fixed embedder parameters above
missed (held out: kNN -0.008, hybrid +0.009 in ``bench/train.py``; ~30 steps at 5e-5 barely move the model), so the
full model's fine-tune is chosen on the same dev split (58 fit / 14 dev, the same mined triplets) among {5e-5 x 2
epochs (now), 1e-4 x 2, 2e-4 x 2, 5e-5 x 4}: the highest dev kNN nDCG@10 (exact cosine over the whole corpus)
wins if it beats the current one's by more than 0.005, else nothing moves. The student's fine-tune keeps 5e-5 x 2
(its own rounds were run with it). Run (load ~2; 464 triplets): the base's dev kNN 0.6974; 5e-5 x 2 -> 0.6800
(30 steps), 1e-4 x 2 -> 0.6790, 2e-4 x 2 -> 0.6470, 5e-5 x 4 -> 0.6698. None beats the current one, so nothing
moves; and every fine-tune is *below the untuned base* on the dev queries (-0.017 at best), the more so the harder
it trains: 58 queries' triplets pull the model toward their own products and away from the rest. The +0.02 goal
needs more judged queries than this shop has (click-derived judgments, #25's loop), not other parameters.

A fifth dev round, its rule written before its run (2026-12-07), to try the combination the third round left
untested: 4 epochs at 6e-4 against the default (4 at 2e-4: dev kNN 0.6534, the third round's figure, not re-run),
same split, texts and fine-tune; 6e-4 replaces :data:`DISTIL_LEARNING_RATE` only if its dev kNN beats 0.6534 by
more than 0.005 (the same epochs: no extra bench time). Run (load ~2): 4 epochs at 6e-4 -> dev kNN **0.6725**
(distilled in 825 s, cosine to the teacher 0.923): +0.019, so :data:`DISTIL_LEARNING_RATE` is 6e-4.

A sixth dev round, its rule written before its run (2026-12-07, a later session): the fourth round found every
fine-tune of the *full* model below the untuned base on the dev queries, so the student's fine-tune after its
distillation is chosen the same way: one distillation (4 epochs at 6e-4, every corpus text, seed 13), then each of
{5e-5 x 2 epochs (now), 2e-5 x 2, 5e-5 x 1} from that same distilled student, on the same 58 fit / 14 dev
split and triplets. The current one is re-measured in the run; another wins only if its dev kNN nDCG@10 beats it by
more than 0.005 (the highest such; between two within 0.005 of each other, the one with fewer steps). The
distilled student's own dev kNN before any fine-tune is printed as a diagnosis, not an arm (the issue asks the
student to be fine-tuned on the judgments). No arm costs more bench time than the current one.
Run (load ~2, distilled in 964 s, cosine to the teacher 0.923 as in the fifth round): before any fine-tune dev kNN
0.666; 5e-5 x 2 -> **0.6725** (the fifth round's figure again: the runs are deterministic), 2e-5 x 2 -> 0.665,
5e-5 x 1 -> 0.666. Nothing moves. Unlike the full model's, the student's fine-tune helps (+0.0065 on the dev
queries), and the more it trains the more it helps.

A seventh dev round follows that direction, its rule written before its run (2026-12-07): from one distillation
as above, the student's fine-tune in {5e-5 x 2 (now; 0.6725), 1e-4 x 2, 5e-5 x 4}; another wins only if its dev
kNN beats the current one (re-measured) by more than 0.005 (the highest such; two within 0.005 of each other: the
fewer steps). 5e-5 x 4 adds ~30 steps (about a minute) to ``bench/train.py``, within its 30 minutes.
Run (load ~1-2; distilled in 833 s, cosine 0.923): 5e-5 x 2 -> 0.6725 (again), **1e-4 x 2 -> 0.6894**, 5e-5 x 4 ->
0.6816. 1e-4 x 2 beats the current one by 0.017: :data:`STUDENT_SETTINGS` (same steps, no extra bench time). The
full model's fine-tune keeps 5e-5 (its own, fourth, round).

The reranker is different. Trained first pointwise (``BinaryCrossEntropyLoss`` on grade/3 labels over the
hybrid window, 5e-5, one epoch), it ranked the held-out queries' top 50 no better than a random order (nDCG@10
0.39 against the hybrid's 0.80; score direction, labels, texts and the saved folder were checked and are right):
on those held-out queries (a diagnosis of the first pass's model; nothing was chosen on them) the
documents judged relevant for the query sat at mean rank 24.9 of 50 (random: 24.5), while the
*training* queries' positives (present as distractors) sat at 21.2. The pointwise loss let the model learn which
*products* are good instead of which match the query (this corpus is the union of the judged products, so every
training positive turns up in other queries' windows). With a higher rate it fitted the training queries better
and the dev queries worse (1e-4: dev 0.364, 3e-4: dev 0.315, the dev hybrid order 0.654; rule below).

So the reranker trains with the cross-encoder ``MultipleNegativesRankingLoss`` on the embedder's graded triplets
mined from the hybrid window (:func:`connector.train.examples.embedder_triplets`): other queries' positives are
its in-batch negatives, so a document prior lowers no loss. Its learning rate is chosen by a rule written before
the run (2026-12-07): the training queries split again (seed 13, 80% fit / 20% dev; the held-out queries
untouched), one epoch at 96 tokens for each candidate rate in {1e-4, 3e-4}; the higher dev pool nDCG@10 over the
hybrid top 50 wins (a tie within 0.005: the lower rate). 96 tokens: serving cuts a document to 64 tokens
(``max_doc_tokens``) and a query to half the pair, so 96 covers what the served model reads, at 3/4 of 128's
cost. The run: see :data:`RERANKER_SETTINGS`. A second round, its rule also written before its run: epochs in
{1, 3} at the chosen rate on the same dev split; 3 epochs only when their dev nDCG@10 is higher by more than
0.005 (they cost three times the training time). Run: 3 epochs fitted the fit side past its hybrid order (0.743
against 0.733) and lost on the dev queries (0.596 against one epoch's 0.613), so one epoch stays.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connector.errors import ConfigError

__all__ = [
    "DISTIL_EPOCHS",
    "DISTIL_LEARNING_RATE",
    "distil_settings",
    "EMBEDDER_SETTINGS",
    "STUDENT_SETTINGS",
    "RERANKER_SETTINGS",
    "FitResult",
    "FitSettings",
    "LocalEmbedder",
    "distil_student",
    "encode",
    "fit_embedder",
    "fit_reranker",
    "load_embedder",
    "new_cross_encoder",
    "prune_layers",
    "save_cross_encoder",
    "seed_everything",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """One training run's parameters (recorded in the model card)."""

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 13
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ConfigError("epochs must be > 0", field="epochs")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 (in-batch negatives need company)", field="batch_size")
        if not 0 < self.learning_rate < 1:
            raise ConfigError("learning_rate must be within (0, 1)", field="learning_rate")
        if not 8 <= self.max_length <= 512:
            raise ConfigError("max_length must be within 8..512 tokens", field="max_length")


EMBEDDER_SETTINGS = FitSettings(epochs=2.0)
"""The embedder's run: the trainer's defaults, 2 epochs, 128 tokens (see the module doc)."""

STUDENT_SETTINGS = FitSettings(epochs=2.0, learning_rate=1e-4)
"""A student's fine-tune after its distillation: the embedder's run at 1e-4, chosen on a dev split (the module
doc's seventh round: dev kNN 0.6725 -> 0.6894, the same 30 steps)."""

DISTIL_LEARNING_RATE = 6e-4
"""The student's distillation rate (its epochs :data:`DISTIL_EPOCHS`, the rest as the embedder's run), chosen on a
dev split (the module doc's fifth round)."""

DISTIL_EPOCHS = 4.0
"""The student's distillation epochs over its texts (its fine-tune keeps the embedder's), chosen on a dev split
(the module doc's third round)."""


def distil_settings(settings: FitSettings) -> FitSettings:
    """The student's distillation run: ``settings`` (the embedder's: batch, length, seed, threads) at the
    distillation's own rate and epochs; the student's fine-tune afterwards keeps ``settings`` as given."""
    return replace(settings, learning_rate=DISTIL_LEARNING_RATE, epochs=DISTIL_EPOCHS)


# Chosen by the dev-split rule of the module doc (run 2026-12-07, ESCI subset, 58 fit / 14 dev queries, 464
# triplets, 15 steps): dev pool nDCG@10 over the hybrid top 50: 1e-4 -> 0.613, 3e-4 -> 0.545 (the dev queries'
# hybrid order: 0.654; the pointwise first version: 0.364 at 1e-4). Below the hybrid order still; 3 epochs
# overfit (dev 0.596, see the module doc).
RERANKER_SETTINGS = FitSettings(epochs=1.0, learning_rate=1e-4, max_length=96)
"""The reranker's run: one epoch at the dev-chosen learning rate, 96 tokens (see the module doc)."""


@dataclass(frozen=True)
class FitResult:
    """What one run took."""

    seconds: float
    steps: int
    examples: int


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, numpy and torch (a fresh head's weights are drawn before the trainer seeds anything)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_embedder(path: str | Path, *, max_length: int | None = None) -> Any:
    """A ``SentenceTransformer`` from a local folder, on CPU unless a GPU is there."""
    _offline()
    from sentence_transformers import SentenceTransformer

    if not Path(path).is_dir():
        raise ConfigError(f"{path} is not a model folder; give a sentence-transformers folder", field="base")
    model = SentenceTransformer(str(path), local_files_only=True)
    if max_length is not None:
        model.max_seq_length = min(max_length, model.max_seq_length or max_length)
    return model


def encode(model: Any, texts: Sequence[str], *, batch_size: int = 64) -> Any:
    """Unit-length embeddings (numpy), in input order (sentence-transformers sorts by length inside)."""
    return model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def _args(kind: str, settings: FitSettings, out_dir: str, **extra: Any) -> Any:
    from sentence_transformers import CrossEncoderTrainingArguments, SentenceTransformerTrainingArguments

    args_class: Any = CrossEncoderTrainingArguments if kind == "cross_encoder" else SentenceTransformerTrainingArguments
    return args_class(
        output_dir=out_dir,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not _has_cuda(),
        **extra,
    )


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _train(trainer_class: Any, model: Any, args: Any, dataset: Any, loss: Any) -> int:
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, loss=loss)
    output = trainer.train()
    return int(output.global_step)


def fit_embedder(
    model: Any,
    triplets: Sequence[tuple[str, str, str]],
    *,
    settings: FitSettings,
) -> FitResult:
    """Fine-tune ``model`` (a loaded ``SentenceTransformer``) in place on ``(query, positive, negative)`` texts."""
    if not triplets:
        raise ConfigError("no training triplets: the training queries have no judged positive with a hard negative")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    seed_everything(settings.seed, settings.threads)
    dataset = Dataset.from_dict(
        {
            "anchor": [t[0] for t in triplets],
            "positive": [t[1] for t in triplets],
            "negative": [t[2] for t in triplets],
        }
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eshybrid-train-") as tmp:
        args = _args("embedder", settings, tmp, batch_sampler=BatchSamplers.NO_DUPLICATES)
        steps = _train(SentenceTransformerTrainer, model, args, dataset, MultipleNegativesRankingLoss(model))
    return FitResult(round(time.perf_counter() - started, 2), steps, len(triplets))


def prune_layers(model: Any, layers: int) -> list[int]:
    """Keep ``layers`` of the model's transformer layers, evenly spread from the first (in place).

    Returns:
        The indices of the teacher's layers kept.
    """
    import torch

    auto_model = model[0].auto_model
    encoder_layers = auto_model.encoder.layer
    total = len(encoder_layers)
    if not 1 <= layers < total:
        raise ConfigError(f"--layers must be within 1..{total - 1} (the base has {total})", field="layers")
    keep = sorted({round(i * total / layers) for i in range(layers)})
    auto_model.encoder.layer = torch.nn.ModuleList([encoder_layers[i] for i in keep])
    auto_model.config.num_hidden_layers = len(keep)
    return keep


def distil_student(
    student: Any,
    texts: Sequence[str],
    teacher_embeddings: Any,
    *,
    settings: FitSettings,
) -> FitResult:
    """Train ``student`` to reproduce the teacher's (unit-length) embeddings of ``texts`` (MSE)."""
    if not texts:
        raise ConfigError("no texts to distil on")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MSELoss

    seed_everything(settings.seed, settings.threads)
    dataset = Dataset.from_dict({"text": list(texts), "label": [list(map(float, row)) for row in teacher_embeddings]})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eshybrid-distil-") as tmp:
        args = _args("embedder", settings, tmp)
        steps = _train(SentenceTransformerTrainer, student, args, dataset, MSELoss(student))
    return FitResult(round(time.perf_counter() - started, 2), steps, len(texts))


def new_cross_encoder(base: str | Path, *, max_length: int, seed: int) -> Any:
    """A one-logit ``CrossEncoder`` with the base encoder's weights and a fresh head drawn from ``seed``."""
    _offline()
    from sentence_transformers import CrossEncoder

    if not Path(base).is_dir():
        raise ConfigError(f"{base} is not a model folder; give a sentence-transformers or transformers folder")
    seed_everything(seed)
    model = CrossEncoder(str(base), num_labels=1, max_length=max_length, local_files_only=True)
    return model


def fit_reranker(
    model: Any,
    triplets: Sequence[tuple[str, str, str]],
    *,
    settings: FitSettings,
    in_batch_negatives: int = 4,
) -> FitResult:
    """Fine-tune a ``CrossEncoder`` in place on ``(query, positive, hard negative)`` texts.

    The cross-encoder's ``MultipleNegativesRankingLoss``: each query must pick its positive out of its mined hard
    negative and ``in_batch_negatives`` other queries' positives. Those in-batch negatives are what make the model
    read the query: a document seen as a positive is as often a negative for another query, so a prior on the
    document alone (which product is "good") lowers no loss.
    """
    if not triplets:
        raise ConfigError("no training triplets: the training queries have no judged positive with a hard negative")
    from datasets import Dataset
    from sentence_transformers import CrossEncoderTrainer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    seed_everything(settings.seed, settings.threads)
    dataset = Dataset.from_dict(
        {
            "query": [t[0] for t in triplets],
            "positive": [t[1] for t in triplets],
            "negative": [t[2] for t in triplets],
        }
    )
    loss = MultipleNegativesRankingLoss(model, num_negatives=in_batch_negatives)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eshybrid-rerank-") as tmp:
        args = _args("cross_encoder", settings, tmp, batch_sampler=BatchSamplers.NO_DUPLICATES)
        steps = _train(CrossEncoderTrainer, model, args, dataset, loss)
    return FitResult(round(time.perf_counter() - started, 2), steps, len(triplets))


def save_cross_encoder(model: Any, out: Path, *, max_length: int) -> None:
    """Save a folder ``serve rerank --model`` loads (``AutoModelForSequenceClassification``), its length kept."""
    model.tokenizer.model_max_length = max_length
    model.save(str(out))


class LocalEmbedder:
    """A ``SentenceTransformer`` in this process behind the embedder protocol (search, backfill, benches)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in encode(self.model, [text])[0]]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in encode(self.model, texts)]
