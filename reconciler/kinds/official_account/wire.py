"""The plan-file forms of the OfficialAccount kind's changes: tagged msgspec Structs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from reconciler.changes import Wire
from reconciler.live import decode_record
from reconciler.model import ProfileField

if TYPE_CHECKING:
    from reconciler.kinds.official_account.changes import (
        AddSubscribers,
        AdoptOrphan,
        CreateAccount,
        DestroyAccount,
        ModifyAccount,
        Record,
        RemoveSubscribers,
        SetSubscriberProfiles,
    )

_FIELD_BY_NAME = {f.value: f for f in ProfileField}


class CreateAccountWire(Wire, frozen=True, tag="createAccount"):
    account: str
    owner: str
    profile: dict[str, str | int]

    def change(self) -> CreateAccount:
        from reconciler.kinds.official_account.changes import CreateAccount

        unknown = sorted(set(self.profile) - set(_FIELD_BY_NAME))
        if unknown:
            raise ValueError(f"unknown profile field {unknown[0]!r}")
        profile = tuple((f, self.profile[f.value]) for f in ProfileField if f.value in self.profile)
        return CreateAccount(self.account, self.owner, profile)


class RecordWire(Wire, frozen=True, tag="record"):
    account: str
    record: str
    subscribe: bool
    adopt: bool

    def change(self) -> Record:
        from reconciler.kinds.official_account.changes import Record

        record = decode_record(self.record)
        if not record.known:
            raise ValueError("unreadable record")
        return Record(self.account, record, self.subscribe, self.adopt)


class FieldWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    field: ProfileField
    old: str | int | None
    new: str | int
    cleared: bool


class ModifyAccountWire(Wire, frozen=True, tag="modifyAccount"):
    account: str
    fields: list[FieldWire]

    def change(self) -> ModifyAccount:
        from reconciler.kinds.official_account.changes import FieldChange, ModifyAccount

        return ModifyAccount(
            self.account, tuple(FieldChange(f.field, f.old, f.new, f.cleared) for f in self.fields)
        )


class AddSubscribersWire(Wire, frozen=True, tag="addSubscribers"):
    account: str
    users: list[str]

    def change(self) -> AddSubscribers:
        from reconciler.kinds.official_account.changes import AddSubscribers

        return AddSubscribers(self.account, frozenset(self.users))


class ProfileWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user: str
    old: str | None
    new: str


class SetSubscriberProfilesWire(Wire, frozen=True, tag="setSubscriberProfiles"):
    account: str
    profiles: list[ProfileWire]

    def change(self) -> SetSubscriberProfiles:
        from reconciler.kinds.official_account.changes import ProfileChange, SetSubscriberProfiles

        return SetSubscriberProfiles(
            self.account, tuple(ProfileChange(p.user, p.old, p.new) for p in self.profiles)
        )


class RemoveSubscribersWire(Wire, frozen=True, tag="removeSubscribers"):
    account: str
    users: list[str]
    liveCount: int
    reason: str

    def change(self) -> RemoveSubscribers:
        from reconciler.kinds.official_account.changes import RemoveSubscribers

        return RemoveSubscribers(self.account, frozenset(self.users), self.liveCount, self.reason)


class DestroyAccountWire(Wire, frozen=True, tag="destroyAccount"):
    account: str
    owner: str
    subscriberCount: int
    protected: bool

    def change(self) -> DestroyAccount:
        from reconciler.kinds.official_account.changes import DestroyAccount

        return DestroyAccount(self.account, self.owner, self.subscriberCount, self.protected)


class AdoptOrphanWire(Wire, frozen=True, tag="adoptOrphan"):
    account: str
    owner: str
    subscriberCount: int

    def change(self) -> AdoptOrphan:
        from reconciler.kinds.official_account.changes import AdoptOrphan

        return AdoptOrphan(self.account, self.owner, self.subscriberCount)
