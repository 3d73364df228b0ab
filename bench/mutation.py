"""Mutation testing: how many small planted bugs the fast suite catches, in the code that decides things.

    python bench/mutation.py [--children 2] [--results bench/RESULTS.md]

Runs mutmut (pip install mutmut; configured in pyproject.toml's [tool.mutmut]) over
functions/, bus/ledger.py, core/registry.py, core/dr_state.py and
clouds/backups/retention.py, with the fast suite (unit + flow, `--fast`). Each mutant
is one small change (an operator, a constant, a dropped argument); it is killed when
a test fails, survives when all pass. Prints the score per module and every survivor
(`python -m mutmut show NAME` shows its diff). Not in CI: it runs the tests that
cover each mutant once per mutant: about 3,300 mutants, some covered by 160 tests, so two to three hours
on two quiet cores. Re-runs are incremental: mutmut keeps each mutant's result in mutants/ until its
function's code changes (a stopped run goes on where it stopped).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Mutation testing (issue 20)"

# The tests start `python -m doppel` in other directories (the CLI tests); mutmut's stats run would look for
# its configuration there and fail. A subprocess's calls are not counted anyway: it runs the original code.
SITECUSTOMIZE = '''import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
'''


def run(children: int) -> None:
    (ROOT / "mutants").mkdir(exist_ok=True)
    (ROOT / "mutants" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("DOPPEL_DB_URL", "DOPPEL_AMQP_URL")}
    done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children)], cwd=ROOT,
                          env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0 or "failed to collect stats" in done.stdout:
        # e.g. a test that fails on mutmut's copy of the code with no mutant active: nothing was checked
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise SystemExit(f"mutmut run failed (exit {done.returncode}); the end of its output:\n{tail}")


def results() -> dict[str, str]:
    """mutant name -> status (killed, survived, timeout, no tests, ...)."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def module_of(mutant: str) -> str:
    return mutant.split(".x_")[0].split(".xǁ")[0]


def report(found: dict[str, str]) -> str:
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    lines = ["| module | mutants | killed | survived | other | score |", "|---|---|---|---|---|---|"]
    total = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        lines.append(row(module, counts))
    lines.append(row("**all**", total))
    survivors = sorted(n for n, s in found.items() if s != "killed")
    lines += ["", f"Not killed ({len(survivors)}):", ""] + [f"- `{n}`: {found[n]}" for n in survivors]
    return "\n".join(lines)


def row(module: str, counts: Counter) -> str:
    mutants = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]  # a mutant that hangs the tests is caught too
    other = mutants - killed - counts["survived"]
    return f"| {module} | {mutants} | {killed} | {counts['survived']} | {other} | {100 * killed / mutants:.1f}% |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (the machine has 2 cores)")
    parser.add_argument("--results", default=None, help="write the table into this RESULTS.md's section")
    parser.add_argument("--report-only", action="store_true", help="do not run; report what mutants/ holds")
    args = parser.parse_args()
    if not args.report_only:
        run(args.children)
    text = report(results())
    print(text)
    if args.results:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True).stdout.strip()
        load = subprocess.run(["uptime"], text=True, capture_output=True).stdout.strip()
        path = Path(args.results)
        body = path.read_text()
        section = (f"{SECTION}\n\nCommand: `python bench/mutation.py --results bench/RESULTS.md` (mutmut, fast "
                   f"suite), commit {commit}, load: `{load}`.\n\n{text}\n")
        if SECTION in body:
            start = body.index(SECTION)
            end = body.find("\n## ", start + len(SECTION))
            body = body[:start] + section + (body[end + 1:] if end != -1 else "")
        else:
            body = body.rstrip("\n") + "\n\n" + section
        path.write_text(body)


if __name__ == "__main__":
    main()
