"""Counters for what the pipeline fetched, stored and rejected (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

FETCHES = Counter("yieldstream_fetches", "Upstream fetch runs by outcome", ["source", "outcome"])
RECORDS_FETCHED = Counter("yieldstream_records_fetched", "Raw records fetched", ["source"])
OBSERVATIONS_STORED = Counter(
    "yieldstream_observations_stored", "New observations stored", ["source"]
)
DUPLICATES_SKIPPED = Counter(
    "yieldstream_duplicates_skipped", "Observations already stored (same key)", ["source"]
)
REJECTIONS = Counter("yieldstream_rejections", "Records rejected", ["source", "stage"])
STAGE_FAILURES = Counter(
    "yieldstream_stage_failures",
    "Unexpected failures of a pipeline stage (the daemon backs off and goes on)",
    ["stage"],
)
KAFKA_MESSAGES_SENT = Counter(
    "yieldstream_kafka_messages_sent", "Messages acknowledged by Kafka", ["topic"]
)
KAFKA_SEND_FAILURES = Counter(
    "yieldstream_kafka_send_failures", "Kafka send attempts that failed (then retried)"
)
KAFKA_COMMIT_FAILURES = Counter(
    "yieldstream_kafka_commit_failures", "Offset commits that failed (messages redelivered)"
)
DLQ_MESSAGES = Counter(
    "yieldstream_dlq_messages", "Rejections sent to the dead-letter topic", ["source", "stage"]
)
ALERTS = Counter("yieldstream_alerts", "Alerts opened and cleared", ["kind", "event"])
ALERT_FAILURES = Counter(
    "yieldstream_alert_failures",
    "Alert evaluations or publishes that failed (the batch is stored all the same)",
    ["step"],
)
