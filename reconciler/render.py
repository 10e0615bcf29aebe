"""Renderers: a plan (or a drift report) as text, markdown or JSON. Pure functions returning str.

Every rendering starts with the target's line, states the cost and the blind spot, and says
"No changes." when there are none. Memberships are shown as counts and the first ids (`show_all`
for every id); markdown always stays under GitHub's 65,536-character comment limit.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from reconciler.changes import (
    PHASE_CREATE,
    Change,
    by_account,
    plural,
    show_ids,
    show_value,
)
from reconciler.drift import DriftItem, DriftReport, IgnoreEntry
from reconciler.kinds import registered
from reconciler.kinds.inventory import ledger_line
from reconciler.plan import BLIND_SPOT, Plan

FORMAT_VERSION: Final = 1
#: GitHub's limit on a comment's body.
GITHUB_COMMENT_LIMIT: Final = 65536
#: Ids shown per membership change unless `show_all`.
FIRST_IDS: Final = 10
#: Longest profile value markdown shows in full.
MARKDOWN_VALUE_CHARS: Final = 300
#: Problems and notices markdown lists before "and N more".
MARKDOWN_LIST_ITEMS: Final = 20

_ANSI: Final = {"+": "32", "~": "33", "-": "31", "<=": "36", "!": "31;1", "bold": "1"}
NO_CHANGES: Final = "No changes. The live system matches the manifests."
BOOKKEEPING_ONLY: Final = (
    "No changes to accounts, subscribers or users;"
    " apply only updates this repo's inventory records."
)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _paint(text: str, key: str, color: bool) -> str:
    return f"\x1b[{_ANSI[key]}m{text}\x1b[0m" if color else text


def _value(value: object) -> str:
    return show_value(value)


def _ids(users: frozenset[str], n: int = FIRST_IDS) -> str:
    return show_ids(users, n)


def _by_account(plan: Plan) -> Mapping[str, list[Change]]:
    return by_account(plan.changes)


def _headline(changes: Sequence[Change]) -> tuple[str, str] | None:
    """The account's symbol and verb, or None when only its inventory record changes."""
    heads = [h for h in (c.headline() for c in changes) if h is not None]
    if not heads:
        return None
    _, symbol, verb = min(heads)
    return symbol, verb


def _detail_lines(changes: Sequence[Change], *, show_all: bool) -> list[tuple[str, str]]:
    """(symbol, text) lines describing one account's changes."""
    return [line for c in changes for line in c.detail_lines(show_all=show_all, first=FIRST_IDS)]


def _blocks(plan: Plan, *, before_accounts: bool) -> list[Change]:
    """The changes of no account, shown as their own blocks before or after the accounts."""
    return [
        c for c in plan.changes if not c.account and (c.phase < PHASE_CREATE) == before_accounts
    ]


def _summary_line(plan: Plan) -> str:
    s = plan.summary
    parts = [part for kind in registered() for part in kind.summary_text(s)]
    return "; ".join(parts) + "."


def _headline_text(plan: Plan) -> str:
    if plan.resource_changes:
        return _summary_line(plan)
    return BOOKKEEPING_ONLY if plan.has_changes else NO_CHANGES


def _records_line(plan: Plan) -> str | None:
    bare = [account for account, changes in _by_account(plan).items() if _headline(changes) is None]
    if not bare:
        return None
    return f"Inventory records to update (bookkeeping only): {len(bare)}: {_ids(frozenset(bare))}"


def _ledger_line(plan: Plan) -> str | None:
    return ledger_line(plan.changes)


def _safety_lines(plan: Plan) -> list[str]:
    if not plan.violations:
        return ["Safety: within the thresholds."]
    lines = [f"Safety: apply will refuse this plan unless overridden ({len(plan.violations)}):"]
    lines.extend(f"  {v}" for v in plan.violations)
    return lines


def _block_lines(changes: Sequence[Change], color: bool, show_all: bool) -> list[str]:
    out: list[str] = []
    for change in changes:
        lines = change.block(show_all=show_all, first=FIRST_IDS)
        if lines:
            out.extend(text if key == " " else _paint(text, key, color) for key, text in lines)
            out.append("")
    return out


def render_text(plan: Plan, *, color: bool = False, show_all: bool = False) -> str:
    """Terraform-like text: `+` create, `~` modify (old → new), `-` destroy, `<=` adopt."""
    out = [_paint(plan.target.describe(), "bold", color), ""]
    if plan.targeting:
        out += [f"Targeting in effect: {plan.targeting}", ""]
    if plan.problems:
        out.append(
            _paint(
                f"Error: this plan cannot be applied ({plural(len(plan.problems), 'problem')}):",
                "!",
                color,
            )
        )
        out.extend(f"  {p}" for p in plan.problems)
        out.append("")
    out.extend(_block_lines(_blocks(plan, before_accounts=True), color, show_all))
    for account, changes in _by_account(plan).items():
        head = _headline(changes)
        if head is None:
            continue
        symbol, verb = head
        out.append(_paint(f"{symbol} account {account} {verb}", symbol, color))
        for sym, text in _detail_lines(changes, show_all=show_all):
            out.append(("    " + text) if sym == " " else _paint(f"    {sym} {text}", sym, color))
        out.append("")
    out.extend(_block_lines(_blocks(plan, before_accounts=False), color, show_all))
    if plan.notices:
        out.append("Notices:")
        out.extend(f"  {n.account_id}: {n.message}" for n in plan.notices)
        out.append("")
    records = _records_line(plan)
    if records:
        out.append(records)
    ledger = _ledger_line(plan)
    if ledger:
        out.append(ledger)
    out.append(_headline_text(plan))
    out.extend(_safety_lines(plan))
    out.append(plan.cost.describe())
    if plan.cost.calls:
        out.append(f"  per endpoint: {plan.cost.breakdown()}")
    out.append(BLIND_SPOT)
    return "\n".join(out) + "\n"


# -- markdown ----------------------------------------------------------------------------------


def _md_value(value: object) -> str:
    text = _value(value)
    if len(text) > MARKDOWN_VALUE_CHARS:
        text = text[:MARKDOWN_VALUE_CHARS] + f"… ({len(text):,} characters)"
    return text


def _fence(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}diff\n{body}\n{fence}"


def _md_section(account: str, changes: Sequence[Change], *, show_all: bool) -> str | None:
    head = _headline(changes)
    if head is None:
        return None
    symbol, verb = head
    lines = []
    for sym, text in _detail_lines(changes, show_all=show_all):
        if sym in ("~", "<="):
            sym = "!"
        lines.append(f"{sym} {text}")
    code = f"<code>{_esc(symbol)} {_esc(account)}</code>"
    body = [f"<details><summary>{code} {verb}</summary>", ""]
    if lines:
        shortened = [
            line
            if show_all or len(line) <= 2 * MARKDOWN_VALUE_CHARS
            else line[: 2 * MARKDOWN_VALUE_CHARS] + "…"
            for line in lines
        ]
        body.append(_fence("\n".join(shortened)))
        body.append("")
    body.append("</details>")
    return "\n".join(body) + "\n"


def _clip(text: str) -> str:
    """One listed item at most twice `MARKDOWN_VALUE_CHARS` (a vendor message or an ignore
    entry's reason can be any length), so that a list of them fits the comment limit."""
    if len(text) <= 2 * MARKDOWN_VALUE_CHARS:
        return text
    return text[: 2 * MARKDOWN_VALUE_CHARS] + f"… ({len(text):,} characters)"


def _md_list(title: str, items: Sequence[str]) -> list[str]:
    lines = [title, ""]
    lines.extend(f"- {_esc(_clip(i))}" for i in items[:MARKDOWN_LIST_ITEMS])
    if len(items) > MARKDOWN_LIST_ITEMS:
        lines.append(f"- … and {len(items) - MARKDOWN_LIST_ITEMS:,} more (see the text plan)")
    return [*lines, ""]


def report_marker(kind: str, target: str, paths: Sequence[str] | None = None) -> str:
    """The hidden line that names a markdown report, so that CI finds the one comment or issue
    it posted for this target and these paths and updates it (`reconciler ci`): for example
    `<!-- reconciler plan target=prod path=manifests -->`. Values are %-escaped where they could
    end the comment or hold a space; `paths` None (a saved plan's, `show`) leaves `path` out."""
    parts = [f"target={_marker_value(target)}"]
    if paths is not None:
        parts.append(f"path={_marker_value(','.join(paths) or '.')}")
    return f"<!-- reconciler {kind} {' '.join(parts)} -->"


def _marker_value(text: str) -> str:
    return urllib.parse.quote(text, safe="/,._@:+=~")


def render_markdown(
    plan: Plan,
    *,
    limit: int = GITHUB_COMMENT_LIMIT,
    show_all: bool = False,
    marker: str | None = None,
) -> str:
    """A PR comment: target, summary table, one `<details>` per account, always under `limit`
    (`show_all`: every id of a membership change, as far as the limit allows); `marker`, when
    given, is its last line."""
    s = plan.summary
    head = [f"**{_esc(plan.target.describe())}**", ""]
    if plan.targeting:
        head += [f"Targeting in effect: {_esc(plan.targeting)}", ""]
    if plan.problems:
        head += _md_list(
            f"**Error: this plan cannot be applied ({plural(len(plan.problems), 'problem')}):**",
            [str(p) for p in plan.problems],
        )
    head += ["#### " + _headline_text(plan), ""]
    if plan.resource_changes:
        rows = [row for kind in registered() for row in kind.summary_rows(s)]
        head += ["| change | count |", "| --- | ---: |"]
        head += [f"| {name} | {n:,} |" for name, n in rows]
        head.append("")
    blocks = [c for c in plan.changes if not c.account]
    for n, change in enumerate(blocks):
        lines = change.markdown(first=FIRST_IDS)
        if lines and sum(len(x) + 1 for x in (*head, *lines)) > limit // 2:  # broadcasts' bodies
            head += [
                f"… {len(blocks) - n:,} more changes are not shown; run `reconciler plan`.",
                "",
            ]
            break
        head += lines
    tail = []
    if plan.notices:
        tail += _md_list("**Notices:**", [f"{n.account_id}: {n.message}" for n in plan.notices])
    records = _records_line(plan)
    if records:
        tail += [_esc(records), ""]
    ledger = _ledger_line(plan)
    if ledger:
        tail += [_esc(ledger), ""]
    tail += _safety_lines(plan)[:1]
    tail += [f"- {_esc(str(v))}" for v in plan.violations[:MARKDOWN_LIST_ITEMS]]
    if len(plan.violations) > MARKDOWN_LIST_ITEMS:
        tail.append(f"- … and {len(plan.violations) - MARKDOWN_LIST_ITEMS:,} more")
    tail += ["", plan.cost.describe()]
    if plan.cost.calls:
        tail += [f"(per endpoint: {plan.cost.breakdown()})"]
    tail += ["", BLIND_SPOT]
    if marker is not None:
        tail.append(marker)
    head_text, tail_text = "\n".join(head) + "\n", "\n".join(tail) + "\n"
    omitted_note = 200  # room for the "N more accounts" line
    budget = limit - len(head_text) - len(tail_text) - omitted_note
    sections: list[str] = []
    omitted = 0
    for account, changes in _by_account(plan).items():
        section = _md_section(account, changes, show_all=show_all)
        if section is None:
            continue
        if omitted or len(section) + 1 > budget:
            omitted += 1
            continue
        sections.append(section)
        budget -= len(section) + 1
    if omitted:
        sections.append(
            f"… {omitted:,} more accounts are not shown to stay under GitHub's comment limit;"
            " run `reconciler plan` for the full text (or `reconciler show` on the saved plan).\n"
        )
    text = head_text + "\n".join(sections) + ("\n" if sections else "") + tail_text
    assert len(text) < limit, "markdown plan over budget"
    return text


# -- json and ndjson ---------------------------------------------------------------------------


def plan_data(plan: Plan, *, show_all: bool = False) -> dict[str, Any]:
    """The plan as JSON data: memberships summarised (count, first ids, digest) unless show_all."""

    def form(c: Change) -> dict[str, Any]:  # every id, or memberships summarised
        return c.data if show_all else c.summary_data(first=FIRST_IDS)

    data: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "target": plan.target.data,
        "targetLine": plan.target.describe(),
        "hasChanges": plan.has_changes,
        "summary": plan.summary,
        "changes": [form(c) for c in plan.changes],
        "notices": [n.summary_data() for n in plan.notices],
        "errors": [p.summary_data() for p in plan.problems],
        "safety": {"violations": [v.data for v in plan.violations]},
        "cost": plan.cost.data,
        "blindSpot": BLIND_SPOT,
        "desiredDigest": plan.desired_digest,
        "prune": plan.prune,
    }
    if plan.targeting:  # only then: an untargeted plan's JSON is unchanged
        data["targeting"] = plan.targeting
    return data


def render_json(plan: Plan, *, show_all: bool = False) -> str:
    """`plan_data` with sorted keys and a stable layout."""
    return (
        json.dumps(plan_data(plan, show_all=show_all), sort_keys=True, indent=2, ensure_ascii=False)
        + "\n"
    )


def members_ndjson(plan: Plan) -> Iterator[str]:
    """Every subscriber add and removal for `--members-out FILE`: one JSON object per item,
    without the line break (the writer adds it)."""
    for change in plan.changes:
        for account, op, user in change.member_items():
            yield json.dumps({"account": account, "op": op, "subscriber": user}, sort_keys=True)


# -- drift -------------------------------------------------------------------------------------


def _by_hand(item: DriftItem, *, show_all: bool = False) -> str:
    parts = []
    for users, what in ((item.added_by_hand, "added"), (item.removed_by_hand, "removed")):
        if users:
            ids = ", ".join(sorted(users)) if show_all else _ids(users)
            parts.append(f"{len(users):,} {what} by hand ({ids})")
    return "; ".join(parts)


def _drift_line(item: DriftItem, *, show_all: bool = False) -> str:
    if item.added_by_hand or item.removed_by_hand:
        text = f"{item.account} {item.field}: {_by_hand(item, show_all=show_all)}"
    else:
        text = f"{item.account} {item.field}: git {_value(item.git)}, live {_value(item.live)}"
    return text + (f" [{item.note}]" if item.note else "")


def _drift_headline(report: DriftReport) -> str:
    if not report.items:
        return "No drift: the live system matches git."
    return f"Drift: {plural(len(report.items), 'difference')} from git."


#: how a drift report with differences ends: what on-call does next
DRIFT_NEXT: Final = (
    "Next: run `reconciler apply` to restore git's values, or change git to accept the live"
    " ones (or silence a difference for a while with an entry in the --ignore file)."
)


def render_drift_text(report: DriftReport, *, show_all: bool = False) -> str:
    """Plain text drift report: one line per difference, then silenced and expired entries."""
    out = [report.target.describe(), ""]
    if report.problems:
        out.append(
            f"Error: the drift check is incomplete ({plural(len(report.problems), 'problem')}):"
        )
        out.extend(f"  {p}" for p in report.problems)
        out.append("")
    out.append(_drift_headline(report))
    out.extend(f"  {_drift_line(i, show_all=show_all)}" for i in report.items)
    if report.silenced:
        out.append(f"Silenced by the ignore file: {len(report.silenced)}")
        out.extend(f"  {_drift_line(i)} — {e}" for i, e in report.silenced)
    if report.expired:
        out.append(f"Expired ignore entries (renew or remove them): {len(report.expired)}")
        out.extend(f"  {e}" for e in report.expired)
    if report.items:
        out.append(DRIFT_NEXT)
    out.append(BLIND_SPOT)
    out.extend(f"Blind spot of {b}" for b in report.blind_spots)
    return "\n".join(out) + "\n"


def render_drift_markdown(
    report: DriftReport, *, limit: int = GITHUB_COMMENT_LIMIT, marker: str | None = None
) -> str:
    """Drift as markdown: a table of differences, capped to stay under `limit`; `marker`, when
    given, is its last line."""
    head = [f"**{_esc(report.target.describe())}**", ""]
    if report.problems:
        head += _md_list(
            "**Error: the drift check is incomplete:**", [str(p) for p in report.problems]
        )
    head += [f"#### {_drift_headline(report)}", ""]
    tail = [""]
    if report.silenced:
        tail += _md_list(
            f"Silenced by the ignore file ({len(report.silenced)}):",
            [str(e) for _, e in report.silenced],
        )
    if report.expired:
        tail += _md_list(
            f"Expired ignore entries ({len(report.expired)}):", [str(e) for e in report.expired]
        )
    if report.items:
        tail += [DRIFT_NEXT, ""]
    tail.append(BLIND_SPOT)
    tail.extend(f"Blind spot of {_esc(b)}" for b in report.blind_spots)
    if marker is not None:
        tail.append(marker)
    budget = limit - len("\n".join(head)) - len("\n".join(tail)) - 400
    rows: list[str] = []
    if report.items:
        rows = ["| account | field | git | live |", "| --- | --- | --- | --- |"]
        budget -= sum(len(r) + 1 for r in rows)
    shown = 0
    for item in report.items:
        if item.added_by_hand or item.removed_by_hand:
            git, live = "", _by_hand(item)
        else:
            git, live = _md_value(item.git), _md_value(item.live)
        note = f" ({item.note})" if item.note else ""
        cells = (f"`{item.account}`", item.field + note, git, live)
        row = "| " + " | ".join(_cell(c) for c in cells) + " |"
        if len(row) + 1 > budget:
            break
        rows.append(row)
        budget -= len(row) + 1
        shown += 1
    if shown < len(report.items):
        rows.append(
            f"\n… {len(report.items) - shown:,} more differences not shown; see `reconciler drift`."
        )
    text = "\n".join(head + rows + tail) + "\n"
    assert len(text) < limit, "markdown drift report over budget"
    return text


def render_drift_json(report: DriftReport, *, show_all: bool = False) -> str:
    """Drift as JSON: `formatVersion`, sorted keys."""
    data = {
        "formatVersion": FORMAT_VERSION,
        "target": report.target.data,
        "targetLine": report.target.describe(),
        "drift": bool(report.items),
        "items": [i.data(show_all=show_all) for i in report.items],
        "silenced": [{"item": i.data(), "entry": _entry_data(e)} for i, e in report.silenced],
        "expired": [_entry_data(e) for e in report.expired],
        "errors": [p.summary_data() for p in report.problems],
        "blindSpot": BLIND_SPOT,
    }
    if report.blind_spots:  # only then, so drift reports without such kinds keep their JSON
        data["blindSpots"] = list(report.blind_spots)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    return _esc(text).replace("|", "\\|").replace("\n", " ")


def _entry_data(entry: IgnoreEntry) -> dict[str, str]:
    return {
        "account": entry.account,
        "field": entry.field,
        "reason": entry.reason,
        "owner": entry.owner,
        "expires": entry.expires.isoformat(),
    }
