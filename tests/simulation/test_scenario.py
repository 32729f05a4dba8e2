"""Scenario files: the shipped examples validate; errors name the YAML path and its line;
aliases, duplicate keys and escaping paths are refused; overrides are typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.scenario_file import MAX_SCENARIO_BYTES, ScenarioError, load_scenario
from simulation.scenario_paths import resolve_path

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "configs" / "scenarios").glob("*.yaml"))

GOOD = """\
version: 1
name: t
data:
  dataset: synthetic-clicks
model:
  backbones: [din]
methods: [base, duet]
fleet:
  devices: 10
  profiles:
    network:
      4g-5: 1
      5g-100: 2
shifts:
  - operator: genre_shift
    params: {fraction: 0.5}
    at_session: 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, overrides=()) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), overrides)
    return info.value.problems


def test_shipped_scenarios_validate():
    assert {p.stem for p in EXAMPLES} >= {
        "quickstart",
        "ml100k-genre-shift",
        "ml100k-user-swap",
        "ckplus-corruption",
        "scale-10k",
    }
    for path in EXAMPLES:
        scenario = load_scenario(path)
        assert scenario.name == path.stem and scenario.version == 1
    assert load_scenario(EXAMPLES[0].with_name("scale-10k.yaml")).fleet.devices == 10_000
    big = load_scenario(EXAMPLES[0].with_name("scale-100k.yaml"))  # one user per device
    assert big.fleet.devices == big.data.synthetic["n_users"] == 100_000
    assert big.model.train.users == 2_000


def test_good_scenario_gets_defaults(tmp_path):
    s = load_scenario(write(tmp_path, GOOD))
    assert s.fleet.sessions_per_device == 3 and s.generator.retries == 3
    assert s.metrics.enabled is False and (s.metrics.host, s.metrics.port) == ("127.0.0.1", 9108)
    assert s.backbone_weights == {"din": 1.0} and s.kind == "clicks"


def test_errors_name_path_and_line(tmp_path):
    text = (
        GOOD.replace("devices: 10", "devices: 0")
        .replace("5g-100: 2", "5g-100: -2")
        .replace("fraction: 0.5", "fraction: 1.5")
    )
    assert problems(tmp_path, text) == [
        "s.yaml: fleet.devices (line 9): Input should be greater than 0",
        "s.yaml: fleet.profiles.network.5g-100 (line 13): "
        "Input should be greater than or equal to 0",
        "s.yaml: shifts[0].params (line 16): fraction: expected number in (0, 1], got 1.5",
    ]


def test_missing_and_unknown_fields(tmp_path):
    text = GOOD.replace("  devices: 10\n", "  devcies: 10\n")
    assert problems(tmp_path, text) == [
        "s.yaml: fleet.devices (line 8): Field required",
        "s.yaml: fleet.devcies (line 9): Extra inputs are not permitted",
    ]


def test_values_checked_against_their_rules(tmp_path):
    text = GOOD.replace("methods: [base, duet]", "methods: [duet]").replace(
        "operator: genre_shift", "operator: blurr"
    )
    found = problems(tmp_path, text)
    assert (
        found[0] == "s.yaml: methods (line 7): methods must include 'base', "
        "the paired reference of every gain"
    )
    assert found[1].startswith(
        "s.yaml: shifts[0].operator (line 15): unknown shift operator 'blurr'"
    )


def test_cross_checks(tmp_path):
    text = GOOD.replace("operator: genre_shift", "operator: blur").replace("{fraction: 0.5}", "{}")
    [problem] = problems(tmp_path, text)
    assert "'blur' acts on images, dataset 'synthetic-clicks' is clicks" in problem
    [problem] = problems(tmp_path, GOOD.replace("[din]", "[mobilenet_v3_small]"))
    assert "'mobilenet_v3_small' does not fit clicks dataset" in problem


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "version: 1\na: &x [1, 2]\nb: *x\n",
            "s.yaml: a (line 2): invalid YAML: anchors and aliases are not accepted",
        ),
        (
            "version: 1\nversion: 1\n",
            "s.yaml: version (line 2): invalid YAML: duplicate key 'version'",
        ),
        ("version: 1\n  name: [\n", "s.yaml: <top> (line 2): invalid YAML"),
        ("- 1\n- 2\n", "s.yaml: <top> (line 1): expected a mapping, got list"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused(tmp_path, text, message):
    [problem] = problems(tmp_path, text)
    assert problem.startswith(message)


def test_oversized_file_is_refused(tmp_path):
    [problem] = problems(tmp_path, GOOD + "#" * MAX_SCENARIO_BYTES)
    assert "more than" in problem


def test_overrides_are_typed_and_marked(tmp_path):
    path = write(tmp_path, GOOD)
    s = load_scenario(
        path, ["fleet.devices=25", "shifts.0.at_session=2", "generator.dtype=float16"]
    )
    assert (s.fleet.devices, s.shifts[0].at_session, s.generator.dtype) == (25, 2, "float16")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ["fleet.devices=many"])
    assert info.value.problems == [
        "s.yaml: fleet.devices (override): Input should be a valid "
        "integer, unable to parse string as an integer"
    ]
    with pytest.raises(ScenarioError, match="expected KEY.SUB=VALUE"):
        load_scenario(path, ["fleet.devices"])


def test_paths_stay_inside_the_roots(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    assert resolve_path(Path("runs/x"), [base]) == base.resolve() / "runs" / "x"
    assert resolve_path(other / "data", [base, other]) == other.resolve() / "data"
    (base / "link").parent.mkdir()
    (base / "link").symlink_to("/etc")
    for escape in (Path("../../etc"), Path("/abs/elsewhere"), Path("link/passwd")):
        with pytest.raises(ValueError, match="outside the allowed roots"):
            resolve_path(escape, [base, other])


POLICIES = GOOD.replace(
    "methods: [base, duet]",
    """methods:
  - base
  - duet
  - name: duet-sparse
    method: duet
    policy: POLICY""",
)


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        (
            "{type: sometimes}",
            "methods[2].policy (line 12): unknown request policy 'sometimes'; registered: "
            "['always', 'every_k', 'drift', 'budget', 'per_impression', 'learned']",
        ),
        ("{type: every_k, k: -2}", "methods[2].policy.k (line 12): Input should be greater than 0"),
        (
            "{type: budget, fraction: 1.5}",
            "methods[2].policy.fraction (line 12): Input should be less than or equal to 1",
        ),
        ("{type: budget, fraction: 0}", "methods[2].policy.fraction (line 12): Input should be "),
        ("{type: drift, threshold: high}", "methods[2].policy.threshold (line 12): Input should "),
        ("{type: every_k}", "methods[2].policy.k (line 12): Field required"),
        ("{type: always, k: 2}", "methods[2].policy.k (line 12): Extra inputs are not permitted"),
        (
            "{type: per_impression}",
            "methods[2] (line 10): policy per_impression and condition history go together",
        ),
    ],
)
def test_request_policies_are_checked_with_path_and_line(tmp_path, policy, problem):
    [found] = problems(tmp_path, POLICIES.replace("POLICY", policy))
    assert found.startswith(f"s.yaml: {problem}")


def test_a_nested_policy_field_is_blamed_on_its_own_line(tmp_path):
    text = POLICIES.replace("policy: POLICY", "policy:\n      type: every_k\n      k: 0")
    assert problems(tmp_path, text) == [
        "s.yaml: methods[2].policy.k (line 14): Input should be greater than 0"
    ]


def test_policies_apply_to_generated_methods_and_names_share_their_model(tmp_path):
    text = POLICIES.replace("policy: POLICY", "policy: {type: every_k, k: 3}")
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.model_owner == {"base": "base", "duet": "duet", "duet-sparse": "duet"}
    assert scenario.policy_references == {"duet": "duet", "duet-sparse": "duet"}
    assert {n: p.label for n, p in scenario.policies.items()} == {
        "duet": "always",
        "duet-sparse": "every_k(k=3)",
    }
    [found] = problems(
        tmp_path,
        GOOD.replace("[base, duet]", "[base, {name: f, method: finetune, policy: {type: always}}]"),
    )
    assert "policy applies to methods the cloud generates, not 'finetune'" in found


def test_unknown_methods_and_plugins_are_refused(tmp_path):
    [found] = problems(tmp_path, GOOD.replace("[base, duet]", "[base, dute]"))
    assert found.startswith("s.yaml: methods[1] (line 7): unknown method 'dute'")
    [found] = problems(tmp_path, GOOD.replace("methods:", "plugins: [no_such.plugin]\nmethods:"))
    assert found.startswith("s.yaml: plugins (line 7): plugin 'no_such.plugin' cannot be imported")
