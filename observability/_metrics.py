"""OpenTelemetry metrics, served in the Prometheus text format at /metrics.

Labels never hold a subject, an identifier or free text: only source ids, actions, reason
codes (without their purpose), stage names and HTTP statuses.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from observability._decisions import DecisionRecord

STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Every series the gateway exports (dashboards and alert rules may use only these): its type
# and its HELP text. All are exported from the start, at zero until they count.
METRICS: dict[str, tuple[str, str]] = {
    "consentgate_events_received_total": (
        "counter",
        "Events received and validated, by source.",
    ),
    "consentgate_events_total": (
        "counter",
        "Consent decisions on events, by source, action (forward, drop) and the last reason.",
    ),
    "consentgate_decision_reasons_total": (
        "counter",
        "Every reason code of every decision (an event may have several), without purposes.",
    ),
    "consentgate_stage_duration_seconds": (
        "histogram",
        "Time spent in each stage of the ingestion pipeline, per request.",
    ),
    "consentgate_bus_lag_events": (
        "gauge",
        "Events acknowledged (200) but not yet applied by the core.",
    ),
    "consentgate_bus_dead_letters": (
        "gauge",
        "Messages that failed on their own too often, kept in the dead-letter table.",
    ),
    "consentgate_http_errors_total": (
        "counter",
        "HTTP answers with an error status, by status and error code.",
    ),
    "consentgate_core_apply_failures_total": (
        "counter",
        "Bus messages the core failed to apply (they are retried, then dead-lettered).",
    ),
    "consentgate_profile_keys_capped_total": (
        "counter",
        "Keys a full per-profile map folded into (other) or left out, by map.",
    ),
    "consentgate_audit_verified": (
        "gauge",
        "1 when the last verification of the whole audit log passed, else 0.",
    ),
    "consentgate_privacy_requests_open": (
        "gauge",
        "Privacy requests not yet completed, by kind.",
    ),
    "consentgate_privacy_request_next_deadline_seconds": (
        "gauge",
        "Seconds to the nearest open privacy request's deadline (negative when overdue; "
        "absent while none is open).",
    ),
}
METRIC_NAMES = tuple(METRICS)
# series with no value at all until they have one (a deadline with no open request)
_NO_DEFAULT = frozenset({"consentgate_privacy_request_next_deadline_seconds"})


class Metrics:
    """The gateway's instruments, and the reader /metrics collects from."""

    def __init__(self, service_version: str) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            # Exemplars (a sampled trace per bucket) cost more than the measurement itself.
            exemplar_filter=AlwaysOffExemplarFilter(),
            resource=Resource.create(
                {"service.name": "consentgate", "service.version": service_version}
            ),
        )
        meter = self.provider.get_meter("consentgate")
        # The decisions' counters are counted here and observed at collection: on the request
        # path the SDK's `Counter.add` cost ~10 us a call (5% of a one-event request's CPU),
        # a dict increment a fraction of one.
        self._received: Counter[str] = Counter()
        self._decided: Counter[tuple[str, str, str]] = Counter()
        # every reason code of every decision (an event may have several), without the purpose
        self._reasons: Counter[str] = Counter()
        meter.create_observable_counter(
            "consentgate_events_received", callbacks=[self._received_observed], unit="1"
        )
        meter.create_observable_counter(
            "consentgate_events", callbacks=[self._decided_observed], unit="1"
        )
        meter.create_observable_counter(
            "consentgate_decision_reasons", callbacks=[self._reasons_observed], unit="1"
        )
        self.stage_seconds = StageHistogram()
        self.http_errors = meter.create_counter("consentgate_http_errors", unit="1")
        self.core_failures = meter.create_counter("consentgate_core_apply_failures", unit="1")
        # keys a full profile map folded into "(other)" or left out, by map
        self.profile_capped = meter.create_counter("consentgate_profile_keys_capped", unit="1")
        self.bus_lag = 0
        self.dead_letters = 0
        self.audit_verified = 1
        self.privacy_open: dict[str, int] = {}
        self.privacy_next_deadline_seconds: float | None = None
        meter.create_observable_gauge(
            "consentgate_privacy_requests_open", callbacks=[self._privacy_open]
        )
        meter.create_observable_gauge(
            "consentgate_privacy_request_next_deadline_seconds",
            unit="s",
            callbacks=[self._privacy_deadline],
        )
        meter.create_observable_gauge("consentgate_bus_lag_events", callbacks=[self._lag])
        meter.create_observable_gauge(
            "consentgate_bus_dead_letters", callbacks=[self._dead_letters]
        )
        meter.create_observable_gauge("consentgate_audit_verified", callbacks=[self._audit])

    def _lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.bus_lag)

    def _dead_letters(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.dead_letters)

    def _audit(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.audit_verified)

    def _privacy_open(self, _options: CallbackOptions) -> Iterable[Observation]:
        for kind, count in self.privacy_open.items():
            yield Observation(count, {"kind": kind})

    def _privacy_deadline(self, _options: CallbackOptions) -> Iterable[Observation]:
        # absent while no request is open: "no deadline" is not a number of seconds
        if self.privacy_next_deadline_seconds is not None:
            yield Observation(self.privacy_next_deadline_seconds)

    def record_decisions(self, source_id: str, records: Iterable[DecisionRecord]) -> None:
        decided = self._decided
        reasons = self._reasons
        total = 0
        for record in records:
            reason = record.reasons[-1].partition(":")[0] if record.reasons else "none"
            decided[(source_id, record.action, reason)] += 1
            for code in record.reasons:
                reasons[code.partition(":")[0]] += 1
            total += 1
        if total:
            self._received[source_id] += total

    def _received_observed(self, _options: CallbackOptions) -> Iterable[Observation]:
        for source_id, count in list(self._received.items()):
            yield Observation(count, {"source": source_id})

    def _decided_observed(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (source_id, action, reason), count in list(self._decided.items()):
            yield Observation(count, {"source": source_id, "action": action, "reason": reason})

    def _reasons_observed(self, _options: CallbackOptions) -> Iterable[Observation]:
        for code, count in list(self._reasons.items()):
            yield Observation(count, {"reason": code})

    def prometheus(self) -> str:
        """Every documented series, in the Prometheus text exposition format."""
        samples = collected_samples(self.reader.get_metrics_data())
        samples[StageHistogram.name] = self.stage_seconds.samples()
        return render_prometheus(samples)


class StageHistogram:
    """Stage latencies. Not an OpenTelemetry instrument: on the request path, the SDK's
    histogram cost several microseconds per recording (measured), this a bisect and two adds."""

    name = "consentgate_stage_duration_seconds"

    def __init__(self, buckets: tuple[float, ...] = STAGE_BUCKETS) -> None:
        self._buckets = buckets
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def record(self, seconds: float, attributes: dict[str, str]) -> None:
        stage = attributes["stage"]
        counts = self._counts.get(stage)
        if counts is None:
            counts = self._counts[stage] = [0] * (len(self._buckets) + 1)
            self._sums[stage] = 0.0
        counts[bisect_left(self._buckets, seconds)] += 1
        self._sums[stage] += seconds

    def sums(self) -> dict[str, float]:
        """Seconds spent in each stage so far."""
        return dict(self._sums)

    def samples(self) -> list[str]:
        lines: list[str] = []
        for stage, counts in sorted(self._counts.items()):
            running = 0
            for bound, count in zip(self._buckets, counts, strict=False):
                running += count
                lines.append(f'{self.name}_bucket{{le="{bound!r}",stage="{stage}"}} {running}')
            total = running + counts[-1]
            lines.append(f'{self.name}_bucket{{le="+Inf",stage="{stage}"}} {total}')
            lines.append(f'{self.name}_sum{{stage="{stage}"}} {self._sums[stage]}')
            lines.append(f'{self.name}_count{{stage="{stage}"}} {total}')
        return lines


def _labels(attributes: Any, extra: dict[str, str] | None = None) -> str:
    items = {**dict(attributes or {}), **(extra or {})}
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(items.items()))
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _name(raw: str, unit: str, kind: str) -> str:
    name = raw
    if unit == "s" and not name.endswith("_seconds"):
        name += "_seconds"
    if kind == "counter" and not name.endswith("_total"):
        name += "_total"
    return name


def collected_samples(data: MetricsData | None) -> dict[str, list[str]]:
    """The sample lines of each collected metric, by its exported name."""
    samples: dict[str, list[str]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                name, lines = _samples(metric.name, metric.unit or "", metric.data)
                if name:
                    samples[name] = lines
    return samples


def render_prometheus(samples: dict[str, list[str]]) -> str:
    """Every documented series with its HELP and TYPE; one not counted yet shows as zero."""
    lines: list[str] = []
    for name, (kind, text) in METRICS.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        found = samples.get(name)
        if found:
            lines += found
        elif name in _NO_DEFAULT:
            continue
        elif kind == "histogram":
            lines += [f'{name}_bucket{{le="+Inf"}} 0', f"{name}_sum 0", f"{name}_count 0"]
        else:
            lines.append(f"{name} 0")
    return "\n".join(lines) + "\n"


def _samples(raw_name: str, unit: str, points: Any) -> tuple[str, list[str]]:
    if isinstance(points, Sum | Gauge):
        kind = "counter" if isinstance(points, Sum) and points.is_monotonic else "gauge"
        name = _name(raw_name, unit, kind)
        return name, [f"{name}{_labels(p.attributes)} {p.value}" for p in points.data_points]
    if isinstance(points, Histogram):
        name = _name(raw_name, unit, "histogram")
        lines: list[str] = []
        for point in points.data_points:
            lines.extend(_histogram_lines(name, point))
        return name, lines
    return "", []


def _histogram_lines(name: str, point: Any) -> list[str]:
    lines = []
    running = 0
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        running += count
        labels = _labels(point.attributes, {"le": repr(float(bound))})
        lines.append(f"{name}_bucket{labels} {running}")
    lines.append(f"{name}_bucket{_labels(point.attributes, {'le': '+Inf'})} {point.count}")
    lines.append(f"{name}_sum{_labels(point.attributes)} {point.sum}")
    lines.append(f"{name}_count{_labels(point.attributes)} {point.count}")
    return lines
