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


def q(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "") -> Query:
    """One PromQL target; ``instant`` for tables and bar gauges (one value per series)."""
    target = Query().expr(expr).legend_format(legend or "__auto")
    if instant:
        target = target.instant()
    if fmt:
        target = target.format(PromQueryFormat(fmt))
    return target


def panel(
    builder: PanelBuilder, title: str, unit: str, *targets: Query, w: int = 12, h: int = 8
) -> Any:
    """Title, unit, datasource and targets (refIds A, B, ...) on any SDK panel builder.

    The SDK places panels left to right and wraps a row only once it is full, so each row's
    widths must add up to 24 (a test checks).
    """
    builder = builder.title(title).unit(unit).datasource(DATASOURCE).height(h).span(w)
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        builder = builder.with_target(target.ref_id(ref))
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


def fleet_overview() -> dash.Dashboard:
    by_scenario = f"{{{SCENARIOS}}}"
    failed_requests = rate("duet_generator_requests_total", f'{SCENARIOS}, status!="ok"')
    board = new_dashboard(
        "duet-fleet",
        "DUET · fleet overview",
        "Throughput, active devices, generator errors and fallbacks of running simulations.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)", multi=True)],
    )
    panels = [
        panel(
            stat.Panel(),
            "Sessions per second",
            "ops",
            q(f"sum({SESSIONS_RATE}{by_scenario})"),
            w=6,
            h=4,
        ),
        panel(
            stat.Panel(),
            "Active devices",
            "short",
            q(f"sum(duet_active_devices{by_scenario})"),
            w=6,
            h=4,
        ),
        panel(
            stat.Panel(),
            "Generator error ratio",
            "percentunit",
            q(
                f"(sum({failed_requests}) or vector(0)) "
                f"/ sum({rate('duet_generator_requests_total')})"
            ),
            w=6,
            h=4,
        ),
        panel(
            stat.Panel(),
            "Fallback ratio",
            "percentunit",
            q(ratio("duet_session_fallbacks_total", "duet_sessions_total")),
            w=6,
            h=4,
        ),
        panel(
            timeseries.Panel(),
            "Sessions per second by method",
            "ops",
            q(f"sum by (method) ({SESSIONS_RATE}{by_scenario})", "{{method}}"),
        ),
        panel(
            timeseries.Panel(),
            "Active devices by fleet",
            "short",
            q(f"sum by (fleet) (duet_active_devices{by_scenario})", "{{fleet}}"),
        ),
        panel(
            timeseries.Panel(),
            "Generator requests per second by status",
            "reqps",
            q(
                f"sum by (status) (scenario_status:duet_generator_requests:rate1m{by_scenario})",
                "{{status}}",
            ),
        ),
        panel(
            timeseries.Panel(),
            "Fallbacks per second by method",
            "ops",
            q(f"sum by (method) ({rate('duet_session_fallbacks_total')})", "{{method}}"),
        ),
        panel(
            timeseries.Panel(),
            "Network throughput",
            "Bps",
            q(f"sum by (direction) ({rate('duet_network_bytes_total')})", "{{direction}}"),
        ),
        panel(
            timeseries.Panel(),
            "Share of sessions under a shift",
            "percentunit",
            q(
                ratio("duet_shifted_sessions_total", "duet_sessions_total", by="scenario"),
                "{{scenario}}",
            ),
        ),
    ]
    return add_panels(board, panels)


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
    one_method = f'{ONE_RUN}, method=~"$method"'
    auc_quantiles = [
        q(
            quantile(phi, over_range("duet_session_auc_bucket", ONE_RUN), "method"),
            f"{{{{method}}}} p{round(phi * 100)}",
            instant=True,
        )
        for phi in (0.1, 0.5, 0.9)
    ]
    panels = [
        panel(
            timeseries.Panel().min(0.5).max(1),
            "Mean session AUC by method (1m)",
            "none",
            q(f"{MEAN_AUC}{{{ONE_RUN}}}", "{{method}}"),
        ),
        panel(
            timeseries.Panel(),
            "AUC gain over base (1m, same devices)",
            "none",
            q(f"{AUC_GAIN}{{{ONE_RUN}}}", "{{method}}"),
        ),
        panel(
            heatmap.Panel().repeat("method").repeat_direction("h").max_per_row(5),
            "AUC distribution: $method",
            "none",
            q(
                "sum by (le) (scenario_dataset_backbone_method_le:duet_session_auc_bucket:rate1m"
                f"{{{one_method}}})",
                "{{le}}",
                fmt="heatmap",
            ),
            w=24,
        ),
        panel(
            bargauge.Panel().min(0).max(1),
            "AUC p10 / p50 / p90 over the time range",
            "none",
            *auc_quantiles,
            w=24,
        ),
        panel(
            timeseries.Panel(),
            "Mean session AUC by network class",
            "none",
            q(
                ratio(
                    "duet_session_auc_sum", "duet_session_auc_count", "network_class", one_method
                ),
                "{{network_class}}",
            ),
        ),
        panel(
            timeseries.Panel(),
            "Share of sessions under a shift by method",
            "percentunit",
            q(
                ratio("duet_shifted_sessions_total", "duet_sessions_total", "method", ONE_RUN),
                "{{method}}",
            ),
        ),
        *request_policy_panels(),
    ]
    return add_panels(board, panels)


def request_policy_panels() -> list[Any]:
    """The communication-vs-AUC trade-off of the request policies, live: how often each
    (method, policy) asks the cloud, and its AUC gain over base, labelled with its policy."""
    by = "method, policy"
    decisions = "duet_request_decisions_total"
    requested = f'{ONE_RUN}, reason="requested"'
    # The gain series carries no policy label: join it from the decisions counter. The counter
    # goes stale when the run's exporter closes, while the gain (a 1m rate) lives a minute
    # longer and may first appear only then, as the driver counts a fleet's rows when it
    # returns; looking back 5m keeps the run's last minute labelled.
    policy_of = (
        "group by (scenario, dataset, backbone, method, policy) "
        f"(last_over_time({decisions}{{{ONE_RUN}}}[5m]))"
    )
    return [
        panel(
            timeseries.Panel().min(0).max(1),
            "Share of sessions that asked the cloud, by method and policy",
            "percentunit",
            q(
                f"sum by ({by}) ({rate(decisions, requested)}) / "
                f"sum by ({by}) ({rate(decisions, ONE_RUN)})",
                "{{method}} · {{policy}}",
            ),
        ),
        panel(
            timeseries.Panel(),
            "AUC gain over base by request policy (1m, same devices)",
            "none",
            q(
                f"{AUC_GAIN}{{{ONE_RUN}}} * on (scenario, dataset, backbone, method) "
                f"group_left (policy) {policy_of}",
                "{{method}} · {{policy}}",
            ),
        ),
        panel(
            table.Panel(),
            "Request decisions by reason over the time range",
            "short",
            q(
                f"sum by ({by}, reason) ({over_range(decisions, ONE_RUN)})",
                instant=True,
                fmt="table",
            ),
            w=24,
        ),
    ]


def latency() -> dash.Dashboard:
    run = 'scenario="$scenario"'
    board = new_dashboard(
        "duet-latency",
        "DUET · latency",
        "p50/p95/p99 session latency by component (simulated seconds) and generator batching.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)")],
    )
    by_component = [
        panel(
            timeseries.Panel(),
            f"p{round(phi * 100)} latency by component",
            "s",
            q(quantile(phi, f"{LATENCY_BUCKETS}{{{run}}}", "component"), "{{component}}"),
            w=8,
        )
        for phi in (0.5, 0.95, 0.99)
    ]
    panels = [
        *by_component,
        panel(
            timeseries.Panel(),
            "p95 end-to-end latency by network class",
            "s",
            q(quantile(0.95, f"{E2E_BUCKETS}{{{run}}}", "network_class"), "{{network_class}}"),
        ),
        panel(
            timeseries.Panel(),
            "p95 generator request time by status",
            "s",
            q(
                quantile(
                    0.95, rate("duet_generator_request_duration_seconds_bucket", run), "status"
                ),
                "{{status}}",
            ),
        ),
        panel(
            timeseries.Panel(),
            "Generator batch size",
            "short",
            q(
                ratio(
                    "duet_generator_batch_size_sum", "duet_generator_batch_size_count", selector=run
                ),
                "mean",
            ),
            q(quantile(0.95, rate("duet_generator_batch_size_bucket", run), "scenario"), "p95"),
        ),
        panel(
            heatmap.Panel(),
            "Generator batch sizes",
            "short",
            q(
                f"sum by (le) ({rate('duet_generator_batch_size_bucket', run)})",
                "{{le}}",
                fmt="heatmap",
            ),
        ),
    ]
    return add_panels(board, panels)


def scenario_comparison() -> dash.Dashboard:
    by = "scenario, method"
    board = new_dashboard(
        "duet-scenarios",
        "DUET · scenario comparison",
        "Scenarios side by side: AUC and gain per method, throughput, latency, fallbacks.",
        [variable("scenario", "label_values(duet_sessions_total, scenario)", multi=True)],
    )
    table_targets = [
        q(f"sum by ({by}) ({over_range('duet_sessions_total')})", instant=True, fmt="table"),
        q(
            ratio("duet_session_auc_sum", "duet_session_auc_count", by, of=over_range),
            instant=True,
            fmt="table",
        ),
        q(
            quantile(0.95, over_range("duet_session_end_to_end_latency_seconds_bucket"), by),
            instant=True,
            fmt="table",
        ),
        q(
            ratio("duet_session_fallbacks_total", "duet_sessions_total", by, of=over_range),
            instant=True,
            fmt="table",
        ),
    ]
    recorded = f"{{{SCENARIOS}}}"
    panels = [
        # one row per scenario and method; columns A-D: sessions, mean AUC, p95 latency,
        # fallback ratio
        panel(
            table.Panel().with_transformation(
                model.DataTransformerConfig(id_val="merge", options={})
            ),
            "Over the time range: sessions, mean AUC, p95 latency (s), fallback ratio",
            "none",
            *table_targets,
            w=24,
        ),
        panel(
            timeseries.Panel(),
            "Mean session AUC by scenario and method (1m)",
            "none",
            q(
                f"sum by ({by}) "
                f"(scenario_dataset_backbone_method:duet_session_auc_sum:rate1m{recorded})"
                f" / sum by ({by}) "
                f"(scenario_dataset_backbone_method:duet_session_auc_count:rate1m{recorded})",
                "{{scenario}} {{method}}",
            ),
        ),
        panel(
            timeseries.Panel(),
            "AUC gain over base by scenario (1m)",
            "none",
            q(f"avg by ({by}) ({AUC_GAIN}{recorded})", "{{scenario}} {{method}}"),
        ),
        panel(
            timeseries.Panel(),
            "Sessions per second by scenario",
            "ops",
            q(f"sum by (scenario) ({SESSIONS_RATE}{recorded})", "{{scenario}}"),
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "p95 end-to-end latency by scenario",
            "s",
            q(quantile(0.95, f"{E2E_BUCKETS}{recorded}", "scenario"), "{{scenario}}"),
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "Fallback ratio by scenario",
            "percentunit",
            q(f"scenario:duet_session_fallbacks:ratio_rate1m{recorded}", "{{scenario}}"),
            w=8,
        ),
    ]
    return add_panels(board, panels)


def add_panels(board: dash.Dashboard, panels: Sequence[PanelBuilder]) -> dash.Dashboard:
    """Add panels with stable ids 1..n (links and provisioning diffs rely on them)."""
    for i, p in enumerate(panels, start=1):
        board = board.with_panel(p.id(i))
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
