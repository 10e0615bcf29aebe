"""`reconciler import`: write manifests for live accounts, and record them as owned.

Like `terraform import`, importing takes the accounts under management: besides writing one
manifest per account (subscribers inline, or in a member file when there are many), it records
each account in the inventory (subscription plus a last-applied record made from the manifest just
written). That is what makes `reconciler plan` on the written files show no changes: the live
profile, subscribers and ownership already match. The written files are loaded back through the
validator before anything is recorded, so a manifest that would not validate is never adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from reconciler.connect import Providers
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.import_out import (
    MASS_SPEED_FILE,
    MEMBERS_SUFFIX,
    Names,
    Staging,
    canonical,
    declared_in,
    schema_line,
    set_name,
    short_id,
)
from reconciler.kinds.official_account.settings import recover_ignore_changes
from reconciler.ledger import slot_index
from reconciler.live import LiveAccount
from reconciler.load import dump_documents
from reconciler.model import SubscriberPolicy, canonical_account_id
from reconciler.read import read_fingerprinted
from reconciler.record import encode_record, record_for

#: More subscribers than this go to a member file instead of the manifest.
INLINE_MEMBERS: Final = 50
API_VERSION: Final = "reconciler/v1"
#: What the vendor does not hold and the last-applied record keeps no value of: said in the file.
_NOT_READ: Final = (
    "# Not known to the vendor, so not written: labels, subscribers.absent; ignoreChanges from"
    " the record.\n"
)


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
    #: account id (or "mass speed") → where the output directory already declares it: left as is
    skipped: dict[str, str] = field(default_factory=dict)


__all__ = ["ImportResult", "Imported", "import_accounts", "render_import", "short_id"]


def _account_document(
    account: LiveAccount,
    members: list[str],
    inventory_user: str,
    member_file: str | None,
    set_name: str,
    ignore_changes: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The OfficialAccount document (and a SubscriberSet when members go to a file).

    An owned account's last-applied record names the profile fields its manifest set: exactly
    those are written (a field the manifest left alone stays unmanaged, an emptied one stays
    managed). Without a record, every field that holds a value is.
    """
    spec: dict[str, Any] = {"owner": account.owner}
    record = account.last_applied  # UNKNOWN_RECORD unless owned and readable
    for f, value in account.profile.items():
        if (f in record.fields) if record.known else (value != "" and value != 0):
            spec[f.value] = value
    if record.known and record.protect:
        spec["protect"] = True
    if ignore_changes:  # recovered from the record's digest (a second pass, import_accounts)
        spec["ignoreChanges"] = list(ignore_changes)
    policy = SubscriberPolicy.ADDITIVE
    if record.known and record.policy is not None:
        policy = record.policy
    subs: dict[str, Any] = {"policy": policy.value}
    documents: list[dict[str, Any]] = []
    if member_file is not None:
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


def _declared_refusal(ids: Sequence[str], declared: dict[str, str], out: Path) -> str:
    where = "; ".join(f"{i} at {declared[i]}" for i in ids)
    return (
        f"already declared in {out}: {where}; import writes only accounts the output does not"
        " declare (edit that manifest, or choose another --out; nothing was written)"
    )


async def import_accounts(
    providers: Providers,
    *,
    ids: Sequence[str],
    all_owned: bool,
    inventory_user: str,
    out: Path,
) -> ImportResult:
    """Read the accounts, write their manifests into `out`, validate them, record ownership.

    An account the manifests in `out` already declare is never written twice: named, it is
    refused before anything is read; with `--all-owned` it is left as it is (and its record too).
    """
    im = providers.im
    asked = sorted({canonical_account_id(i) for i in ids})
    reserved = [i for i in asked if slot_index(inventory_user, i) is not None]
    if reserved:
        raise ConfigError(
            f"{', '.join(reserved)}: reconciler's own inventory ledger, not an account to import"
            " (nothing was written)"
        )
    declared = declared_in(out)
    if clash := [i for i in asked if i in declared.accounts]:
        raise ConfigError(_declared_refusal(clash, declared.accounts, out))
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
    result = ImportResult()
    result.skipped = {i: declared.accounts[i] for i in wanted if i in declared.accounts}
    wanted = [i for i in wanted if i not in declared.accounts]
    speed = None
    if all_owned and providers.wechat is not None:
        if declared.mass_speed is None:
            speed = (await providers.wechat.get_mass_speed()).speed
        else:
            result.skipped["mass speed"] = declared.mass_speed

    existing = [p.name for p in out.iterdir()] if out.is_dir() else []
    names = Names(existing)
    with Staging(out) as staging:
        staged: list[Path] = []
        texts: dict[str, Callable[[Sequence[str]], tuple[str, str]]] = {}
        for account_id in wanted:
            account = accounts[account_id]
            stem = names.stem(account_id)
            members = sorted((account.subscribers or frozenset()) - {inventory_user})
            member_name = f"{stem}{MEMBERS_SUFFIX}" if len(members) > INLINE_MEMBERS else None
            header = (
                schema_line(out, "OfficialAccount")
                + f"# Imported from the live system by `reconciler import`: {account_id}\n"
                + _NOT_READ
            )
            name = f"{stem}.yaml"

            def account_text(
                ignored: Sequence[str],
                account: LiveAccount = account,
                members: list[str] = members,
                member_name: str | None = member_name,
                set_as: str = set_name(stem, account_id, declared.sets),
                header: str = header,
                name: str = name,
            ) -> tuple[str, str]:
                documents = _account_document(
                    account, members, inventory_user, member_name, set_as, ignored
                )
                return name, canonical(dump_documents(documents, header=header), name)

            texts[account_id] = account_text
            staged.append(staging.write(*account_text(())))
            member_path = None
            if member_name is not None:
                staging.write(member_name, "".join(f"{m}\n" for m in members))
                member_path = out / member_name
            result.accounts.append(
                Imported(account_id, out / name, member_path, len(members), not account.owned)
            )
        if speed is not None:
            text = dump_documents(
                [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "MassSpeed",
                        "metadata": {"name": "wechat"},
                        "spec": {"speed": speed},
                    }
                ],
                header=schema_line(out, "MassSpeed"),
            )
            staging.write(MASS_SPEED_FILE, canonical(text, MASS_SPEED_FILE))
            result.mass_speed = out / MASS_SPEED_FILE
        # What was written must validate, and its records are what plan will compare against.
        desired = staging.validate(staged) if staged else None
        if desired is not None:
            # the record keeps ignoreChanges only inside its digest: recovered against what was
            # written, it is written too, so that the record and the plan stay as they were
            recovered = {
                account_id: recover_ignore_changes(
                    desired.accounts[account_id], accounts[account_id].last_applied
                )
                for account_id in wanted
            }
            if any(recovered.values()):
                for account_id, ignored in recovered.items():
                    if ignored:
                        staging.rewrite(*texts[account_id]([f.value for f in ignored]))
                desired = staging.validate(staged)
        staging.commit()

    if desired is None:
        return result
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
    for what, where in result.skipped.items():
        lines.append(f"  {what}: already declared at {where}; left as it is")
    lines.append(
        "Each account is recorded in the inventory; `reconciler plan` on these files shows no"
        " changes."
    )
    return "\n".join(lines) + "\n"
