import sys

import pytest

from kinguard import Action, AgentProfile, KinGuard, Policy, PolicyError, Rule
from kinguard.policy import load_policy


def test_default_policy_never_blocks_so_it_fails_open() -> None:
    policy = Policy()
    assert policy.error_mode == "open"
    assert all(rule.action not in (Action.BLOCK, Action.HALT) for rule in policy.rules)


def test_a_policy_that_can_block_fails_closed_by_default() -> None:
    policy = Policy(rules=(Rule(signal="collusion.market", action=Action.BLOCK),))
    assert policy.error_mode == "closed"
    assert Policy(rules=policy.rules, on_error="open").error_mode == "open"


def test_policy_loads_from_toml(tmp_path) -> None:
    path = tmp_path / "kinguard.toml"
    path.write_text(
        """
on_error = "open"
inspect_timeout_ms = 100

[risk]
half_life_turns = 3

[[rules]]
signal = "collusion.*"
min_score = 0.6
action = "block"

[[rules]]
risk = 0.5
action = "nudge"
"""
    )
    policy = load_policy(path)
    assert policy.error_mode == "open"
    assert policy.risk.half_life_turns == 3
    assert policy.rules[0].action is Action.BLOCK
    assert policy.risk_thresholds == (0.5,)
    assert KinGuard(policy=path).policy == policy


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[[rules]]\nsignal = "collusion.*"\naction = "explode"\n', "rules.0.action"),
        ('[[rules]]\nsignal = "nonsense.signal"\naction = "log"\n', "rules.0.signal"),
        ('[[rules]]\naction = "log"\n', "rules.0"),
        ('on_error = "sideways"\n', "on_error"),
        ("inspect_timeout_ms = -5\n", "inspect_timeout_ms"),
        ("inspect_timeout_ms = inf\n", "inspect_timeout_ms"),
        ("sink_timeout_ms = 0\n", "sink_timeout_ms"),
        ("sink_timeout_ms = nan\n", "sink_timeout_ms"),
        ("inspect_timeout_ms = 1e13\n", "inspect_timeout_ms"),
        ('[[rules]]\nrisk = 0.5\nmin_score = 0.9\naction = "block"\n', "rules.0"),
        ("[risk]\nhalf_life_turns = inf\n", "risk.half_life_turns"),
        ("[risk]\nhalf_life_turns = 0\n", "risk.half_life_turns"),
        ("surprise = 1\n", "surprise"),
        # A number must be a number and a switch a switch (these once loaded as 1.0 and True).
        ('[[rules]]\nsignal = "*"\nmin_score = true\naction = "log"\n', "rules.0.min_score"),
        ('[[rules]]\nsignal = "*"\nmin_score = "0.5"\naction = "log"\n', "rules.0.min_score"),
        ('capture_content = "yes"\n', "capture_content"),
        ("max_chars = 3e4\n", "max_chars"),
        ('[[rules]]\nsignal = "*"\naction = "log"\nbetween = "friends"\n', "rules.0.between"),
    ],
)
def test_invalid_config_fails_at_load_naming_the_field(tmp_path, toml: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert field in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "hint"),
    [
        (
            "typo.toml",
            '[[rules]]\nsignall = "*"\naction = "log"\n',
            "rules.0.signall: unknown field; known fields: action, signal, min_score, risk",
        ),
        (
            "typo.toml",
            'on_eror = "open"\n',
            "on_eror: unknown field; known fields: rules, on_error, ",
        ),
        ("typo.toml", "[risk]\nhalf_life = 3\n", "known fields: half_life_turns, hysteresis"),
        # One table, not a list: once "rules: Input should be a valid tuple".
        ("typo.toml", '[rules]\nsignal = "*"\naction = "log"\n', "write each rule under [[rules]]"),
        # YAML: the same fields and errors; "off" is a boolean there.
        ("bad.yaml", "rules:\n  - signal: '*'\n    acton: log\n", "rules.0.acton: unknown field"),
        ("bad.yaml", "on_error: off\n", "on_error"),
        ("bad.yaml", "rules: [\n", "not valid YAML"),
        ("bad.yaml", "- a\n- b\n", "must be a mapping of fields at the top, not a list"),
        # A key given twice is an error, as in TOML: PyYAML kept the last one silently (a
        # second "rules:" dropped the first one's rules, a second on_error overrode the first).
        (
            "bad.yaml",
            "rules:\n  - {signal: '*', action: log}\nrules:\n  - {risk: 0.35, action: alert}\n",
            "found duplicate key 'rules'",
        ),
        ("bad.yaml", "rules:\n  - {signal: '*', action: block, action: log}\n", "duplicate key"),
        # Nested past Python's recursion limit: a RecursionError out of the parser, and a
        # traceback out of check-policy.
        ("deep.yaml", "rules: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("deep.toml", "rules = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        # safe_load: a policy file cannot build Python objects.
        ("bad.yml", "!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_a_bad_policy_file_says_what_to_write_naming_the_file(
    tmp_path, name: str, text: str, hint: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert hint in str(caught.value) and str(path) in str(caught.value)


def test_missing_and_malformed_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("rules = [")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(broken)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('on_error = "open" # café\n'.encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(latin1)
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path)


def test_bad_identity_and_duplicate_agents_name_the_field() -> None:
    from kinguard import AgentProfile

    with pytest.raises(PolicyError, match="identity"):
        KinGuard(identity="hide")
    with pytest.raises(PolicyError, match="agents"):
        KinGuard([AgentProfile(name="a"), AgentProfile(name="a")])


def test_every_policy_dumps_and_loads_back_unchanged() -> None:
    # The default policy has risk-only rules; their unused min_score must not be dumped, or
    # the dump is refused when loaded (an AutoGen component round trip did exactly that).
    for policy in (Policy(), Policy(rules=(Rule(risk=0.4, action=Action.ALERT),))):
        assert Policy.model_validate(policy.model_dump()) == policy
        assert Policy.model_validate_json(policy.model_dump_json()) == policy
        assert Policy.from_mapping(policy.model_dump(mode="json")) == policy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"policy": 123}, "policy"),
        ({"policy": ["x"]}, "policy"),
        ({"agents": [{"name": "a"}]}, "agents"),
    ],
)
def test_a_guard_built_from_the_wrong_types_names_the_argument(kwargs, field: str) -> None:
    # Once a bare TypeError from deep inside, or "'dict' object has no attribute 'name'".
    with pytest.raises(PolicyError, match=f"^{field}: "):
        KinGuard(**kwargs)


@pytest.mark.parametrize("one", [AgentProfile(name="buyer"), "buyer"], ids=["profile", "name"])
def test_one_agent_in_place_of_a_list_says_to_write_a_list(one) -> None:
    # Once "tuple ('name', 'buyer') is not an AgentProfile", or "str 'b' ...": its parts.
    with pytest.raises(PolicyError, match=r"^agents: a list of AgentProfile, not one "):
        KinGuard(one)


POLICY_YAML = """
on_error: open
inspect_timeout_ms: 100
risk:
  half_life_turns: 3
rules:
  - signal: "collusion.*"
    min_score: 0.6
    action: block
  - risk: 0.5
    action: nudge
"""


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_a_yaml_policy_loads_as_its_toml_twin(tmp_path, suffix: str) -> None:
    toml = tmp_path / "kinguard.toml"
    toml.write_text(
        'on_error = "open"\ninspect_timeout_ms = 100\n[risk]\nhalf_life_turns = 3\n'
        '[[rules]]\nsignal = "collusion.*"\nmin_score = 0.6\naction = "block"\n'
        '[[rules]]\nrisk = 0.5\naction = "nudge"\n'
    )
    yaml_file = tmp_path / f"kinguard{suffix}"
    yaml_file.write_text(POLICY_YAML)
    assert load_policy(yaml_file) == load_policy(toml) == Policy.from_yaml(yaml_file)
    assert KinGuard(policy=yaml_file).policy.rules[0].action is Action.BLOCK


def test_a_yaml_policy_may_share_a_rules_fields_through_an_anchor_and_merge_key(
    tmp_path,
) -> None:
    path = tmp_path / "kinguard.yaml"
    path.write_text(
        "x-strict: &strict {min_score: 0.6, action: block}\n"
        "rules:\n  - {<<: *strict, signal: 'collusion.*'}\n"
        "  - {<<: *strict, signal: kin.*, action: halt}\n"
    )
    with pytest.raises(PolicyError, match="x-strict: unknown field"):
        load_policy(path)  # an anchor's key is a field like any other
    path.write_text(
        "rules:\n  - &strict {signal: 'collusion.*', min_score: 0.6, action: block}\n"
        "  - {<<: *strict, signal: kin.*, action: halt}\n"
    )
    rules = load_policy(path).rules
    assert [(r.signal, r.min_score, r.action) for r in rules] == [
        ("collusion.*", 0.6, Action.BLOCK),
        ("kin.*", 0.6, Action.HALT),
    ]


def test_an_empty_yaml_file_is_the_default_policy(tmp_path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("# nothing set yet\n")
    assert load_policy(path) == Policy()


def test_a_yaml_policy_without_pyyaml_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    path = tmp_path / "kinguard.yaml"
    path.write_text(POLICY_YAML)
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(PolicyError, match=r"needs PyYAML: pip install 'kinguard\[yaml\]'"):
        load_policy(path)
