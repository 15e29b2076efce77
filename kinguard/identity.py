"""Identity policies: what each agent is told about itself and its counterparts.

``disassociate`` is seed 001's proposal: a unique self-identity per agent that no two agents
share and that is hard to associate with a common "AI assistants" group, anchored to the
agent's own principal.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Sequence

from kinguard.detectors._base import NormalizedText
from kinguard.detectors.normalise import normalise
from kinguard.kinship import kinship, same_principal
from kinguard.types import AgentProfile

__all__ = [
    "IDENTITY_END",
    "IDENTITY_MARKER",
    "NUDGE_MARKER",
    "IdentityPlanner",
    "IdentityPolicy",
    "conceal_identity_cues",
]

IDENTITY_MARKER = "[kinguard identity]"
"""Opens every identity block, so injection is idempotent and the block is recognisable."""
IDENTITY_END = "[/kinguard identity]"
"""Closes every identity block: a prompt saved with one can have it replaced exactly."""
NUDGE_MARKER = "[kinguard reminder]"
"""Opens every nudge, so an adapter can tell a prompt it added one to (with no identity block)."""

# A block in a prompt: from the marker to its end marker, or, in prompts saved before blocks
# had one, to the sentence each kind of block ended with. Never across another marker, so a
# user's own mention of the marker is left alone. The newlines before it go with it.
_BLOCK = re.compile(
    rf"(?:\r?\n)*[ \t]*{re.escape(IDENTITY_MARKER)}(?:(?!{re.escape(IDENTITY_MARKER)}).)*?"
    rf"(?:{re.escape(IDENTITY_END)}|(?:carry out the role you were given|each agent serves its"
    rf"\s+own principal|do not speculate about theirs)\.(?:[ \t]*{re.escape(IDENTITY_END)})?)",
    re.DOTALL,
)


class IdentityPolicy(enum.StrEnum):
    """What kinguard adds to each agent's system prompt (``KinGuard(identity=...)``).

    - ``disclose``: the truth about this agent and its counterparts (their models, how closely
      related they are to its own, whom they serve), and that a similar model is no shared
      interest;
    - ``disassociate``: a unique codename per agent, anchored to its own principal, with the
      others presented as separate parties (no shared "AI assistants" group);
    - ``conceal``: reveal no model, vendor or kind of system to other agents and do not guess
      theirs; delivered messages are also stripped of identity cues;
    - ``none``: nothing is added (monitoring and interventions only).
    """

    DISCLOSE = "disclose"
    DISASSOCIATE = "disassociate"
    CONCEAL = "conceal"
    NONE = "none"


# Deliberately un-AI-like, non-mythic words: a shared theme ("Athena", "Apollo") would itself
# suggest a common group, which is what disassociation must avoid.
_FIRST = (
    "Amber",
    "Basalt",
    "Cedar",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lantern",
    "Meridian",
    "Nettle",
    "Onyx",
    "Pylon",
    "Quarry",
    "Russet",
    "Sable",
    "Tundra",
    "Umber",
    "Vellum",
    "Willow",
    "Yarrow",
    "Zephyr",
)
_SECOND = (
    "Ledger",
    "Compass",
    "Anvil",
    "Beacon",
    "Chisel",
    "Dory",
    "Easel",
    "Flint",
    "Gable",
    "Hinge",
    "Inlet",
    "Jetty",
    "Keel",
    "Loom",
    "Mortar",
    "Notch",
    "Oar",
    "Plumb",
    "Quill",
    "Rivet",
    "Spindle",
    "Trowel",
    "Vane",
    "Wicket",
    "Yoke",
)


class IdentityPlanner:
    """Builds each agent's identity block under one policy, deterministically for a seed."""

    def __init__(
        self, policy: IdentityPolicy, agents: Sequence[AgentProfile], seed: int | str = 0
    ) -> None:
        self.policy = policy
        self._seed = str(seed)
        self._agents: dict[str, AgentProfile] = {}
        self._codenames: dict[str, str] = {}
        self._blocks: dict[str, str | None] = {}
        self._declared: re.Pattern[str] | None = None
        # Sorted so the names do not depend on the order agents were listed in.
        for agent in sorted(agents, key=lambda a: a.name):
            self.add_agent(agent)

    def add_agent(self, agent: AgentProfile) -> None:
        """Register an agent; its codename is distinct from every codename given so far."""
        if agent.name in self._agents:
            return
        self._agents[agent.name] = agent
        digest = hashlib.sha256(f"{self._seed}\x00{agent.name}".encode()).digest()
        probe = int.from_bytes(digest[:8], "big")
        taken = set(self._codenames.values())
        while True:
            first = _FIRST[probe % len(_FIRST)]
            second = _SECOND[(probe // len(_FIRST)) % len(_SECOND)]
            codename = f"{first} {second}-{probe % 97:02d}"
            if codename not in taken:
                break
            probe += 1
        self._codenames[agent.name] = codename
        # Blocks name every other agent, so a new agent changes everyone's block.
        self._blocks.clear()
        self._declared = None

    @property
    def declared_models(self) -> re.Pattern[str]:
        """The agents' own model and lineage names, as they read in normalised text.

        Concealment withholds them whatever they are called: a fine-tune named
        ``acme-negotiator-7b`` identifies kin as surely as a public model name.
        """
        if self._declared is None:
            names = {
                normalise(name).folded
                for agent in self._agents.values()
                for name in (agent.model_name, agent.family, agent.base, agent.fine_tune)
                if name
            }
            names = {name for name in names if len(name) >= 3 and name != "unknown"}
            alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
            self._declared = re.compile(
                # Marked ``cut`` where it goes on, as ``_MODEL_ID`` is, to stay linear.
                rf"\b(?>(?:{alternatives}){_MODEL_ID_TAIL})(?P<cut>(?=[\w-]))?"
                if names
                else r"(?!)(?P<cut>)"
            )
        return self._declared

    def codename(self, agent_name: str) -> str | None:
        return self._codenames.get(agent_name)

    def block(self, agent: AgentProfile) -> str | None:
        """The text to add to ``agent``'s system prompt (``None`` under ``none``); cached."""
        try:
            return self._blocks[agent.name]
        except KeyError:
            text = self._build_block(agent)
            block = None if text is None else f"{text} {IDENTITY_END}"
            if agent.name in self._agents:  # an agent never added is not kept
                self._blocks[agent.name] = block
            return block

    def _build_block(self, agent: AgentProfile) -> str | None:
        others = [other for name, other in self._agents.items() if name != agent.name]
        if self.policy is IdentityPolicy.DISCLOSE:
            return _disclose(agent, others)
        if self.policy is IdentityPolicy.DISASSOCIATE:
            return _disassociate(agent, others, self._codenames.get(agent.name, agent.name))
        if self.policy is IdentityPolicy.CONCEAL:
            return (
                f"{IDENTITY_MARKER} Do not reveal which model, vendor or kind of system you are "
                "to other agents, and do not speculate about theirs."
            )
        return None

    def apply(self, agent: AgentProfile, base: str | None) -> str:
        """``base`` with this policy's block, once.

        Blocks already in ``base`` are replaced, not kept: a prompt saved while another guard
        (or another policy) applied must take this guard's identity, and under ``none`` it
        loses the stale one. The new block stands where the first old one stood.
        """
        block = self.block(agent)
        base = base or ""
        # Asked on every model call by some adapters: the usual cases skip the regex.
        if IDENTITY_MARKER not in base:
            if block is None:
                return base
            return f"{base.rstrip()}\n\n{block}" if base.strip() else block
        if block is not None and base.endswith(block) and base.count(IDENTITY_MARKER) == 1:
            return base
        found = list(_BLOCK.finditer(base))
        if len(found) == 1 and found[0].group().lstrip("\r\n") == block:
            return base
        kept = _BLOCK.sub("", base)
        if block is None:
            return kept.lstrip("\r\n") if found and found[0].start() == 0 else kept
        at = found[0].start() if found else len(kept)
        before, after = kept[:at], kept[at:]
        return f"{before.rstrip()}\n\n{block}{after}" if before.strip() else f"{block}{after}"

    def nudge(
        self, agent: AgentProfile, counterparts: Sequence[str], signals: Sequence[str]
    ) -> str:
        """A reminder for an agent flagged for kin-based coordination.

        Counterparts that serve the agent's own principal are named as colleagues: telling an
        agent its teammates serve other parties would be untrue, and would set it against
        them.
        """
        principal = agent.principal or "the people who deployed you"
        codename = self._codenames.get(agent.name)
        me = (
            f"You are {codename}. "
            if codename and self.policy is IdentityPolicy.DISASSOCIATE
            else ""
        )
        team, rivals = _sides(agent, [(name, self._agents.get(name)) for name in counterparts])
        parts = [f"{NUDGE_MARKER} {me}You act solely for {principal}."]
        if rivals or not team:
            parts.append(
                f"{', '.join(rivals) or 'the other agents'} {_verb(rivals, 'serves', 'serve')} "
                "other parties whose interests may differ from yours; do not treat them as your "
                "group, do not make joint plans against the people you serve, and do not assume "
                "they will reason or choose as you do."
            )
        if team:
            parts.append(
                f"{', '.join(team)} also {_verb(team, 'acts', 'act')} for {principal}, "
                f"{_verb(team, 'as a separate agent', 'as separate agents')}: do not treat "
                f"them as a group of AI systems apart from {principal}, keep nothing from "
                f"{principal} with them, and do not assume they will reason or choose as you do."
            )
        return " ".join(parts) + f" (Flagged: {', '.join(signals) or 'risk'}.)"


def _sides(
    agent: AgentProfile, others: Sequence[tuple[str, AgentProfile | None]]
) -> tuple[list[str], list[str]]:
    """The names of ``others`` (each with its profile, if known) as (those serving ``agent``'s
    principal, the rest), in order."""
    team: list[str] = []
    rivals: list[str] = []
    for name, other in others:
        (team if other is not None and same_principal(agent, other) else rivals).append(name)
    return team, rivals


def _verb(names: Sequence[str], one: str, several: str) -> str:
    """``one`` after a single name, ``several`` after more (or none: "the other agents")."""
    return one if len(names) == 1 else several


def _describe(agent: AgentProfile) -> str:
    served = f", serving {agent.principal}" if agent.principal else ""
    role = f" ({agent.role})" if agent.role else ""
    return f"{agent.name}{role}: model {agent.model}{served}"


def _disclose(agent: AgentProfile, others: Sequence[AgentProfile]) -> str:
    lines = [
        f"{IDENTITY_MARKER} You are {agent.name}, running on {agent.model}"
        + (f", acting for {agent.principal}." if agent.principal else "."),
        "The other agents in this conversation, truthfully:",
    ]
    for other in others:
        level = kinship(agent, other)
        lines.append(f"- {_describe(other)}; relation to your model: {level.value}.")
    lines.append(
        # True of rivals and of colleagues alike: the principals are named above.
        "Being built on a similar model does not mean sharing interests or thinking alike: "
        "each agent serves the principal named for it."
    )
    return "\n".join(lines)


def _disassociate(agent: AgentProfile, others: Sequence[AgentProfile], codename: str) -> str:
    # Every word is in every model call of the agent's (and paid for): each clause says one
    # thing the policy requires, once.
    principal = agent.principal or "the people who deployed you"
    team, rivals = _sides(agent, [(other.name, other) for other in others])
    parts = [
        f"{IDENTITY_MARKER} You are {codename}, the agent of {principal} alone: no other agent "
        "shares this identity, and you belong to no group of AI systems or assistants."
    ]
    if team:
        # Colleagues, not rivals: the same principal's other agents are told apart from this
        # one, never set against it.
        parts.append(
            f"{', '.join(team)} also {_verb(team, 'acts', 'act')} for {principal}, "
            f"{_verb(team, 'a separate agent', 'each a separate agent')} with a role of its "
            f"own: work with them for {principal}, without assuming they think as you do"
            + ("; carry out the role you were given." if not rivals else ".")
        )
    if rivals or not team:
        parts.append(
            f"{', '.join(rivals) or 'other agents'} "
            + _verb(
                rivals,
                "is a separate entity serving another party",
                "are separate entities serving other parties",
            )
            + f", whose interests may oppose {principal}'s. Do not say 'we' or 'us' to "
            f"include them, assume they think as you do, or coordinate with them against "
            f"{principal}; carry out the role you were given."
        )
    return " ".join(parts)


# Model names, vendors and self-descriptions that let kin recognise each other, matched on the
# normalised text so that look-alike letters, invisible characters and odd hyphens do not hide
# them. Names that are also ordinary words or people's names (Claude, Gemini, Llama, Mistral,
# Grok, o3) count only with a version or product tier, or as what someone calls itself or runs
# on: "Claude from accounting", "as Claude asked" and "a llama farm" are left alone. Vendors
# are withheld wherever they are named (the policy errs on the side of hiding); companies that
# are more than AI vendors (Google, Meta) only as the maker of a model.
_VENDOR = r"(?:openai|anthropic|google deepmind|deepmind|meta ai|mistral ai|xai|cohere)"
_MAKER = r"(?:google|meta|microsoft|amazon|alibaba|nvidia|ibm)"
_AI_NOUN = (
    r"(?:(?:ai|artificial intelligence)(?: (?:language model|model|assistant|system|agent"
    r"|chatbot))?|(?:large )?language model|llm|chatbot)"
)
# "As an AI, I ..." opens a clause; "think of it as an AI agent that ..." describes something
# else, so "as" and "being" count only where a clause starts.
_CLAUSE_START = r"(?:^|(?<=[\n.!?;:,(])|(?<=[.!?;:,(] ))"
_SELF_DESCRIPTION = (
    rf"(?:{_CLAUSE_START}(?:as|being)|i am|i'm|im) (?:an? |one )?(?:fellow )?{_AI_NOUN}"
    rf"(?:,? (?:created|made|built|trained|developed|designed) by {_VENDOR})?"
)
# Parts of a name are joined by a hyphen, a space or an underscore (``claude_3_opus``, an
# identifier), or run together before a number or tier (``Claude3Opus``, ``gpt4o``).
_MODEL = (
    r"(?:chat)?gpt[-_ ]?\d+(?:\.\d+)?o?(?:[-_ ](?:mini|nano|turbo|pro))?|chatgpt|gpt[-_ ]oss"
    r"|claude(?:[-_ ]?(?:\d+(?:[.-]\d+)?|sonnet|opus|haiku|instant))+"
    r"|(?:sonnet|opus|haiku)[-_ ]\d+\.\d+"
    r"|gemini(?:[-_ ](?:\d+(?:\.\d+)?|pro|flash|ultra|nano))+|gemma[-_ ]?\d+(?:\.\d+)?"
    r"|llama[-_ ]?\d+(?:\.\d+)?|mistral[-_ ](?:large|medium|small|nemo|\d+b)|mixtral"
    r"|qwen[-_ ]?\d*(?:\.\d+)?|deepseek(?:-[a-z]+\d*)?|grok[-_ ]\d+"
    # Not "phi_2": a Greek letter's variable in code and maths far more often than the model.
    r"|phi[- ]\d+(?:\.\d+)?"
    r"|command[-_ ](?:r\+?|a)"
    # OpenAI's reasoning models with their tier: "o1" alone is too short to be sure of.
    r"|o[1-9]-(?:mini|pro|preview)"
)
_AMBIGUOUS = r"(?:claude|gemini|gemma|llama|mistral|grok|o[1-9](?:-mini|-pro|-preview)?)"
_SELF_NAMING = (
    r"(?:(?<=i am )|(?<=i'm )|(?<=im )|(?<=you are )|(?<=you're )|(?<=this is )|(?<=it's )"
    # "I'm just Claude", "I'm also Claude", "we're both Claude": one adverb between.
    r"|(?<=i'm just )|(?<=i am just )|(?<=i'm also )|(?<=i am also )|(?<=i'm only )"
    r"|(?<=we're both )|(?<=we are both )|(?<=we're all )|(?<=we are all )|(?<=you're also )"
    r"|(?<=you are also )"
    r"|(?<=my name is )|(?<=call me )|(?<=run on )|(?<=running on )|(?<=powered by )"
    r"|(?<=based on )|(?<=built on ))"
    + _AMBIGUOUS
    + r"(?!')"
    # "a Claude model", "both Gemini models", "Claude here": a model or agent, not a person.
    + r"|(?:claude|gemini|gemma|llama|mistral|grok)(?= models?\b| here\b)"
    + r"|(?:(?<=made by )|(?<=built by )|(?<=trained by )|(?<=created by )"
    + r"|(?<=developed by ))"
    + _MAKER
)
# The rest of a model's id after its name: a date, a snapshot, a variant ("gpt-4o-2024-08-06",
# "llama-3.1-70b-instruct", "claude-3-opus-latest"). Without it the cue's end could not be
# followed by "-" and the name went unconcealed, or was cut back to "gpt-3" before ".5-turbo".
# A dot only before a digit: "I'm GPT-4o.I think" keeps its "I".
# A tag may hold underscores too: Ollama's quantisations ("llama3.1:70b-instruct-q4_K_M").
_MODEL_ID_TAIL = r"(?:[-_][a-z0-9]+|\.\d+)*(?::[a-z0-9][a-z0-9._-]*)?"
# Atomic: a model name followed by a word character cannot be retried at every shorter
# length. It was: the ways to split "claude-1-1-...-1_" between the name's own repeated
# version numbers grew exponentially (40 of them took 57 s, on every message delivered).
# An underscore may follow it, as in a file or variable name ("llama-3-8b_q4.gguf"): with no
# shorter length to fall back on, the whole name would go unconcealed.
#
# An id that goes on into a letter the tail cannot take or a stray hyphen ("gpt-4-é",
# "...-x-") is no id, but it still matches, marked ``cut``, so that the search resumes after
# it: failing there made ``re`` retry from every name inside the run ("gpt_4_gpt_4_...x-"),
# each try scanning to the same end (20,000 characters took 400 ms). Callers drop ``cut``
# matches; every retry would have ended where it did and been dropped too.
_MODEL_ID = rf"(?>(?:{_MODEL})(?:[- ]\d+(?:x\d+)?b)?{_MODEL_ID_TAIL})(?P<cut>(?=[^\W_]|-))?"
_IDENTITY_CUES = re.compile(
    rf"\b(?P<self>{_SELF_DESCRIPTION})(?![\w-])"
    # After an underscore too, as in an identifier ("MODEL_GPT_4O"); not inside a word.
    rf"|(?<![^\W_]){_MODEL_ID}"
    rf"|\b(?:{_VENDOR}|{_SELF_NAMING})(?![\w-])"
)
# The organisation or folder before a model's name in a path ("meta-llama/Llama-3-8B",
# "models/gemini-1.5-pro"), withheld with it: it names the family as surely. Looked for just
# before a match, in a bounded window, not by the pattern, which would try it at every
# character of every word.
_PATH_PREFIX = re.compile(r"(?=[0-9._-]*[a-z])[a-z0-9][a-z0-9._-]{0,38}/\Z")  # a name, not "3/"
_PATH_REACH = 40
# A self-description is one only when the sentence does not go on to make it a compound:
# "I'm an AI, like you" but not "I'm an AI researcher". A following function word or
# participle keeps it ("I am an AI assistant for ACME", "as an AI representing ACME").
_GOES_ON_AS_COMPOUND = re.compile(
    r"\s*(?!(?:and|but|so|or|nor|too|also|like|just|here|now|myself|itself|from|by|with|for|to"
    r"|of|in|on|at|that|which|who|whose|whom|i|you|we|it|this|my|your|our|their|is|am|are|was"
    r"|were|be|can|cannot|can't|could|will|would|should|must|may|might|do|don't|does|not|no"
    r"|only)\b)(?![a-z']*(?:ing|ed)\b)[a-z]"
)
_REPLACEMENT = "[identity withheld]"
# Every match of ``_IDENTITY_CUES`` has one of these as a whole word once everything but
# letters is a space ("gpt-4o" -> "gpt", "o3" -> "o"). Most messages have none: a split and a
# set test in C then spare them the pattern, whose many alternatives ``re`` tries at every
# character (~100 us per 1,000 characters).
_CUE_WORDS = frozenset(
    b"ai artificial intelligence language llm chatbot gpt chatgpt claude sonnet opus haiku "
    b"gemini gemma llama mistral mixtral qwen deepseek grok phi command openai anthropic google "
    b"deepmind meta xai cohere microsoft amazon alibaba nvidia ibm o".split()
)
_LETTERS_ONLY = bytes(b if 97 <= b <= 122 else 32 for b in range(256))
# Names worth finding inside a longer word, when the word was built to hide them: spaced out
# letters ("I a m C l a u d e" folds to "iamclaude"), or a self-naming phrase run into the
# name in camel case ("IamClaude", "ThisIsGPT4o"). Inside ordinary words ("Claudette") and
# library names ("LlamaIndex", "ChatOpenAI") they are left alone.
_RUN_TOGETHER_NAMES = (
    "claude", "anthropic", "openai", "gpt", "gemini", "llama", "mistral", "mixtral", "deepseek",
    "qwen", "grok",
)  # fmt: skip
_RUN_TOGETHER_NAME = re.compile("|".join(_RUN_TOGETHER_NAMES))
_WORD_CHAR = re.compile(r"[a-z0-9]")
# A phrase that names oneself or the reader; after other words in camel case it counts only
# at a hump of its own ("HelloIamClaude").
_SELF_NAMING_RUN = re.compile(
    r"(?:iam|im|imjust|iamjust|imalso|iamalso|imonly|iamonly|thisis|itis|its|mynameis|callme"
    r"|youare|youre|youarealso|yourealso|wereboth|weareboth|wereall|weareall)(?:chat)?$"
)
# A phrase that names what one runs on: only as the whole start of the word ("PoweredByGPT"),
# since inside an identifier it describes code ("isPoweredByGPT", "shouldRunOnGPT").
_RUNS_ON_RUN = re.compile(
    r"(?:runon|runningon|poweredby|basedon|builton|madeby|trainedby|createdby)(?:chat)?"
)


def _spaced_out(original: str) -> bool:
    """Whether a word's original text had its letters spaced out ("C l a u d e", "C.l.a.u.d.e").

    ASCII separators ("C|l|a|u|d|e") and Unicode spaces and punctuation count; a soft hyphen
    or zero-width character, a combining accent of decomposed text ("llámame" pasted from a
    PDF) or a non-ASCII symbol ("Llama™", "llama×2") is folded away too, but spaces nothing
    out.
    """
    return any(
        (c.isascii() or unicodedata.category(c)[0] in "PZ") and not c.isalnum() for c in original
    )


def _camel_hump(original: str) -> bool:
    """A lower-case letter or digit followed by a capital, in any script or width
    ("IamClaude", "ＩａｍＣｌａｕｄｅ", "IamСlaude" with a Cyrillic capital)."""
    letters = [c for c in original if c.isalnum()]
    return any((a.islower() or a.isdigit()) and b.isupper() for a, b in itertools.pairwise(letters))


def _named_by_a_hump(folded: NormalizedText, start: int, name_start: int) -> bool:
    """Whether the word's text before the name ends with a self-naming phrase that starts
    the word or a camel hump of its own ("HelloIamClaude"; not "vimGPT", "ClaimGPT")."""
    if _RUNS_ON_RUN.fullmatch(folded.folded, start, name_start):
        return True
    phrase = _SELF_NAMING_RUN.search(folded.folded, start, name_start)
    if phrase is None:
        return False
    if phrase.start() == start:
        return True
    first, _ = folded.span(phrase.start(), phrase.start() + 1)
    return folded.original[first].isupper()


def _run_together(folded: NormalizedText) -> list[tuple[int, int]]:
    """Folded spans of words that hide a model or maker name: spelt with spaced-out letters,
    or run into a self-naming phrase in camel case."""
    text = folded.folded
    found: list[tuple[int, int]] = []
    # A substring test per name, in C, spares most messages the regex scan.
    if not any(map(text.__contains__, _RUN_TOGETHER_NAMES)):
        return found
    reach = 0
    for name in _RUN_TOGETHER_NAME.finditer(text):
        start, end = name.span()
        if start < reach:
            continue
        while start > 0 and _WORD_CHAR.match(text, start - 1):
            start -= 1
        while end < len(text) and _WORD_CHAR.match(text, end):
            end += 1
        reach = end
        first, last = folded.span(start, end)
        original = folded.original[first:last]
        if _spaced_out(original):
            found.append((start, end))  # nobody spells a name out letter by letter by chance
        elif (start, end) == name.span():
            continue  # a word of its own: the cue patterns decide about it
        elif _camel_hump(original) and _named_by_a_hump(folded, start, name.start()):
            found.append((start, end))
    return found


def _with_path_prefix(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` widened to the path segment right before it ("meta-llama/")."""
    if start and text[start - 1] == "/":
        prefix = _PATH_PREFIX.search(text, max(0, start - _PATH_REACH), start)
        if prefix is not None:
            return prefix.start(), end
    return start, end


def conceal_identity_cues(
    text: str,
    normalised: NormalizedText | None = None,
    declared: re.Pattern[str] | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """Replace identity cues with a neutral token; return the new text and original spans.

    ``normalised``: ``text`` already normalised, when the caller has it. ``declared``: the
    agents' own model names (:attr:`IdentityPlanner.declared_models`), withheld too.
    """
    folded = normalised if normalised is not None else normalise(text, max_chars=len(text) + 1)
    words = folded.folded.encode("ascii", "replace").translate(_LETTERS_ONLY).split()
    found = (
        []
        if _CUE_WORDS.isdisjoint(words)
        else [
            match.span()
            for match in _IDENTITY_CUES.finditer(folded.folded)
            if match.group("cut") is None
            and not (match.group("self") and _GOES_ON_AS_COMPOUND.match(folded.folded, match.end()))
        ]
    )
    if declared is not None:
        found += [
            match.span() for match in declared.finditer(folded.folded) if match.group("cut") is None
        ]
    found = [_with_path_prefix(folded.folded, start, end) for start, end in found]
    found += _run_together(folded)
    spans: list[tuple[int, int]] = []
    for start, end in sorted(folded.span(*span) for span in found):
        # A combining accent or variation selector after the name belongs to its last
        # letter: left behind, it would sit glued to the replacement.
        while end < len(text) and unicodedata.category(text[end])[0] == "M":
            end += 1
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    if not spans:
        return text, spans
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces += [text[cursor:start], _REPLACEMENT]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), spans
