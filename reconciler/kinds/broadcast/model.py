"""A Broadcast's desired record (from its document) and its live state (an account's history).

The body is written in camelCase, one element per list item, every element type of reference
7.4: `text: "..."`, `face: {index, data}`, `custom: {data, desc, ext, sound}`,
`location: {desc, latitude, longitude}`, `image: {uuid, imageFormat, imageInfoArray: [{type,
size, width, height, url}]}`, `sound: {url, uuid, size, second, downloadFlag}`, `file: {url,
uuid, fileSize, fileName, downloadFlag}`, `videoFile: {videoUrl, videoUuid, videoSize,
videoSecond, videoFormat, videoDownloadFlag, thumbUrl, thumbUuid, thumbSize, thumbWidth,
thumbHeight, thumbFormat, thumbDownloadFlag}`. `vendor_body` turns it into the vendor's `MsgBody`
and `manifest_body` turns a `MsgBody` read from history back, so that an edit after a send is
named by its manifest paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.errors import Problem
from reconciler.kinds.sending import Window, canonical, content_digest, parse_window, stable_u32
from reconciler.load import Document, Node, position_of
from reconciler.model import Position, canonical_account_id

#: Reference 7.4: manifest element name → vendor MsgType.
ELEMENT_TYPES: Final = {
    "text": "TIMTextElem",
    "face": "TIMFaceElem",
    "custom": "TIMCustomElem",
    "location": "TIMLocationElem",
    "image": "TIMImageElem",
    "sound": "TIMSoundElem",
    "file": "TIMFileElem",
    "videoFile": "TIMVideoFileElem",
}
_MSG_TYPES: Final = {v: k for k, v in ELEMENT_TYPES.items()}
#: camelCase field names whose vendor spelling is not the field capitalised.
_VENDOR_NAMES: Final = {
    "uuid": "UUID",
    "downloadFlag": "Download_Flag",
    "videoUuid": "VideoUUID",
    "thumbUuid": "ThumbUUID",
}
_MANIFEST_NAMES: Final = {**{v: k for k, v in _VENDOR_NAMES.items()}, "URL": "url"}
#: The usage-limits page: a message is at most 12 KB (the sandbox measures its canonical JSON).
MESSAGE_MAX_BYTES: Final = 12 * 1024
#: Reference 5.12: a recall's reason is at most 100 bytes.
REASON_MAX_BYTES: Final = 100
#: Reference 7.1: identical content within 5 minutes is dropped as a duplicate.
DUPLICATE_SECONDS: Final = 300


def _vendor_key(key: str) -> str:
    return _VENDOR_NAMES.get(key, key[:1].upper() + key[1:])


def _manifest_key(key: str) -> str:
    return _MANIFEST_NAMES.get(key, key[:1].lower() + key[1:])


def _convert(value: Any, rename: Any) -> Any:
    if isinstance(value, Mapping):
        return {rename(k): _convert(v, rename) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(v, rename) for v in value]
    return value


def vendor_body(body: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's body as the vendor's `MsgBody`."""
    out = []
    for element in body:
        [(name, content)] = element.items()
        if name == "text" and isinstance(content, str):
            content = {"text": content}
        vendor = _convert(content, _vendor_key)
        for info in vendor.get("ImageInfoArray", []) if name == "image" else []:
            if "Url" in info:  # an image's is `URL`, a sound's or a file's `Url` (7.4)
                info["URL"] = info.pop("Url")
        out.append({"MsgType": ELEMENT_TYPES[name], "MsgContent": vendor})
    return out


def manifest_body(msg_body: Sequence[Any]) -> list[dict[str, Any]]:
    """A `MsgBody` read from history in the manifest's form (unknown elements kept as they are)."""
    out: list[dict[str, Any]] = []
    for element in msg_body:
        name = _MSG_TYPES.get(element.get("MsgType", "")) if isinstance(element, dict) else None
        if name is None:
            out.append({"unknown": element})
            continue
        content = _convert(element.get("MsgContent", {}), _manifest_key)
        if name == "text" and isinstance(content, dict) and set(content) == {"text"}:
            content = content["text"]
        out.append({name: content})
    return out


def body_digest(msg_body: Sequence[Any]) -> str:
    """The digest the sandbox's call log carries for a `MsgBody` (`sha256:` of canonical JSON)."""
    return content_digest(list(msg_body))


def send_random(account: str, name: str, digest: str) -> int:
    """The send's vendor `Random`: from the account, the document's name and the body digest,
    never a time or a run (issue 15), so a retry within 5 minutes is the vendor's duplicate."""
    return stable_u32("Broadcast", account, name, digest)


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    """A declared broadcast: what to send, from which account, when, and whether to recall it."""

    name: str
    account: str
    #: the vendor `MsgBody` (sent as is); `body` is the manifest's form
    msg_body: tuple[Mapping[str, Any], ...]
    body: tuple[Mapping[str, Any], ...]
    window: Window
    position: Position
    cloud_custom_data: str | None = None
    offline_push: Mapping[str, Any] | None = None
    online_only: bool = False
    recall: bool = False
    reason: str = ""
    resend: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return body_digest(self.msg_body)

    @property
    def random(self) -> int:
        return send_random(self.account, self.name, self.digest)

    @property
    def ref(self) -> str:
        """`news/maintenance-2026-12-08` (the account without its `@TOA#_` prefix)."""
        return f"{short(self.account)}/{self.name}"


def short(account: str) -> str:
    return account.removeprefix("@TOA#_")


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One message of an account's history (reference 5.11)."""

    key: str
    time: int
    random: int
    #: 0 a message, 1 a placeholder (expired, failed to store, deleted), 2 recalled
    place: int
    msg_body: tuple[Any, ...] = ()

    @property
    def digest(self) -> str:
        return body_digest(self.msg_body)


@dataclass(frozen=True, slots=True)
class AccountHistory:
    """An account's history back to `since` (or as far as the vendor keeps it), newest first."""

    account: str
    messages: tuple[HistoryMessage, ...]
    #: the wall clock when it was read: the diff's "now" (the diff itself reads no clock)
    read_at: float
    since: float
    #: None: read; else why it could not be (the account does not exist yet, ...)
    missing: str | None = None

    @property
    def fingerprint(self) -> str:
        """What a saved plan pins: every message's key, random, state and digest."""
        return content_digest([[m.key, m.random, m.place, m.digest] for m in self.messages])


# -- resolve --------------------------------------------------------------------------------------


def _p(pos: Position, message: str) -> Problem:
    return Problem(pos.file, pos.line, pos.col, message)


def resolve(documents: Sequence[Document]) -> tuple[list[BroadcastRecord], list[Problem]]:
    """Each schema-valid Broadcast document into its record; every problem, positioned."""
    records: list[BroadcastRecord] = []
    problems: list[Problem] = []
    for doc in documents:
        record, found = _record(doc)
        problems.extend(found)
        if record is not None:
            records.append(record)
    problems.extend(_duplicates(records))
    return records, problems


def _record(doc: Document) -> tuple[BroadcastRecord | None, list[Problem]]:
    data: Node = doc.data
    metadata, spec = data["metadata"], data["spec"]
    at = position_of(metadata, "name") or doc.position
    problems: list[Problem] = []
    # the window's length is checked against limits.historyDays by the diff (config is not
    # read here); any length passes this first reading
    window, found = parse_window(spec, doc.position, history_days=10**6)
    problems.extend(found)
    body = spec["body"]
    for i, element in enumerate(body):
        if len(element) != 1:
            pos = position_of(body, i) or doc.position
            names = ", ".join(ELEMENT_TYPES)
            problems.append(
                _p(pos, f"spec.body[{i}]: one element type per item ({names}), not {len(element)}")
            )
    reason = spec.get("reason", "")
    if len(reason.encode("utf-8")) > REASON_MAX_BYTES:
        pos = position_of(spec, "reason") or doc.position
        problems.append(
            _p(pos, f"spec.reason: at most {REASON_MAX_BYTES} bytes, not {len(reason.encode())}")
        )
    if problems or window is None:
        return None, problems
    msg_body = vendor_body(body)
    size = len(canonical(msg_body).encode("utf-8"))
    if size > MESSAGE_MAX_BYTES:
        pos = position_of(spec, "body") or doc.position
        return None, [
            _p(
                pos,
                f"spec.body: {size:,} bytes as sent, over the 12 KB ({MESSAGE_MAX_BYTES:,})"
                " message limit",
            )
        ]
    push = spec.get("offlinePush")
    return (
        BroadcastRecord(
            name=metadata["name"],
            account=canonical_account_id(spec["account"]),
            msg_body=tuple(msg_body),
            body=tuple(_plain(body)),
            window=window,
            position=at,
            cloud_custom_data=spec.get("cloudCustomData"),
            offline_push=None if push is None else _plain(push),
            online_only=bool(spec.get("onlineOnly", False)),
            recall=bool(spec.get("recall", False)),
            reason=reason,
            resend=bool(spec.get("resend", False)),
            labels=dict(metadata.get("labels", {})),
        ),
        [],
    )


def _plain(value: Any) -> Any:
    """Nodes into plain dicts and lists (records hold no positions)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _opens(record: BroadcastRecord) -> dt.datetime:
    return record.window.not_before or dt.datetime.min.replace(tzinfo=dt.UTC)


def _duplicates(records: Sequence[BroadcastRecord]) -> list[Problem]:
    """Two broadcasts with identical bodies due to one account within 5 minutes: the vendor would
    drop the second as a duplicate of the first (reference 7.1)."""
    problems = []
    by_body: dict[tuple[str, str], list[BroadcastRecord]] = {}
    for record in records:
        if not record.recall:
            by_body.setdefault((record.account, record.digest), []).append(record)
    for group in by_body.values():
        group.sort(key=lambda r: (_opens(r), r.name))
        for i, second in enumerate(group):
            for first in group[:i]:
                gap = (_opens(second) - first.window.not_after).total_seconds()
                if gap < DUPLICATE_SECONDS:  # their windows come within 5 minutes
                    problems.append(
                        _p(
                            second.position,
                            f"Broadcast '{second.name}' has the same body as '{first.name}'"
                            f" ({first.position}) and may be sent from {short(first.account)}"
                            " within 5 minutes of it: the vendor would drop it as a duplicate",
                        )
                    )
                    break
    return problems
