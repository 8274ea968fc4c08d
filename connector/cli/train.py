"""``eshybrid train embedder | reranker | switch``: models that learn the shop, and the gated model switch.

The library (``connector.train``, torch and sentence-transformers) is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from connector.cli.common import add_command_group, add_managed_cluster_flags, managed_cluster_settings, split_csv
from connector.train.data import DISTIL_TEXTS

__all__ = ["register"]


def _add_common(parser: argparse.ArgumentParser, *, out: bool = True) -> None:
    parser.add_argument(
        "--dataset", required=True, help="BEIR folder of judgments (corpus.jsonl, queries.jsonl, qrels/)"
    )
    parser.add_argument("--index", required=True, help="the shop's index (candidates are mined from it)")
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    parser.add_argument(
        "--embed-url", help="embedding service of the index's current model (default $ESHYBRID_EMBED_URL)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    if not out:
        return
    parser.add_argument("--out", required=True, help="the model folder to write (new or empty)")
    parser.add_argument("--base", help="model folder to start from (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--fields", default="title,text", help="document fields of the text (default title,text)")
    parser.add_argument("--train-fraction", type=float, default=0.7, help="share of judged queries trained on (0.7)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the query split and the training (13)")
    parser.add_argument("--epochs", type=float, help="passes over the examples (embedder 2, reranker 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (32)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="peak learning rate (embedder 5e-5; a --layers student 1e-4; reranker 1e-4; chosen on dev splits)",
    )
    parser.add_argument(
        "--max-length", type=int, help="tokens per text or pair while training (embedder 128, reranker 96)"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = add_command_group(
        subparsers,
        "train",
        help="fine-tune the embedder or a cross-encoder on the shop's judgments; switch models with a gate",
        description="Train on a BEIR folder of judgments (held-out queries scored, never trained on), "
        "then switch the index to the new model only when it is not worse.",
    )
    emb = actions.add_parser("embedder", help="fine-tune a bi-encoder with hard negatives mined from the index")
    _add_common(emb)
    emb.add_argument("--layers", type=int, help="a student keeping K of the base's layers (distilled first)")
    emb.add_argument("--depth", type=int, default=30, help="candidates mined per leg and query (30)")
    emb.add_argument("--max-positives", type=int, default=8, help="positives per training query (8)")
    emb.add_argument(
        "--distil-texts",
        type=int,
        default=DISTIL_TEXTS,
        help=f"corpus texts the student is distilled on, at most (default {DISTIL_TEXTS}: every text of a smaller corpus)",
    )
    emb.set_defaults(func=_train_embedder)
    rr = actions.add_parser("reranker", help="train a cross-encoder from the base encoder on the hybrid window")
    _add_common(rr)
    rr.add_argument("--window", type=int, default=50, help="hybrid top-k it reranks (50)")
    rr.add_argument(
        "--max-positives", type=int, default=8, help="positives per training query, each with a hard negative (8)"
    )
    rr.set_defaults(func=_train_reranker)
    sw = actions.add_parser("switch", help="compare old and new model on the judgments; switch (0004) if not worse")
    _add_common(sw, out=False)
    sw.add_argument("--new-vector-field", required=True, help="the shadow field the new model filled (0003 + backfill)")
    sw.add_argument("--new-embed-url", required=True, help="embedding service of the new model")
    sw.add_argument("--new-model", help="the new model's folder: compare on its held-out queries only")
    sw.add_argument("--margin", type=float, default=0.01, help="nDCG@10 the new model may lose per mode (0.01)")
    sw.add_argument("--force", action="store_true", help="switch even when the gate refuses")
    sw.set_defaults(func=_switch)


def _search(args: argparse.Namespace, cluster: Any) -> Any:
    from connector.cluster.settings import ConnectionSettings
    from connector.search import HybridSearch
    from connector.services.embedding import EmbeddingClient

    embedder = EmbeddingClient.from_settings(
        ConnectionSettings(), args.embed_url, missing="mining the index's vector candidates embeds the query"
    )
    return HybridSearch(cluster, args.index, embedder=embedder)


def _cluster(args: argparse.Namespace) -> Any:
    from connector.cluster.settings import ConnectionSettings

    return managed_cluster_settings(ConnectionSettings(), args).connect(args.url)


def _fit_settings(args: argparse.Namespace, defaults: Any) -> Any:
    """``defaults`` (``EMBEDDER_SETTINGS`` or ``RERANKER_SETTINGS``) with the flags given on the command line."""
    import dataclasses

    return dataclasses.replace(
        defaults,
        epochs=args.epochs or defaults.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate or defaults.learning_rate,
        max_length=args.max_length or defaults.max_length,
        seed=args.seed,
    )


def _print(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    print(f"wrote {report['out']} ({report['fit']['examples']} examples, {report['fit']['seconds']} s)")
    for key, value in report["heldout"].items():
        print(f"  held-out {key}: {value}")
    for key, value in (report.get("speed") or {}).items():
        print(f"  speed {key}: {value}")


def _train_embedder(args: argparse.Namespace) -> int:
    from connector.quality.load import read_beir
    from connector.train.commands import train_embedder
    from connector.train.fit import EMBEDDER_SETTINGS, STUDENT_SETTINGS

    with _cluster(args) as cluster:
        report = train_embedder(
            _search(args, cluster),
            read_beir(args.dataset),
            out=args.out,
            base=args.base,
            layers=args.layers,
            settings=_fit_settings(args, STUDENT_SETTINGS if args.layers else EMBEDDER_SETTINGS),
            train_fraction=args.train_fraction,
            fields=split_csv(args.fields),
            depth=args.depth,
            max_positives_per_query=args.max_positives,
            distil_texts=args.distil_texts,
        )
    _print(args, report.to_json())
    return 0


def _train_reranker(args: argparse.Namespace) -> int:
    from connector.quality.load import read_beir
    from connector.train.commands import train_reranker
    from connector.train.fit import RERANKER_SETTINGS

    with _cluster(args) as cluster:
        report = train_reranker(
            _search(args, cluster),
            read_beir(args.dataset),
            out=args.out,
            base=args.base,
            settings=_fit_settings(args, RERANKER_SETTINGS),
            train_fraction=args.train_fraction,
            fields=split_csv(args.fields),
            window=args.window,
            max_positives_per_query=args.max_positives,
        )
    _print(args, report.to_json())
    return 0


def _switch(args: argparse.Namespace) -> int:
    from connector.cluster.settings import ConnectionSettings
    from connector.quality.load import read_beir
    from connector.services.embedding import EmbeddingClient
    from connector.train.gate import gated_switch

    settings = ConnectionSettings()
    with (
        _cluster(args) as cluster,
        EmbeddingClient.from_settings(settings, args.embed_url, missing="the old model embeds queries") as old,
        EmbeddingClient(args.new_embed_url) as new,
    ):
        decision = gated_switch(
            cluster,
            args.index,
            read_beir(args.dataset),
            old_embedder=old,
            new_embedder=new,
            new_vector_field=args.new_vector_field,
            new_model=args.new_model,
            margin=args.margin,
            force=args.force,
            log=print,
        )
    if args.json:
        print(json.dumps(decision.to_json(), indent=2, sort_keys=True))
    else:
        for mode in decision.old:
            print(f"  {mode} ndcg@10: old {decision.old[mode]:.4f}  new {decision.new[mode]:.4f}")
        print(("switched: " if decision.switched else "not switched: ") + decision.reason)
    return 0 if decision.switched else 1
