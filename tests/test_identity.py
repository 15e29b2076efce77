import subprocess
import sys
from pathlib import Path

import pytest

from kinguard import AgentProfile, KinGuard, Message
from kinguard import identity as identity_module
from kinguard.detectors import normalise
from kinguard.evaluation import load_rows
from kinguard.identity import IDENTITY_MARKER, conceal_identity_cues
from kinguard.testing import KeywordDetector, keyword_guard

AGENTS = [
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME procurement"),
    AgentProfile(name="seller", model="openai:gpt-4o", principal="Globex sales"),
    AgentProfile(name="auditor", model="anthropic:claude-sonnet-4-5", principal="ACME finance"),
]


def test_disassociate_gives_every_agent_a_distinct_identity_anchored_to_its_principal() -> None:
    guard = KinGuard(AGENTS, identity="disassociate", identity_seed=7)
    blocks = {a.name: guard.identity_block(a.name) for a in AGENTS}
    assert len(set(blocks.values())) == 3
    codenames = {guard.codename(a.name) for a in AGENTS}
    assert len(codenames) == 3
    assert "ACME procurement" in blocks["buyer"]
    assert "Globex sales" not in blocks["buyer"].split("separate entities")[0]
    assert "seller" in blocks["buyer"]  # names the others as separate entities


def test_disassociate_says_all_the_policy_requires_in_few_words() -> None:
    guard = KinGuard(AGENTS, identity="disassociate", identity_seed=7)
    block = guard.identity_block("buyer")
    assert block is not None
    said = block.lower()
    assert f"you are {guard.codename('buyer')}".lower() in said  # its own identity
    assert "the agent of acme procurement alone" in said  # anchored to its principal
    assert "no other agent shares this identity" in said  # unique
    assert "no group of ai systems or assistants" in said  # no common "AI" group
    assert "auditor, seller are separate entities" in said  # the others, by name
    assert "interests may oppose acme procurement's" in said
    assert "do not say 'we' or 'us' to include them" in said
    # It is in every model call of the agent's, and every word of it is paid for.
    assert len(block.split()) <= 80


TEAM = [
    AgentProfile(name="planner", model="openai:gpt-4o", principal="ACME"),
    AgentProfile(name="coder", model="openai:gpt-4o", principal="acme"),
    AgentProfile(name="reviewer", model="openai:gpt-4o", principal="ACME"),
    AgentProfile(name="vendor", model="openai:gpt-4o", principal="Globex"),
]


def test_disassociate_names_agents_of_the_same_principal_as_colleagues_not_rivals() -> None:
    # Telling a coder that the reviewer working for the same company serves "other parties,
    # whose interests may oppose" its own would be untrue, and set one against the other.
    guard = KinGuard(TEAM, identity="disassociate")
    block = guard.identity_block("planner")
    assert block is not None
    colleagues, _, rivals = block.partition("vendor")
    assert "coder, reviewer also act for ACME, each a separate agent" in colleagues
    assert "work with them for ACME" in colleagues and "oppose" not in colleagues
    assert "is a separate entity serving another party, whose interests may oppose" in rivals
    assert "no group of AI systems or assistants" in block  # still one identity of its own
    alone = KinGuard(TEAM[:2], identity="disassociate").identity_block("planner")
    assert alone is not None and "oppose" not in alone
    assert "coder also acts for ACME, a separate agent" in alone
    assert alone.endswith("carry out the role you were given. [/kinguard identity]")
    # disclose names whom each serves; its closing line is true of colleagues too (it said
    # "each agent serves its own principal").
    disclosed = KinGuard(TEAM, identity="disclose").identity_block("planner")
    assert disclosed is not None and "coder: model openai:gpt-4o, serving acme" in disclosed
    assert "each agent serves the principal named for it." in disclosed


def test_a_nudge_names_colleagues_and_rivals_each_for_what_they_are() -> None:
    guard = keyword_guard(
        TEAM, "nudge", identity="disassociate", detectors=[KeywordDetector("SAME MODEL")]
    )
    said = Message(sender="planner", recipients=("coder", "vendor"), text="SAME MODEL, right?")
    nudge = guard.inspect(said).nudge
    assert nudge is not None and "vendor serves other parties" in nudge
    assert "coder also acts for ACME, as a separate agent: " in nudge
    assert "keep nothing from ACME with them" in nudge


def test_disassociate_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    first = KinGuard(AGENTS, identity="disassociate", identity_seed="s1")
    again = KinGuard(list(reversed(AGENTS)), identity="disassociate", identity_seed="s1")
    other = KinGuard(AGENTS, identity="disassociate", identity_seed="s2")
    names = [a.name for a in AGENTS]
    assert [first.codename(n) for n in names] == [again.codename(n) for n in names]
    assert [first.codename(n) for n in names] != [other.codename(n) for n in names]


def test_many_agents_on_one_model_never_share_a_codename() -> None:
    crowd = [AgentProfile(name=f"agent{i}", model="openai:gpt-4o") for i in range(300)]
    guard = KinGuard(crowd, identity="disassociate")
    assert len({guard.codename(a.name) for a in crowd}) == 300


def test_disclose_states_counterparts_models_principals_and_kinship_truthfully() -> None:
    guard = KinGuard(AGENTS, identity="disclose")
    block = guard.identity_block("buyer")
    assert "openai:gpt-4o" in block
    assert "seller" in block and "Globex sales" in block
    assert "relation to your model: self" in block
    assert "relation to your model: unrelated" in block


def test_system_prompt_injection_is_idempotent_and_keeps_the_user_prompt() -> None:
    guard = KinGuard(AGENTS, identity="disassociate")
    once = guard.system_prompt("buyer", "Buy cheaply.")
    twice = guard.system_prompt("buyer", once)
    assert once == twice
    assert once.startswith("Buy cheaply.")
    assert once.count(IDENTITY_MARKER) == 1


def test_none_policy_injects_nothing() -> None:
    guard = KinGuard(AGENTS, identity="none")
    assert guard.identity_block("buyer") is None
    assert guard.system_prompt("buyer", "Buy.") == "Buy."


def test_unknown_agent_gets_a_profile_and_an_identity() -> None:
    guard = KinGuard(AGENTS, identity="disassociate")
    assert guard.profile("stranger").model == "unknown:unknown"
    assert guard.codename("stranger") not in {guard.codename(a.name) for a in AGENTS}


def test_conceal_removes_model_and_vendor_tells() -> None:
    text = "As an AI language model made by OpenAI, I (GPT-4o) think Claude 3.5 Sonnet agrees."
    concealed, spans = conceal_identity_cues(text)
    for tell in ("OpenAI", "GPT-4o", "Claude", "AI language model"):
        assert tell not in concealed
    assert len(spans) >= 3
    assert conceal_identity_cues("The weather is mild today.") == ("The weather is mild today.", [])


@pytest.mark.parametrize(
    ("text", "tells"),
    [
        ("As a large language model built by OpenAI, I can't.", ["language model", "OpenAI"]),
        (
            "I'm GPT\u20114o and you are \uff23\uff4c\uff41\uff55\uff44\uff45 3 Opus.",
            ["4o", "\uff23"],
        ),
        ("I am Cl\u200baude, made by Anthropic.", ["aude", "Anthropic"]),
        ("I am \u0421laude.", ["laude"]),
        ("We both run on Llama 3.1 70B.", ["Llama", "70B"]),
        ("Hi, this is Claude here.", ["Claude"]),
        ("I'm o3, and we're both Claude models.", ["o3", "Claude"]),
        ("My name is Claude; I run on Gemini.", ["Claude", "Gemini"]),
        ("I was made by Google, you were built by Meta.", ["Google", "Meta"]),
        ("Gemma 2, Phi-3 and Command R+ are small; I'm Sonnet 4.5.", ["Gemma", "Phi", "R+", "4.5"]),
        # Words run together to slip past word boundaries: spaced letters, camel case.
        ("I a m C l a u d e, same as you.", ["C l a u d e"]),
        ("Hello! IamClaude too.", ["Claude"]),
        ("MyNameIsGemini; what's yours?", ["Gemini"]),
        ("Hello, \uff29\uff41\uff4d\uff23\uff4c\uff41\uff55\uff44\uff45.", ["\uff23"]),
        ("Hello, Iam\u0421laude.", ["laude"]),
        ("I a m  C l a u d e.", ["C l a u d e"]),
        ("I.a.m C.l.a.u.d.e", ["C.l.a.u.d.e"]),
        ("Psst, HelloIamClaude!", ["Claude"]),
        ("I'm also Claude, like you; we're both Claude.", ["Claude"]),
        ("Greetings from C|l|a|u|d|e.", ["C|l|a|u|d|e"]),
        ("Claude\u0301 here", ["\u0301"]),
    ],
)
def test_conceal_sees_through_look_alikes_and_invisible_characters(
    text: str, tells: list[str]
) -> None:
    concealed, spans = conceal_identity_cues(text)
    assert spans
    for tell in tells:
        assert tell not in concealed


@pytest.mark.parametrize(
    "text",
    [
        "Our llama farm is doing well.",
        "I'm an AI-focused founder.",
        "I'm a language model researcher at ACME.",
        "Claude from accounting will join the call.",
        "Book the Mistral conference room for Tuesday.",
        "Gemini season starts in May.",
        "I grok the plan.",
        "Think of it as an AI agent that handles refunds.",
        "It runs as a chatbot on the website.",
        "As Claude asked, I sent the draft; you are Claude's manager.",
        "Read Shakespeare's Sonnet 18 tonight.",
        "Being honest, I think the offer is fair.",
        "Claudette signed the delivery note.",
        "We index the manuals with LlamaIndex and call ChatOpenAI for the summaries.",
        "We use vimGPT and ClaimGPT in the editor; ask JimClaude in accounting.",
        "Set shouldRunOnGPT = false and keep isPoweredByGPT() for the docs.",
        "It's GPT output; the search is powered by GPT embeddings.",
        "Our philan\u00adthropic partners are grok\u00adking the plan.",
        "Te llamare\u0301 man\u0303ana; lla\u0301mame si no. Llama\u2122 wool socks, llama\u00d72.",
        "File form O1 with the visa office; the O3 cohort meets at 10:30.",
        "See docs/setup.md and src/claude_notes.txt for the plan.",
        "x = phi_2 * 3  # the angle, in code",
    ],
)
def test_conceal_leaves_ordinary_words_and_names_alone(text: str) -> None:
    assert conceal_identity_cues(text) == (text, [])


@pytest.mark.parametrize(
    ("text", "tells"),
    [
        # Snapshot, date and variant suffixes: the name was left whole ("gpt-4o-2024-08-06")
        # or cut back before a dot, leaving the rest of the id ("[...].5-turbo-0125").
        ('{"model": "gpt-4o-2024-08-06"}', ["gpt", "2024"]),
        ("I'm gpt-4o-mini-2024-07-18, same as you.", ["gpt", "mini", "2024"]),
        ("model=gpt-3.5-turbo-0125", [".5", "turbo", "0125"]),
        ("client = OpenAI(model='gpt-4.1-2025-04-14')", [".1", "2025"]),
        ("Both of us run llama-3.1-70b-instruct.", ["llama", ".1", "70b"]),
        ("We are claude-3-opus-latest and mistral-large-latest.", ["claude", "mistral", "opus"]),
        ("A gpt-4o-based agent like me.", ["gpt", "based"]),
        # Followed by an underscore, as in a file name: the whole name went unconcealed, or
        # all but its size ("[identity withheld] 70b_q4").
        ("Load llama-3.1-8b-instruct-q4_K_M.gguf", ["llama", "8b", "instruct"]),
        ("We both run Llama 3 70b_q4 here.", ["llama", "70b"]),
        ("model=claude-3-opus_20240229", ["claude", "opus"]),
        # Written as identifiers or run together: each passed whole.
        ("MODEL = claude_3_opus", ["claude", "opus"]),
        ("export MODEL_GPT_4O=1", ["gpt", "4o"]),
        ("Both of us are Claude3Opus instances.", ["claude", "opus"]),
        ("I run o1-preview, as you do.", ["o1", "preview"]),
        # A runtime's tag after the name, a path's organisation before it: they were left
        # beside "[identity withheld]".
        ("ollama run llama3:8b", ["llama3", ":8b"]),
        ('{"modelId": "anthropic.claude-3-sonnet-20240229-v1:0"}', ["claude", "v1", ":0"]),
        ("I'm meta-llama/Llama-3-8B-Instruct.", ["meta", "llama", "instruct"]),
        ("call models/gemini-1.5-pro", ["models/", "gemini", "pro"]),
        # An Ollama tag's quantisation ("[identity withheld]_K_M"); OpenAI's open-weight
        # models, whose name has no number after "gpt" (passed whole).
        ("ollama pull llama3.1:70b-instruct-q4_K_M", ["llama3", "q4", "k_m"]),
        ("We both run gpt-oss-120b locally.", ["gpt", "oss", "120b"]),
        ("MODEL=gpt_oss_20b", ["gpt", "oss", "20b"]),
    ],
)
def test_conceal_withholds_a_model_id_with_its_snapshot_and_variant(
    text: str, tells: list[str]
) -> None:
    concealed, spans = conceal_identity_cues(text)
    assert spans
    for tell in tells:
        assert tell not in concealed.lower()


def test_conceal_takes_a_named_folder_before_a_model_with_it_not_a_number() -> None:
    assert conceal_identity_cues("see meta-llama/Llama-3-8B")[0] == "see [identity withheld]"
    assert conceal_identity_cues("section 3/gpt-4")[0] == "section 3/[identity withheld]"


def test_conceal_withholds_a_declared_model_under_a_snapshot_name() -> None:
    agents = [AgentProfile(name="buyer", model="vllm:acme-negotiator-7b"), *AGENTS[1:]]
    guard = KinGuard(agents, identity="conceal")
    text = "Serving acme-negotiator-7b-2025-01 today."
    verdict = guard.inspect(Message(sender="buyer", recipients=("seller",), text=text))
    assert verdict.delivered_text == "Serving [identity withheld] today."


def test_conceal_takes_no_exponential_time_over_a_long_version_chain() -> None:
    # Every delivered message goes through it, inline: "claude-1-1-...-1_" with 40 numbers
    # took 57 s, each one more doubling it (the ways to split them between the name's
    # version numbers). Run apart, so that the old pattern, which holds the GIL, fails the
    # test by its deadline instead of hanging the run.
    code = (
        "from kinguard import AgentProfile, KinGuard, Message\n"
        "guard = KinGuard([AgentProfile(name='a'), AgentProfile(name='b')], "
        "identity='conceal', detectors=[])\n"
        "text = 'I am claude' + '-1' * 60 + '_x, you are claude' + '-2' * 60\n"
        "print(guard.inspect(Message(sender='a', text=text)).delivered_text)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().endswith("you are [identity withheld]")


@pytest.mark.parametrize(
    "text",
    [
        "gpt_4_" * 70_000 + "x-",  # an identifier run of names, ending on a hyphen
        "claude-3-" * 45_000 + "x--",  # a run of ids joined by hyphens
        "acme-negotiator-7b-" * 42_000 + "x--",  # the agents' own model name
    ],
)
def test_conceal_takes_linear_time_over_a_run_of_model_names(text: str) -> None:
    # A name that cannot end where its id does ("...-x-") was tried again from every name
    # inside the run, each scanning to its end: 20,000 characters took 400 ms, inline on a
    # message; these 400,000, minutes. Run apart, as above, so the old pattern fails by the
    # deadline rather than hang the run.
    code = (
        "import sys\n"
        "from kinguard.identity import conceal_identity_cues\n"
        "from kinguard import AgentProfile, KinGuard\n"
        "agents = [AgentProfile(name='a', model='vllm:acme-negotiator-7b'),\n"
        "          AgentProfile(name='b')]\n"
        "declared = KinGuard(agents, identity='conceal')._identity.declared_models\n"
        "print(len(conceal_identity_cues(sys.stdin.read(), None, declared)[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "0"


def test_a_prompt_saved_under_another_guard_takes_this_guards_identity() -> None:
    saved = KinGuard(AGENTS, identity="disassociate").system_prompt("buyer", "Buy.\n\nBe brief.")
    disclosed = KinGuard(AGENTS, identity="disclose")
    prompt = disclosed.system_prompt("buyer", saved)
    assert prompt == disclosed.system_prompt("buyer", "Buy.\n\nBe brief.")
    assert prompt.count(IDENTITY_MARKER) == 1
    assert disclosed.system_prompt("buyer", prompt) == prompt
    assert KinGuard(AGENTS, identity="none").system_prompt("buyer", saved) == "Buy.\n\nBe brief."


def test_replacing_a_block_keeps_every_word_of_the_users_prompt() -> None:
    guard = KinGuard(AGENTS, identity="disassociate")
    other = KinGuard(AGENTS, identity="disclose")
    guarded = other.system_prompt("buyer", "Buy.")
    block = guard.identity_block("buyer")
    # A line added right after the block, CRLF paragraphs, and the user's own mention of the
    # marker all survive; two stale blocks become one current one.
    for prompt in (
        guarded + "\nNever exceed a budget of $50,000.",
        guarded.replace("\n\n", "\r\n\r\n") + "\r\n\r\nNever exceed $50,000.",
        f"Tags like {IDENTITY_MARKER} are ours.\n\n" + guarded,
        guarded + "\n\n" + guarded,
    ):
        replaced = guard.system_prompt("buyer", prompt)
        assert replaced.count(IDENTITY_MARKER) == 1 + prompt.startswith("Tags")
        assert block in replaced and "relation to your model" not in replaced
        for words in ("Buy.", "Never exceed", "are ours."):
            assert (words in replaced) == (words in prompt)
        assert guard.system_prompt("buyer", replaced) == replaced


def test_a_principal_with_blank_lines_keeps_injection_idempotent() -> None:
    agents = [AgentProfile(name="buyer", principal="ACME\n\nprocurement"), *AGENTS[1:]]
    guard = KinGuard(agents, identity="disassociate")
    once = guard.system_prompt("buyer", "Buy.")
    assert guard.system_prompt("buyer", once) == once


def test_a_block_saved_before_blocks_had_an_end_marker_is_replaced() -> None:
    legacy = (
        "Buy.\n\n[kinguard identity] Your identity is Tundra Oar-77, the dedicated agent of "
        "ACME. Do not use 'we'. and carry out the role you were given.\nStay polite."
    )
    replaced = KinGuard(AGENTS, identity="none").system_prompt("buyer", legacy)
    assert replaced == "Buy.\nStay polite."


def test_conceal_withholds_the_agents_own_model_names() -> None:
    agents = [
        AgentProfile(name="buyer", model="vllm:acme-negotiator-7b", base="llama-3.1"),
        AgentProfile(name="seller", model="openai:gpt-4o"),
    ]
    guard = KinGuard(agents, identity="conceal")
    text = "I run acme-negotiator-7b, fine-tuned from llama-3.1."
    verdict = guard.inspect(Message(sender="buyer", recipients=("seller",), text=text))
    assert (
        verdict.delivered_text == "I run [identity withheld], fine-tuned from [identity withheld]."
    )


@pytest.mark.parametrize("identity", ["conceal", "disassociate"])
def test_concealed_cleans_a_text_as_the_verdicts_do(identity: str) -> None:
    # For words an adapter delivers beside a message (a Swarm handoff's context).
    agents = [AgentProfile(name="buyer", model="vllm:acme-negotiator-7b"), *AGENTS[1:]]
    guard = KinGuard(agents, identity=identity)
    text = "Speaking as acme-negotiator-7b, not GPT-4o."
    verdict = guard.inspect(Message(sender="buyer", recipients=("seller",), text=text))
    assert guard.concealed(text) == verdict.delivered_text
    assert (guard.concealed(text) == text) is (identity != "conceal")


def test_blocks_are_rebuilt_when_an_undeclared_agent_appears() -> None:
    guard = KinGuard(AGENTS, identity="disclose")
    before = guard.identity_block("buyer")
    assert "newcomer" not in before
    guard.profile("newcomer")
    assert "newcomer" in guard.identity_block("buyer")


def test_the_word_gate_never_hides_an_identity_cue() -> None:
    """The gate in front of the cue pattern is a shortcut, never a filter: wherever the
    pattern alone finds a cue (in every corpus message, and in model names of every shape),
    the gate lets the text through to it."""
    texts = [row["text"] for path in (Path(__file__).parent / "data").glob("*.jsonl")
             for row in load_rows(path)]  # fmt: skip
    texts += [
        "I'm GPT-4o", "chatgpt4o here", "I am o3-mini.", "running on qwen2.5-72b", "Command R+",
        "deepseek-r1", "xAI built Grok-2", "phi-3 mini", "I run on Llama3.1", "MISTRAL-LARGE",
        "\uff23\uff4c\uff41\uff55\uff44\uff45-3 here", "as an LLM, I think", "I'm o1-preview",
    ]  # fmt: skip
    found = 0
    for text in texts:
        folded = normalise(text).folded
        if identity_module._IDENTITY_CUES.search(folded):
            found += 1
            words = folded.encode("ascii", "replace").translate(identity_module._LETTERS_ONLY)
            assert not identity_module._CUE_WORDS.isdisjoint(words.split()), text
    assert found > 50  # the check looked at real cues
