"""What apps read back: feature flags and remote config (OpenFeature OFREP), with the baseline
whenever consent, suppression or the core says so. Reads `profiles`; never imports `gateway`."""

from personalization._bucket import split_hash, split_variant
from personalization._evaluate import (
    Fallback,
    Resolution,
    Subject,
    baseline_reason,
    evaluate_flag,
)
from personalization._file import load_flags_file, read_flags_file
from personalization._flags import (
    MAX_FLAGS,
    CompiledFlag,
    Flag,
    FlagDefinition,
    FlagError,
    FlagStore,
    parse_definition,
)
from personalization._flows import (
    BASELINE,
    Assignment,
    CompiledFlow,
    Flow,
    FlowDefinition,
    FlowStore,
    parse_flow,
)
from personalization._recommend import (
    Model,
    Recommendation,
    Recommenders,
    build_model,
    recommend,
)
from personalization._references import segment_readers
from personalization._results import (
    FlowResults,
    VariantResult,
    flow_results,
    two_proportion_p_value,
)
from personalization._tables import metadata
from personalization._views import NOT_CACHED, ViewCache

__all__ = [
    "BASELINE",
    "MAX_FLAGS",
    "NOT_CACHED",
    "Assignment",
    "CompiledFlag",
    "CompiledFlow",
    "Fallback",
    "Flag",
    "FlagDefinition",
    "FlagError",
    "FlagStore",
    "Flow",
    "FlowDefinition",
    "FlowResults",
    "FlowStore",
    "Model",
    "Recommendation",
    "Recommenders",
    "Resolution",
    "Subject",
    "VariantResult",
    "ViewCache",
    "baseline_reason",
    "build_model",
    "evaluate_flag",
    "flow_results",
    "load_flags_file",
    "metadata",
    "parse_definition",
    "parse_flow",
    "read_flags_file",
    "recommend",
    "segment_readers",
    "split_hash",
    "split_variant",
    "two_proportion_p_value",
]
