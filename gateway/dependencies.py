"""What handlers can ask for by name: the services the lifespan built, and the caller.

A handler's signature says what it uses (`consent: ConsentStore`, `caller: Caller`); litestar
supplies each from here. The services live on `app.state.runtime`, built once per app.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from anonymization import Keyring
from bus import Bus, Database
from consent import ConsentStore
from gateway.audit import AuditTrail
from gateway.callers import Caller, caller_of
from gateway.edge import RateLimiter
from gateway.evaluation_events import EvaluationEvents, StreamTickets
from gateway.pipeline import Pipeline
from gateway.receipts import ReceiptSigner
from gateway.runtime import ProfileReader
from gateway.settings import Settings
from gateway.sources import SourceRegistry
from gateway.tokens import SubjectTokens
from observability import AuditLog, DecisionLog, Metrics
from personalization import FlagStore, FlowStore, Recommenders, ViewCache
from privacy import PrivacyRequests, Suppressions
from profiles import SegmentStore
from web import SessionCodec

# What a handler's parameter says to receive a service: `consent: ConsentStoreDep` (litestar
# injects by the parameter's name, one of DEPENDENCIES' keys; the lifespan built the value, so
# it is not validated again per request).
SettingsDep = NamedDependency[SkipValidation[Settings]]
DatabaseDep = NamedDependency[SkipValidation[Database]]
BusDep = NamedDependency[SkipValidation[Bus]]
SourceRegistryDep = NamedDependency[SkipValidation[SourceRegistry]]
ConsentStoreDep = NamedDependency[SkipValidation[ConsentStore]]
SubjectTokensDep = NamedDependency[SkipValidation[SubjectTokens]]
KeyringDep = NamedDependency[SkipValidation[Keyring]]
ReceiptSignerDep = NamedDependency[SkipValidation[ReceiptSigner]]
AuditLogDep = NamedDependency[SkipValidation[AuditLog]]
AuditTrailDep = NamedDependency[SkipValidation[AuditTrail]]
DecisionLogDep = NamedDependency[SkipValidation[DecisionLog]]
MetricsDep = NamedDependency[SkipValidation[Metrics]]
PipelineDep = NamedDependency[SkipValidation[Pipeline]]
PrivacyRequestsDep = NamedDependency[SkipValidation[PrivacyRequests]]
SuppressionsDep = NamedDependency[SkipValidation[Suppressions]]
ProfileReaderDep = NamedDependency[SkipValidation[ProfileReader]]
SegmentStoreDep = NamedDependency[SkipValidation[SegmentStore]]
FlagStoreDep = NamedDependency[SkipValidation[FlagStore]]
OfrepLimiterDep = NamedDependency[SkipValidation[RateLimiter]]
EvaluationEventsDep = NamedDependency[SkipValidation[EvaluationEvents]]
StreamTicketsDep = NamedDependency[SkipValidation[StreamTickets]]
ViewCacheDep = NamedDependency[SkipValidation[ViewCache]]
FlowStoreDep = NamedDependency[SkipValidation[FlowStore]]
RecommendersDep = NamedDependency[SkipValidation[Recommenders]]
PagesDep = NamedDependency[SkipValidation[SessionCodec]]


def _service(name: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state.runtime, name)

    return Provide(provide, sync_to_thread=False)


def _caller(request: Request[Any, Any, Any]) -> Caller:
    """The caller the route's guard authenticated (the hot routes call `caller_of` directly)."""
    return caller_of(request)


DEPENDENCIES: dict[str, Provide] = {
    "caller": Provide(_caller, sync_to_thread=False),
    "settings": _service("settings"),
    "database": _service("database"),
    "bus": _service("bus"),
    "sources": _service("sources"),
    "consent": _service("consent"),
    "tokens": _service("tokens"),
    "keyring": _service("keyring"),
    "receipts": _service("receipts"),
    "audit_log": _service("audit"),
    "trail": _service("trail"),
    "decision_log": _service("decision_log"),
    "metrics": _service("metrics"),
    "pipeline": _service("pipeline"),
    "privacy": _service("privacy"),
    "suppressions": _service("suppressions"),
    "profile_reader": _service("profile_reader"),
    "segments": _service("segments"),
    "flags": _service("flags"),
    "ofrep_limiter": _service("ofrep_limiter"),
    "evaluation_events": _service("evaluation_events"),
    "stream_tickets": _service("stream_tickets"),
    "views": _service("views"),
    "flows": _service("flows"),
    "recommenders": _service("recommenders"),
    "pages": _service("pages"),
}
