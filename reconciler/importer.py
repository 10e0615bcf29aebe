"""`reconciler import`: write manifests for live accounts, and record them as owned.

Like `terraform import`, importing takes the accounts under management: besides writing one
manifest per account (subscribers inline, or in a member file when there are many), it records
each account in the inventory (subscription plus a last-applied record made from the manifest just
written). That is what makes `reconciler plan` on the written files show no changes: the live
profile, subscribers and ownership already match. The written files are loaded back through the
validator before anything is recorded, so a manifest that would not validate is never adopted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from reconciler.connect import Providers
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.ledger import slot_index
from reconciler.live import LiveAccount
from reconciler.load import dump_documents
from reconciler.model import ACCOUNT_ID_PREFIX, SubscriberPolicy, canonical_account_id
from reconciler.read import read_fingerprinted
from reconciler.record import encode_record, record_for
from reconciler.validate import load_desired_state

#: More subscribers than this go to a member file instead of the manifest.
INLINE_MEMBERS: Final = 50
API_VERSION: Final = "reconciler/v1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Imported:
    """One account written: its id, the manifest file, the member file (if any), counts."""

    account_id: str
    manifest: Path
    member_file: Path | None
    subscribers: int
    adopted: bool


@dataclass(slots=True)
class ImportResult:
    accounts: list[Imported] = field(default_factory=list)
    mass_speed: Path | None = None


def short_id(account_id: str) -> str:
    """`@TOA#_news` → `news` (what a manifest writes); ids that need their prefix keep it."""
    rest = account_id.removeprefix(ACCOUNT_ID_PREFIX)
    if rest and not rest.startswith("@") and canonical_account_id(rest) == account_id:
        return rest
    return account_id


def _file_stem(account_id: str) -> str:
    return _UNSAFE.sub("_", short_id(account_id)).strip("_") or "account"


def _account_document(
    account: LiveAccount, members: list[str], inventory_user: str, member_file: str | None
) -> list[dict[str, Any]]:
    """The OfficialAccount document (and a SubscriberSet when members go to a file)."""
    spec: dict[str, Any] = {"owner": account.owner}
    for f, value in account.profile.items():
        if value != "" and value != 0:
            spec[f.value] = value
    record = account.last_applied  # UNKNOWN_RECORD unless owned and readable
    if record.known and record.protect:
        spec["protect"] = True
    policy = SubscriberPolicy.ADDITIVE
    if record.known and record.policy is not None:
        policy = record.policy
    subs: dict[str, Any] = {"policy": policy.value}
    documents: list[dict[str, Any]] = []
    if member_file is not None:
        set_name = f"{_file_stem(account.id)}-subscribers"
        subs["sets"] = [set_name]
        documents.append(
            {
                "apiVersion": API_VERSION,
                "kind": "SubscriberSet",
                "metadata": {"name": set_name},
                "spec": {"files": [member_file]},
            }
        )
    elif members:
        subs["members"] = members
    # only non-empty profiles are read; the inventory user's is its record, not a profile
    profiles = {
        user: text
        for user, text in sorted((account.subscriber_profiles or {}).items())
        if user != inventory_user
    }
    if profiles:
        subs["profiles"] = profiles
    spec["subscribers"] = subs
    document = {
        "apiVersion": API_VERSION,
        "kind": "OfficialAccount",
        "metadata": {"id": short_id(account.id)},
        "spec": spec,
    }
    return [document, *documents]


def _write(path: Path, text: str) -> None:
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; remove it or choose another --out") from exc
    except OSError as exc:
        raise ReconcilerError(f"cannot write {path}: {exc.strerror or exc}") from exc


async def import_accounts(
    providers: Providers,
    *,
    ids: Sequence[str],
    all_owned: bool,
    inventory_user: str,
    out: Path,
) -> ImportResult:
    """Read the accounts, write their manifests into `out`, validate them, record ownership."""
    im = providers.im
    asked = sorted({canonical_account_id(i) for i in ids})
    reserved = [i for i in asked if slot_index(inventory_user, i) is not None]
    if reserved:
        raise ConfigError(
            f"{', '.join(reserved)}: reconciler's own inventory ledger, not an account to import"
            " (nothing was written)"
        )
    # the read stage's: the inventory walk, the other accounts by id, their subscriber lists
    live = await read_fingerprinted(
        asked, asked, im, inventory_user=inventory_user, owned_members=all_owned
    )
    accounts = live.accounts
    wanted = sorted(i for i, a in accounts.items() if a.owned) if all_owned else asked
    missing = [i for i in wanted if i not in accounts]
    if missing:
        raise ConfigError(f"no such official account: {', '.join(missing)} (nothing was written)")
    if not wanted:
        raise ConfigError(f"the inventory ({inventory_user}) owns no account: nothing to import")
    speed = None
    if all_owned and providers.wechat is not None:
        speed = (await providers.wechat.get_mass_speed()).speed

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReconcilerError(f"cannot create {out}: {exc.strerror or exc}") from exc
    result = ImportResult()
    for account_id in wanted:
        account = accounts[account_id]
        stem = _file_stem(account_id)
        members = sorted((account.subscribers or frozenset()) - {inventory_user})
        member_name = f"{stem}.members.txt" if len(members) > INLINE_MEMBERS else None
        documents = _account_document(account, members, inventory_user, member_name)
        header = f"# Imported from the live system by `reconciler import`: {account_id}\n"
        manifest = out / f"{stem}.yaml"
        _write(manifest, dump_documents(documents, header=header))
        member_path = None
        if member_name is not None:
            member_path = out / member_name
            _write(member_path, "".join(f"{m}\n" for m in members))
        result.accounts.append(
            Imported(account_id, manifest, member_path, len(members), not account.owned)
        )
    if speed is not None:
        result.mass_speed = out / "mass-speed.yaml"
        _write(
            result.mass_speed,
            dump_documents(
                [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "MassSpeed",
                        "metadata": {"name": "wechat"},
                        "spec": {"speed": speed},
                    }
                ]
            ),
        )

    # What was written must validate, and its records are what plan will compare against.
    desired = load_desired_state([str(p.manifest) for p in result.accounts])
    if not live.inventory_exists:
        await im.import_account(inventory_user)
    for account_id in wanted:
        if not accounts[account_id].owned:
            added = await im.add_subscribers(account_id, [inventory_user])
            if added.failed:
                raise ReconcilerError(
                    f"{account_id}: the inventory user could not subscribe"
                    f" ({next(iter(added.failed.values())).message}); the manifests were written"
                    " but the account is not recorded as owned"
                )
        await im.set_subscriber_profile(
            account_id, inventory_user, encode_record(record_for(desired.accounts[account_id]))
        )
    return result


def render_import(result: ImportResult, out: Path) -> str:
    lines = [f"Imported {len(result.accounts)} account(s) into {out}:"]
    for item in result.accounts:
        where = f", members in {item.member_file.name}" if item.member_file else ""
        how = "adopted" if item.adopted else "already owned"
        lines.append(
            f"  {item.account_id}: {item.manifest.name} ({item.subscribers:,} subscribers{where};"
            f" {how})"
        )
    if result.mass_speed is not None:
        lines.append(f"  mass speed: {result.mass_speed.name}")
    lines.append(
        "Each account is recorded in the inventory; `reconciler plan` on these files shows no"
        " changes."
    )
    return "\n".join(lines) + "\n"
