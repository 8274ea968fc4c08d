"""The system-index bodies are defined once (mappings.system); the modules that write the indices use them."""

from __future__ import annotations

from dataclasses import fields

from connector.jobs import store
from connector.jobs.store import JobCounts
from connector.search import log
from mappings import system
from migrations import state
from tests.unit._golden import GOLDEN_DIR, GoldenFiles

check_golden = GoldenFiles(GOLDEN_DIR / "jobs").check


def test_bodies_match_the_golden_files() -> None:
    check_golden("jobs_index", system.jobs_index_body())
    check_golden("dead_letter_index", system.dead_letter_index_body())
    check_golden("migrations_index", system.migrations_index_body())
    check_golden("profiles_index", system.profiles_index_body())
    check_golden("ubi_queries_index", system.ubi_queries_index_body())
    check_golden("ubi_events_index", system.ubi_events_index_body())
    check_golden("judgments_index", system.judgments_index_body())


def test_ubi_bodies_map_every_documented_field() -> None:
    from connector.ubi import UbiEvent, UbiQuery

    queries = system.ubi_queries_index_body()["mappings"]["properties"]
    assert set(UbiQuery.model_fields) == set(queries)
    assert set(queries["query_attributes"]["properties"]) <= {"index", "configuration", "experiment", "arm", "hit_arms"}
    events = system.ubi_events_index_body()["mappings"]
    assert set(UbiEvent.model_fields) == set(events["properties"])
    assert events["dynamic"] is False
    attributes = events["properties"]["event_attributes"]["properties"]
    assert attributes["position"]["properties"]["ordinal"] == {"type": "integer"}
    assert system.UBI_QUERIES_INDEX == "ubi_queries" and system.UBI_EVENTS_INDEX == "ubi_events"


def test_judgment_fields_are_mapped() -> None:
    assert tuple(system.judgments_index_body()["mappings"]["properties"]) == system.JUDGMENT_FIELDS


def test_profile_fields_are_mapped_or_kept_in_source() -> None:
    mapped = set(system.profiles_index_body()["mappings"]["properties"])
    assert mapped <= set(system.PROFILE_FIELDS)
    assert set(system.PROFILE_FIELDS) - mapped == {"vector"}  # read by id, never searched
    assert system.profiles_index_name("products") == "eshybrid-profiles-products"


def test_the_writers_use_the_one_definition() -> None:
    assert store.jobs_index_body is system.jobs_index_body
    assert store.dead_letter_index_body is system.dead_letter_index_body
    assert state.migrations_index_body is system.migrations_index_body
    assert log.search_log_mapping() == system.search_log_mapping()
    assert log.search_log_index_body() == system.search_log_index_body()


def test_job_counts_are_mapped() -> None:
    assert tuple(f.name for f in fields(JobCounts)) == system.JOB_COUNT_FIELDS
    counts = system.jobs_index_body()["mappings"]["properties"]["counts"]["properties"]
    assert list(counts) == list(system.JOB_COUNT_FIELDS)


def test_search_log_stages_agree() -> None:
    assert tuple(log.LATENCY_STAGES) == system.SEARCH_LOG_LATENCY_STAGES
    assert log.SEARCH_LOG_MAPPING_VERSION == system.SEARCH_LOG_MAPPING_VERSION
    mapping = system.search_log_mapping()
    assert list(mapping["properties"]["latency_ms"]["properties"]) == list(system.SEARCH_LOG_LATENCY_STAGES)
    assert system.search_log_index_body() == {
        "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": mapping,
    }


def test_bodies_are_fresh_copies() -> None:
    first = system.jobs_index_body()
    first["mappings"]["properties"]["counts"]["properties"]["read"]["type"] = "keyword"
    first["settings"]["index"]["number_of_shards"] = 3
    assert system.jobs_index_body()["mappings"]["properties"]["counts"]["properties"]["read"] == {"type": "long"}
    assert system.migrations_index_body()["settings"]["index"]["number_of_shards"] == 1
