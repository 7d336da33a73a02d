"""What the pipeline fetched, stored and rejected, and how long it took (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# Operators' gauges and timings (served with /healthz and /readyz: yieldstream.health).
SOURCE_LAST_SUCCESS = Gauge(
    "yieldstream_source_last_success_timestamp_seconds",
    "When the source's last successful fetch run finished (unix seconds)",
    ["source"],
)
SOURCE_FAILURES = Gauge(
    "yieldstream_source_consecutive_failures",
    "Fetch runs of the source that failed since its last success",
    ["source"],
)
FETCH_DURATION = Histogram(
    "yieldstream_fetch_duration_seconds",
    "Time a fetch run took: the source's collector from its start to its last record",
    ["source"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SINK_COMMIT = Histogram(
    "yieldstream_sink_commit_seconds",
    "Time the store took to write and commit one batch (observations and rejections)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
KAFKA_CONSUMER_LAG = Gauge(
    "yieldstream_kafka_consumer_lag",
    "Messages of the partition not yet polled by this consumer (high watermark - position)",
    ["topic", "partition"],
)
