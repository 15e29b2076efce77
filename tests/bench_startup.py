"""Start-up cost: interpreter alone (baseline) vs importing kinguard and building a guard.

Run: pytest tests/bench_startup.py --benchmark-only. The difference of the two medians is what
kinguard adds to an app's start-up (target: under 300 ms).
"""

import os
import subprocess
import sys

BASELINE = "import sys"
GUARD = (
    "from kinguard import AgentProfile, KinGuard\n"
    "g = KinGuard([AgentProfile(name='a', model='openai:gpt-4o', principal='A'),\n"
    "              AgentProfile(name='b', model='openai:gpt-4o', principal='B')],\n"
    "             identity='disassociate')\n"
    "g.system_prompt('a', 'Buy.')\n"
)


def _spawn(code: str) -> None:
    # Bytecode caching on, as in any installed app: with PYTHONDONTWRITEBYTECODE set (some
    # sandboxes set it) every start would recompile pydantic, OTel and kinguard from source,
    # and the figure would be the compiler's, not the import's.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_interpreter_start_baseline(benchmark) -> None:
    benchmark.pedantic(_spawn, args=(BASELINE,), rounds=10, warmup_rounds=1)


def test_import_kinguard_and_build_guard(benchmark) -> None:
    benchmark.pedantic(_spawn, args=(GUARD,), rounds=10, warmup_rounds=1)
