"""Grafana dashboards as code, built with Grafana's foundation SDK, committed as dashboards/*.json.

Four dashboards over the exporter's metrics (actors/observability/metrics.py) and the
recording rules of
platform/prometheus/duet_rules.yml: fleet overview, model quality, latency, and a
per-scenario comparison. Every panel reads one Prometheus datasource of uid
``duet-prometheus`` (platform/grafana/provisioning creates it; `duet-sim dashboards publish`
does the same through the API). ``duet-sim dashboards build`` rewrites the JSON; a test checks
the committed files equal the build and runs every query against a real Prometheus.

Windows: panels over raw counters use ``$__rate_interval`` (Grafana: at least 4 scrapes);
the recorded series use 1m; tables use ``$__range``, the dashboard's whole time range.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# ---------------------------------------------------------------------------------------------
DATASOURCE_UID = "duet-prometheus"  # also its name in platform/grafana/provisioning
TAG = "duet"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
# ---------------------------------------------------------------------------------------------
RATE = "$__rate_interval"
ONE_RUN = 'scenario="$scenario", dataset="$dataset", backbone="$backbone"'  # a single-run view
SCENARIOS = 'scenario=~"$scenario"'  # multi-select views
MEAN_AUC = "scenario_dataset_backbone_method:duet_session_auc:mean1m"
AUC_GAIN = "scenario_dataset_backbone_method:duet_session_auc_gain_vs_base:mean1m"
SESSIONS_RATE = "scenario_dataset_backbone_method:duet_sessions:rate1m"
LATENCY_BUCKETS = "scenario_component_le:duet_session_latency_seconds_bucket:rate1m"
E2E_BUCKETS = "scenario_network_class_le:duet_session_end_to_end_latency_seconds_bucket:rate1m"
SHIFT_EVENTS = f"sum by (operator) (increase(duet_shift_events_total{{{SCENARIOS}}}[{RATE}])) > 0"

Query = prom.Dataquery
PanelBuilder = Any  # the SDK's panel builders share these methods but no base class


@dataclass(frozen=True)
class Target:
    """One PromQL target; ``instant`` for tables and bar gauges (one value per series)."""

    expr: str
    legend: str = ""
    _: KW_ONLY
    instant: bool = False
    fmt: str = ""

    def query(self, ref: str) -> Query:
        target = Query().expr(self.expr).legend_format(self.legend or "__auto")
        if self.instant:
            target = target.instant()
        if self.fmt:
            target = target.format(PromQueryFormat(self.fmt))
        return target.ref_id(ref)


class Panel:
    """One panel as data: a fresh SDK builder of its kind (with that kind's options), its
    title, unit and targets (refIds A, B, ...), and its width and height.

    Why data: a dashboard is its list of panels, read top to bottom as a table; building
    the SDK objects is :meth:`build`'s one job. The SDK places panels left to right and
    wraps a row only once it is full, so each row's widths must add up to 24 (a test checks).
    """

    def __init__(
        self,
        kind: Callable[[], PanelBuilder],
        title: str,
        unit: str,
        *targets: Target,
        w: int = 12,
        h: int = 8,
    ) -> None:
        self.kind, self.title, self.unit = kind, title, unit
        self.targets, self.w, self.h = targets, w, h

    def build(self) -> PanelBuilder:
        """The SDK panel, reading the one datasource every panel reads."""
        builder = self.kind().title(self.title).unit(self.unit).datasource(DATASOURCE)
        builder = builder.height(self.h).span(self.w)
        for ref, target in zip("ABCDEFGH", self.targets, strict=False):
            builder = builder.with_target(target.query(ref))
        return builder


def rate(metric: str, selector: str = SCENARIOS) -> str:
    """Per-second rate of a raw counter over Grafana's rate interval."""
    return f"rate({metric}{{{selector}}}[{RATE}])"


def over_range(metric: str, selector: str = SCENARIOS) -> str:
    """Increase of a raw counter over the dashboard's whole time range."""
    return f"increase({metric}{{{selector}}}[$__range])"


def ratio(
    numerator: str,
    denominator: str,
    by: str = "",
    selector: str = SCENARIOS,
    of: Callable[[str, str], str] = rate,
) -> str:
    """``sum by (by) (of(numerator)) / sum by (by) (of(denominator))`` over raw counters."""
    group = f" by ({by})" if by else ""
    return f"sum{group} ({of(numerator, selector)}) / sum{group} ({of(denominator, selector)})"


def quantile(phi: float, buckets: str, by: str) -> str:
    """``histogram_quantile`` of a bucket-rate expression, grouped by ``by`` and ``le``."""
    return f"histogram_quantile({phi}, sum by ({by}, le) ({buckets}))"


def variable(name: str, query: str, *, multi: bool = False) -> dash.QueryVariable:
    var = dash.QueryVariable(name).label(name.capitalize()).query(query).datasource(DATASOURCE)
    var = var.refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(
        model.VariableSort.ALPHABETICAL_ASC
    )
    return var.multi(True).include_all(True).all_value(".*") if multi else var


def one_run_variables() -> list[dash.QueryVariable]:
    """scenario -> dataset -> backbone, each narrowed by the previous (one run's series)."""
    return [
        variable("scenario", "label_values(duet_sessions_total, scenario)"),
        variable("dataset", 'label_values(duet_sessions_total{scenario="$scenario"}, dataset)'),
        variable(
            "backbone",
            'label_values(duet_sessions_total{scenario="$scenario", dataset="$dataset"}, backbone)',
        ),
    ]


def new_dashboard(
    uid: str, title: str, description: str, variables: Sequence[dash.QueryVariable]
) -> dash.Dashboard:
    """Common settings: tag, 30 min window, 10 s refresh, shift events as annotations."""
    shifts = (
        dash.AnnotationQuery()
        .name("Shift events")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        .expr(SHIFT_EVENTS)
    )
    board = dash.Dashboard(title).uid(uid).description(description).tags([TAG])
    board = board.time("now-30m", "now").refresh("10s").timezone("browser")
    return board.variables(list(variables)).annotation(shifts)


SCENARIO_SERIES = f"{{{SCENARIOS}}}"  # the multi-select views' selector
FAILED_REQUESTS = rate("duet_generator_requests_total", f'{SCENARIOS}, status!="ok"')
FLEET_OVERVIEW_PANELS = (
    Panel(
        stat.Panel,
        "Sessions per second",
        "ops",
        Target(f"sum({SESSIONS_RATE}{SCENARIO_SERIES})"),
        w=6,
        h=4,
    ),
    Panel(
        stat.Panel,
        "Active devices",
        "short",
        Target(f"sum(duet_active_devices{SCENARIO_SERIES})"),
        w=6,
        h=4,
    ),
    Panel(
        stat.Panel,
        "Generator error ratio",
        "percentunit",
        Target(
            f"(sum({FAILED_REQUESTS}) or vector(0)) / sum({rate('duet_generator_requests_total')})"
        ),
        w=6,
        h=4,
    ),
    Panel(
        stat.Panel,
        "Fallback ratio",
        "percentunit",
        Target(ratio("duet_session_fallbacks_total", "duet_sessions_total")),
        w=6,
        h=4,
    ),
    Panel(
        timeseries.Panel,
        "Sessions per second by method",
        "ops",
        Target(f"sum by (method) ({SESSIONS_RATE}{SCENARIO_SERIES})", "{{method}}"),
    ),
    Panel(
        timeseries.Panel,
        "Active devices by fleet",
        "short",
        Target(f"sum by (fleet) (duet_active_devices{SCENARIO_SERIES})", "{{fleet}}"),
    ),
    Panel(
        timeseries.Panel,
        "Generator requests per second by status",
        "reqps",
        Target(
            f"sum by (status) (scenario_status:duet_generator_requests:rate1m{SCENARIO_SERIES})",
            "{{status}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "Fallbacks per second by method",
        "ops",
        Target(f"sum by (method) ({rate('duet_session_fallbacks_total')})", "{{method}}"),
    ),
    Panel(
        timeseries.Panel,
        "Network throughput",
        "Bps",
        Target(f"sum by (direction) ({rate('duet_network_bytes_total')})", "{{direction}}"),
    ),
    Panel(
        timeseries.Panel,
        "Share of sessions under a shift",
        "percentunit",
        Target(
            ratio("duet_shifted_sessions_total", "duet_sessions_total", by="scenario"),
            "{{scenario}}",
        ),
    ),
)


def fleet_overview() -> dash.Dashboard:
    board = new_dashboard(
        "duet-fleet",
        "DUET · fleet overview",
        "Throughput, active devices, generator errors and fallbacks of running simulations.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)", multi=True)],
    )
    return add_panels(board, FLEET_OVERVIEW_PANELS)


# The communication-vs-AUC trade-off of the request policies, live: how often each
# (method, policy) asks the cloud, and its AUC gain over base, labelled with its policy.
POLICY_BY = "method, policy"
DECISIONS = "duet_request_decisions_total"
REQUESTED = f'{ONE_RUN}, reason="requested"'
# The gain series carries no policy label: join it from the decisions counter. The counter
# goes stale when the run's exporter closes, while the gain (a 1m rate) lives a minute
# longer and may first appear only then, as the driver counts a fleet's rows when it
# returns; looking back 5m keeps the run's last minute labelled.
POLICY_OF = (
    "group by (scenario, dataset, backbone, method, policy) "
    f"(last_over_time({DECISIONS}{{{ONE_RUN}}}[5m]))"
)
REQUEST_POLICY_PANELS = (
    Panel(
        lambda: timeseries.Panel().min(0).max(1),
        "Share of sessions that asked the cloud, by method and policy",
        "percentunit",
        Target(
            f"sum by ({POLICY_BY}) ({rate(DECISIONS, REQUESTED)}) / "
            f"sum by ({POLICY_BY}) ({rate(DECISIONS, ONE_RUN)})",
            "{{method}} · {{policy}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "AUC gain over base by request policy (1m, same devices)",
        "none",
        Target(
            f"{AUC_GAIN}{{{ONE_RUN}}} * on (scenario, dataset, backbone, method) "
            f"group_left (policy) {POLICY_OF}",
            "{{method}} · {{policy}}",
        ),
    ),
    Panel(
        table.Panel,
        "Request decisions by reason over the time range",
        "short",
        Target(
            f"sum by ({POLICY_BY}, reason) ({over_range(DECISIONS, ONE_RUN)})",
            instant=True,
            fmt="table",
        ),
        w=24,
    ),
)
ONE_METHOD = f'{ONE_RUN}, method=~"$method"'
MODEL_QUALITY_PANELS = (
    Panel(
        lambda: timeseries.Panel().min(0.5).max(1),
        "Mean session AUC by method (1m)",
        "none",
        Target(f"{MEAN_AUC}{{{ONE_RUN}}}", "{{method}}"),
    ),
    Panel(
        timeseries.Panel,
        "AUC gain over base (1m, same devices)",
        "none",
        Target(f"{AUC_GAIN}{{{ONE_RUN}}}", "{{method}}"),
    ),
    Panel(
        lambda: heatmap.Panel().repeat("method").repeat_direction("h").max_per_row(5),
        "AUC distribution: $method",
        "none",
        Target(
            "sum by (le) (scenario_dataset_backbone_method_le:duet_session_auc_bucket:rate1m"
            f"{{{ONE_METHOD}}})",
            "{{le}}",
            fmt="heatmap",
        ),
        w=24,
    ),
    Panel(
        lambda: bargauge.Panel().min(0).max(1),
        "AUC p10 / p50 / p90 over the time range",
        "none",
        *(
            Target(
                quantile(phi, over_range("duet_session_auc_bucket", ONE_RUN), "method"),
                f"{{{{method}}}} p{round(phi * 100)}",
                instant=True,
            )
            for phi in (0.1, 0.5, 0.9)
        ),
        w=24,
    ),
    Panel(
        timeseries.Panel,
        "Mean session AUC by network class",
        "none",
        Target(
            ratio("duet_session_auc_sum", "duet_session_auc_count", "network_class", ONE_METHOD),
            "{{network_class}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "Share of sessions under a shift by method",
        "percentunit",
        Target(
            ratio("duet_shifted_sessions_total", "duet_sessions_total", "method", ONE_RUN),
            "{{method}}",
        ),
    ),
    *REQUEST_POLICY_PANELS,
)


def model_quality() -> dash.Dashboard:
    board = new_dashboard(
        "duet-quality",
        "DUET · model quality",
        "Per-session AUC by method, gain over base, AUC distribution; shift events as annotations.",
        [
            *one_run_variables(),
            variable(
                "method",
                'label_values(duet_sessions_total{scenario="$scenario"}, method)',
                multi=True,
            ),
        ],
    )
    return add_panels(board, MODEL_QUALITY_PANELS)


ONE_SCENARIO = 'scenario="$scenario"'  # the latency dashboard's view
LATENCY_PANELS = (
    *(
        Panel(
            timeseries.Panel,
            f"p{round(phi * 100)} latency by component",
            "s",
            Target(
                quantile(phi, f"{LATENCY_BUCKETS}{{{ONE_SCENARIO}}}", "component"),
                "{{component}}",
            ),
            w=8,
        )
        for phi in (0.5, 0.95, 0.99)
    ),
    Panel(
        timeseries.Panel,
        "p95 end-to-end latency by network class",
        "s",
        Target(
            quantile(0.95, f"{E2E_BUCKETS}{{{ONE_SCENARIO}}}", "network_class"),
            "{{network_class}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "p95 generator request time by status",
        "s",
        Target(
            quantile(
                0.95,
                rate("duet_generator_request_duration_seconds_bucket", ONE_SCENARIO),
                "status",
            ),
            "{{status}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "Generator batch size",
        "short",
        Target(
            ratio(
                "duet_generator_batch_size_sum",
                "duet_generator_batch_size_count",
                selector=ONE_SCENARIO,
            ),
            "mean",
        ),
        Target(
            quantile(0.95, rate("duet_generator_batch_size_bucket", ONE_SCENARIO), "scenario"),
            "p95",
        ),
    ),
    Panel(
        heatmap.Panel,
        "Generator batch sizes",
        "short",
        Target(
            f"sum by (le) ({rate('duet_generator_batch_size_bucket', ONE_SCENARIO)})",
            "{{le}}",
            fmt="heatmap",
        ),
    ),
)


def latency() -> dash.Dashboard:
    board = new_dashboard(
        "duet-latency",
        "DUET · latency",
        "p50/p95/p99 session latency by component (simulated seconds) and generator batching.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)")],
    )
    return add_panels(board, LATENCY_PANELS)


SCENARIO_METHOD = "scenario, method"
SCENARIO_COMPARISON_PANELS = (
    # one row per scenario and method; columns A-D: sessions, mean AUC, p95 latency,
    # fallback ratio
    Panel(
        lambda: table.Panel().with_transformation(
            model.DataTransformerConfig(id_val="merge", options={})
        ),
        "Over the time range: sessions, mean AUC, p95 latency (s), fallback ratio",
        "none",
        Target(
            f"sum by ({SCENARIO_METHOD}) ({over_range('duet_sessions_total')})",
            instant=True,
            fmt="table",
        ),
        Target(
            ratio("duet_session_auc_sum", "duet_session_auc_count", SCENARIO_METHOD, of=over_range),
            instant=True,
            fmt="table",
        ),
        Target(
            quantile(
                0.95,
                over_range("duet_session_end_to_end_latency_seconds_bucket"),
                SCENARIO_METHOD,
            ),
            instant=True,
            fmt="table",
        ),
        Target(
            ratio(
                "duet_session_fallbacks_total",
                "duet_sessions_total",
                SCENARIO_METHOD,
                of=over_range,
            ),
            instant=True,
            fmt="table",
        ),
        w=24,
    ),
    Panel(
        timeseries.Panel,
        "Mean session AUC by scenario and method (1m)",
        "none",
        Target(
            f"sum by ({SCENARIO_METHOD}) "
            f"(scenario_dataset_backbone_method:duet_session_auc_sum:rate1m{SCENARIO_SERIES})"
            f" / sum by ({SCENARIO_METHOD}) "
            f"(scenario_dataset_backbone_method:duet_session_auc_count:rate1m{SCENARIO_SERIES})",
            "{{scenario}} {{method}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "AUC gain over base by scenario (1m)",
        "none",
        Target(
            f"avg by ({SCENARIO_METHOD}) ({AUC_GAIN}{SCENARIO_SERIES})",
            "{{scenario}} {{method}}",
        ),
    ),
    Panel(
        timeseries.Panel,
        "Sessions per second by scenario",
        "ops",
        Target(f"sum by (scenario) ({SESSIONS_RATE}{SCENARIO_SERIES})", "{{scenario}}"),
        w=8,
    ),
    Panel(
        timeseries.Panel,
        "p95 end-to-end latency by scenario",
        "s",
        Target(quantile(0.95, f"{E2E_BUCKETS}{SCENARIO_SERIES}", "scenario"), "{{scenario}}"),
        w=8,
    ),
    Panel(
        timeseries.Panel,
        "Fallback ratio by scenario",
        "percentunit",
        Target(f"scenario:duet_session_fallbacks:ratio_rate1m{SCENARIO_SERIES}", "{{scenario}}"),
        w=8,
    ),
)


def scenario_comparison() -> dash.Dashboard:
    board = new_dashboard(
        "duet-scenarios",
        "DUET · scenario comparison",
        "Scenarios side by side: AUC and gain per method, throughput, latency, fallbacks.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)", multi=True)],
    )
    return add_panels(board, SCENARIO_COMPARISON_PANELS)


def add_panels(board: dash.Dashboard, panels: Sequence[Panel]) -> dash.Dashboard:
    """Add panels with stable ids 1..n (links and provisioning diffs rely on them)."""
    for i, p in enumerate(panels, start=1):
        board = board.with_panel(p.build().id(i))
    return board


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "fleet-overview": fleet_overview,
    "model-quality": model_quality,
    "latency": latency,
    "scenario-comparison": scenario_comparison,
}


def render(board: dash.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model.

    The SDK's AnnotationQuery has no fields for the Prometheus annotation options, so the
    shift annotation gets its title and tags here: one marker per operator, titled by it.
    """
    doc = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for annotation in doc["annotations"]["list"]:
        annotation.update(titleFormat="shift: {{operator}}", tagKeys="operator", step="15s")
    return doc


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write dashboards/<name>.json for every dashboard; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in DASHBOARDS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(render(build()), indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
