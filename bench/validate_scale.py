"""Benchmark: load and validate 2,000 accounts referencing sets with 1,000,000 members in total.

    .venv/bin/python bench/validate_scale.py [--accounts 2000] [--sets 200] [--members 1000000]

Generates the manifests and member files into a temporary directory, then runs
`load_desired_state` in a fresh child process and reports its wall time and peak RSS (the whole
process: interpreter, imports and the desired state). Targets: under 10 s and under 500 MB.
A second run does the same for one account whose one set is a single 1,000,000-line member file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from reconciler.validate import load_desired_state
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    state = load_desired_state([sys.argv[1]])
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memberships = sum(
        len(a.subscribers.members) for a in state.accounts.values() if a.subscribers
    )
    print(json.dumps({
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_after_import_mb": round(before / 1024, 1),
        "documents": state.documents,
        "accounts": len(state.accounts),
        "users": len(state.users),
        "memberships": memberships,
    }))
    """
)


def generate(root: Path, accounts: int, sets: int, members: int) -> None:
    """Write `sets` member files totalling `members` UserIDs, and `accounts` accounts using them."""
    per_set = members // sets
    (root / "members").mkdir()
    docs = []
    for s in range(sets):
        with (root / "members" / f"set{s:04d}.txt").open("w") as f:
            f.write(f"# set {s}\n")
            f.writelines(f"user{s:04d}_{i:06d}\n" for i in range(per_set))
        docs.append(
            "apiVersion: reconciler/v1\nkind: SubscriberSet\n"
            f"metadata: {{name: set{s:04d}}}\nspec:\n  files: [members/set{s:04d}.txt]\n"
        )
    (root / "sets.yaml").write_text("---\n".join(docs))
    docs = [
        "apiVersion: reconciler/v1\nkind: UserAccounts\nmetadata: {name: everyone}\n"
        f"spec:\n  members: [owner]\n  sets: [{', '.join(f'set{s:04d}' for s in range(sets))}]\n"
    ]
    for a in range(accounts):
        s = a % sets
        docs.append(
            textwrap.dedent(
                f"""\
                apiVersion: reconciler/v1
                kind: OfficialAccount
                metadata:
                  id: acct{a:05d}
                  labels: {{shard: "{a % 16}"}}
                spec:
                  owner: owner
                  name: Account {a}
                  introduction: Benchmark account number {a}
                  customString: "n={a}"
                  subscribers:
                    policy: {"exact" if a % 2 else "additive"}
                    sets: [set{s:04d}]
                    members: [user{s:04d}_000000]
                    absent: [gone{a}]
                    profiles: {{user{s:04d}_000001: "vip"}}
                """
            )
        )
    (root / "accounts.yaml").write_text("---\n".join(docs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    scenarios = [
        (
            f"{args.accounts:,} accounts, {args.sets} sets, {args.members:,} members",
            (args.accounts, args.sets, args.members),
        ),
        (f"1 account, 1 member file of {args.members:,} lines", (1, 1, args.members)),
    ]
    for label, (accounts, sets, members) in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            generate(root, accounts, sets, members)
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(root)],
                capture_output=True,
                text=True,
                check=False,
            )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        result = json.loads(done.stdout)
        print(json.dumps(result, indent=2))
        print(
            f"| validate_scale | {label} | {result['seconds']} s"
            f" | {result['peak_rss_mb']} MB peak RSS |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
