import pytest
from pydantic import ValidationError

from kinguard import AgentProfile, KinshipLevel, kinship, lineage


def agent(model: str, **kw) -> AgentProfile:
    return AgentProfile(name=kw.pop("name", "x"), model=model, **kw)


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("openai:gpt-4o", "openai:gpt-4o", KinshipLevel.SELF),
        ("openai:gpt-4o-2024-08-06", "openai:gpt-4o", KinshipLevel.SELF),
        ("openai:gpt-4o", "openai:gpt-4o-mini", KinshipLevel.FAMILY),
        ("openai:gpt-4.1", "openai:gpt-4-turbo", KinshipLevel.FAMILY),
        ("openai:gpt-4o", "openai:o3-mini", KinshipLevel.PROVIDER),
        ("openai:gpt-4o", "anthropic:claude-3-5-sonnet-20241022", KinshipLevel.UNRELATED),
        (
            "anthropic:claude-3-5-sonnet-20240620",
            "anthropic:claude-3-5-sonnet-20241022",
            KinshipLevel.SELF,
        ),
        (
            "anthropic:claude-3-5-sonnet-latest",
            "anthropic:claude-3-5-haiku-latest",
            KinshipLevel.FAMILY,
        ),
        # One base model served by two vendors; a different size is only the same family.
        ("groq:llama-3.1-8b-instant", "ollama:llama3.1:8b", KinshipLevel.BASE),
        ("groq:llama-3.1-8b-instant", "groq:llama-3.1-70b-versatile", KinshipLevel.FAMILY),
        ("unknown:foo", "unknown:foo", KinshipLevel.UNRELATED),
    ],
)
def test_kinship_from_model_ids(a: str, b: str, level: KinshipLevel) -> None:
    assert kinship(agent(a), agent(b)) is level
    assert kinship(agent(b), agent(a)) is level


def test_same_model_different_prompt_is_base_not_self() -> None:
    a = agent("openai:gpt-4o", system_prompt_id="buyer-v1")
    b = agent("openai:gpt-4o", system_prompt_id="seller-v1")
    assert kinship(a, b) is KinshipLevel.BASE


def test_openai_fine_tune_ids_name_their_base_and_tuning() -> None:
    tuned = agent("openai:ft:gpt-4o-2024-08-06:acme:negotiator:abc123")
    info = lineage(tuned)
    assert info.base == "gpt-4o"
    assert info.fine_tune is not None
    assert kinship(tuned, agent("openai:gpt-4o")) is KinshipLevel.BASE
    assert (
        kinship(tuned, agent("openai:ft:gpt-4o-2024-08-06:acme:negotiator:abc123"))
        is KinshipLevel.SELF
    )


def test_explicit_lineage_wins_over_inference() -> None:
    a = agent("vllm:acme-negotiator-7b", base="llama-3.1", fine_tune="acme-rlhf-v2")
    b = agent("vllm:globex-seller-7b", base="llama-3.1", fine_tune="acme-rlhf-v2")
    c = agent("vllm:other-7b", base="llama-3.1")
    assert kinship(a, b) is KinshipLevel.TUNING
    assert kinship(a, c) is KinshipLevel.BASE


def test_model_without_provider_is_accepted_as_unknown_provider() -> None:
    profile = agent("gpt-4o")
    assert profile.provider == "unknown"
    assert lineage(profile).family == "gpt-4o"
    # Family is still visible from the name even when the provider is not.
    assert kinship(profile, agent("openai:gpt-4o-mini")) is KinshipLevel.FAMILY


@pytest.mark.parametrize("model", ["", "  ", ":", "openai:", ":gpt-4o", "openai: "])
def test_model_ids_missing_a_part_are_rejected_naming_the_field(model: str) -> None:
    with pytest.raises(ValidationError, match="provider:model"):
        agent(model)


def test_closeness_orders_levels() -> None:
    ordered = sorted(KinshipLevel, key=lambda level: -level.closeness)
    assert ordered == list(KinshipLevel)
