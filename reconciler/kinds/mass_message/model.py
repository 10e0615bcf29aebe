"""`kind: MassMessage` as declared: documents (each passed its schema) into `MassMessage` records.

What the schema cannot say is checked here, every problem positioned: an article's `contentFile`
(read as UTF-8, inside the manifest's directory), the OpenIDs of the sets an audience names (the
shape of reference section 8: 28 letters, digits, `_` and `-`), an OpenID audience of at least
two (section 7: a send by OpenID takes 2 to 10,000; larger audiences are split into batches as
even as can be, so no batch is ever left with one), `delete` only for news and video and only of
articles the message has (section 9.1), and the window (`reconciler.kinds.sending`).

The reference gives no byte limits for titles, digests or text (sections 6 to 8, 11): none are
invented here; the vendor's answer is what reports them.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from reconciler.digest import members_digest
from reconciler.errors import Problem
from reconciler.kinds.sending import Window, content_digest, parse_window
from reconciler.load import (
    Document,
    FileRefused,
    confine,
    position_of,
    project_roots,
    read_regular,
)
from reconciler.model import Position
from reconciler.providers.calls import OPENID_BATCH, OPENID_BATCH_MIN

#: Section 8 (wechatpy's test): an OpenID is 28 of these.
OPENID: Final = re.compile(r"[A-Za-z0-9_-]{28}")
#: The manifest's `type` → the vendor's msgtype (sections 6, 7).
MSGTYPES: Final = {
    "news": "mpnews",
    "text": "text",
    "image": "image",
    "voice": "voice",
    "video": "mpvideo",
    "card": "wxcard",
}
#: Section 9.1: only news and video can be deleted.
DELETABLE: Final = frozenset({"news", "video"})
#: Batches one message may have: its record (a CustomString of 3,000 bytes) holds a line for
#: each, and a deletion line (`record.py`). 50 batches are 500,000 OpenIDs.
MAX_BATCHES: Final = 50
#: An article file's size limit (the vendor's own cap is not documented; 1 MiB is far above any
#: article and far below a mistake).
ARTICLE_FILE_BYTES: Final = 1024 * 1024
#: No limit of ours on a window's length: the sending kinds' limit is the IM history's (a
#: broadcast is proven by its history), a mass message's proof is its record. Without
#: `notBefore`, a window is open from now until `notAfter`.
WINDOW_DAYS: Final = 36500

Members = Callable[[Any, str], tuple[frozenset[str], bool]]


class Audience(enum.Enum):
    ALL = "all"
    TAG = "tag"
    OPENIDS = "openIds"


@dataclass(frozen=True, slots=True)
class Target:
    """Who a message goes to: exactly one of everyone, a tag, or OpenIDs."""

    kind: Audience
    tag: int | None = None
    openids: frozenset[str] = frozenset()

    def batches(self) -> list[tuple[str, ...]]:
        """The OpenIDs sorted, in as few batches of at most 10,000 as hold them, as even as can
        be (never a batch of one); one empty batch for everyone or a tag."""
        if self.kind is not Audience.OPENIDS:
            return [()]
        ordered = sorted(self.openids)
        n = max(1, math.ceil(len(ordered) / OPENID_BATCH))
        size, extra = divmod(len(ordered), n)
        out, start = [], 0
        for i in range(n):
            end = start + size + (1 if i < extra else 0)
            out.append(tuple(ordered[start:end]))
            start = end
        return out

    def label(self) -> str:
        if self.kind is Audience.ALL:
            return "everyone"
        if self.kind is Audience.TAG:
            return f"tag {self.tag}"
        sizes = [len(b) for b in self.batches()]
        text = f"{len(self.openids):,} OpenIDs"
        if len(sizes) > 1:
            text += f" in {len(sizes)} batches ({' + '.join(f'{s:,}' for s in sizes)})"
        return text

    @property
    def data(self) -> dict[str, Any]:
        if self.kind is Audience.OPENIDS:
            return {"openIds": members_digest(self.openids), "count": len(self.openids)}
        return {"all": True} if self.kind is Audience.ALL else {"tag": self.tag}


@dataclass(frozen=True, slots=True)
class MassMessage:
    """One declared mass message."""

    name: str
    #: news, text, image, voice, video or card
    type: str
    #: what is uploaded (news: the articles, video: media_id/title/description) or sent as it
    #: is (text, image, voice, card), in the vendor's field names
    content: Mapping[str, Any]
    audience: Target
    window: Window
    ignore_reprint: bool
    preview_openids: tuple[str, ...]
    preview_wxnames: tuple[str, ...]
    #: None: kept; (): every article deleted after the send; (2, 3): those articles
    delete: tuple[int, ...] | None
    position: Position

    @property
    def titles(self) -> tuple[str, ...]:
        if self.type == "news":
            return tuple(a["title"] for a in self.content["articles"])
        if self.type == "video" and self.content.get("title"):
            return (str(self.content["title"]),)
        return ()

    @property
    def digest(self) -> str:
        """What identifies what is sent: the type, the content, the audience and the reprint
        choice (the window, preview and delete are not: they do not change the message)."""
        return content_digest([self.type, self.content, self.audience.data, self.ignore_reprint])


def message_body(msg_type: str, content: Mapping[str, Any], media_id: str) -> dict[str, Any]:
    """The msgtype and its object, as sendall, send and preview take them (sections 6 to 8)."""
    msgtype = MSGTYPES[msg_type]
    if msg_type in ("news", "video"):
        return {"msgtype": msgtype, msgtype: {"media_id": media_id}}
    if msg_type == "image":
        return {"msgtype": "image", "images": {"media_ids": list(content["media_ids"])}}
    return {"msgtype": msgtype, msgtype: dict(content)}


def preview_body(msg_type: str, content: Mapping[str, Any], media_id: str) -> dict[str, Any]:
    """Section 8: a preview's image is one `{media_id}` (its first)."""
    if msg_type == "image":
        return {"msgtype": "image", "image": {"media_id": content["media_ids"][0]}}
    return message_body(msg_type, content, media_id)


_ARTICLE_FIELDS: Final = (
    ("title", "title"),
    ("author", "author"),
    ("digest", "digest"),
    ("contentSourceUrl", "content_source_url"),
    ("thumbMediaId", "thumb_media_id"),
)
_ARTICLE_FLAGS: Final = (
    ("showCoverPic", "show_cover_pic"),
    ("needOpenComment", "need_open_comment"),
    ("onlyFansCanComment", "only_fans_can_comment"),
)


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, pos: Position, message: str) -> None:
        self.found.append(Problem(pos.file, pos.line, pos.col, message))


def _at(node: Any, key: str | int, fallback: Position) -> Position:
    return position_of(node, key) or fallback


def _articles(doc: Document, spec: Any, problems: _Problems) -> list[dict[str, Any]]:
    out = []
    articles = spec["news"]["articles"]
    for i, article in enumerate(articles):
        item: dict[str, Any] = {
            vendor: article[key] for key, vendor in _ARTICLE_FIELDS if key in article
        }
        for key, vendor in _ARTICLE_FLAGS:
            if key in article:
                item[vendor] = int(article[key])
        if "content" in article:
            item["content"] = article["content"]
        else:
            pos = _at(article, "contentFile", doc.position)
            where = f"spec.news.articles[{i}].contentFile"
            base = Path(doc.file).parent
            try:
                path = confine(article["contentFile"], base, project_roots([base]))
                item["content"] = read_regular(path, ARTICLE_FILE_BYTES).decode("utf-8")
            except FileRefused as exc:
                problems.add(pos, f"{where}: {article['contentFile']} {exc.reason}")
            except UnicodeDecodeError:
                problems.add(pos, f"{where}: {article['contentFile']} is not UTF-8")
            except OSError as exc:
                problems.add(pos, f"{where}: cannot read {article['contentFile']}: {exc.strerror}")
        out.append(item)
    return out


def _content(doc: Document, spec: Any, problems: _Problems) -> dict[str, Any]:
    kind = spec["type"]
    if kind == "news":
        return {"articles": _articles(doc, spec, problems)}
    if kind == "text":
        return {"content": spec["text"]["content"]}
    if kind == "image":
        return {"media_ids": list(spec["image"]["mediaIds"])}
    if kind == "voice":
        return {"media_id": spec["voice"]["mediaId"]}
    if kind == "video":
        video = spec["video"]
        return {
            "media_id": video["mediaId"],
            "title": video.get("title", ""),
            "description": video.get("description", ""),
        }
    return {"card_id": spec["card"]["cardId"]}


def _audience(doc: Document, spec: Any, members: Members, problems: _Problems) -> Target | None:
    audience = spec["audience"]
    pos = _at(spec, "audience", doc.position)
    if "all" in audience:
        return Target(Audience.ALL)
    if "tag" in audience:
        return Target(Audience.TAG, tag=audience["tag"])
    node = audience["openIds"]
    found, whole = members(node, "spec.audience.openIds")
    bad = sorted(i for i in found if not OPENID.fullmatch(i))
    if bad:
        more = f" and {len(bad) - 3:,} more" if len(bad) > 3 else ""
        problems.add(
            pos,
            "spec.audience.openIds: not an OpenID (28 letters, digits, '_' or '-'): "
            + ", ".join(bad[:3])
            + more,
        )
    if whole and len(found) < OPENID_BATCH_MIN:
        problems.add(
            pos,
            f"spec.audience.openIds: {len(found)} OpenID(s); a send by OpenID takes at least"
            f" {OPENID_BATCH_MIN} (WeChat mass API section 7)",
        )
    target = Target(Audience.OPENIDS, openids=found)
    if len(target.batches()) > MAX_BATCHES:
        problems.add(
            pos,
            f"spec.audience.openIds: {len(found):,} OpenIDs; at most"
            f" {MAX_BATCHES * OPENID_BATCH:,} ({MAX_BATCHES} sends) in one message",
        )
    return target if whole and not bad else None


def _delete(
    doc: Document, spec: Any, content: Mapping[str, Any], problems: _Problems
) -> tuple[int, ...] | None:
    raw = spec.get("delete", False)
    if raw is False:
        return None
    pos = _at(spec, "delete", doc.position)
    if spec["type"] not in DELETABLE:
        problems.add(
            pos,
            f"spec.delete: a {spec['type']} message cannot be deleted; only news and video can"
            " (WeChat mass API section 9.1)",
        )
        return None
    if raw is True:
        return ()
    wanted = tuple(sorted(raw["articles"]))
    if spec["type"] == "video":
        problems.add(pos, "spec.delete.articles: a video has no articles; use delete: true")
        return None
    count = len(content.get("articles", ()))
    over = [i for i in wanted if i > count]
    if over:
        problems.add(
            pos,
            f"spec.delete.articles: article {over[0]} does not exist (the message has {count})",
        )
        return None
    return wanted


def resolve(docs: Sequence[Document], members: Members) -> tuple[list[MassMessage], list[Problem]]:
    """The declared messages and every problem (`Kind.resolve_with_sets`)."""
    problems = _Problems()
    out: list[MassMessage] = []
    for doc in docs:
        before = len(problems.found)
        spec = doc.data["spec"]
        content = _content(doc, spec, problems)
        audience = _audience(doc, spec, members, problems)
        window, window_problems = parse_window(spec, doc.position, history_days=WINDOW_DAYS)
        problems.found.extend(window_problems)
        delete = _delete(doc, spec, content, problems)
        preview = spec.get("preview", {})
        if audience is None or window is None or len(problems.found) > before:
            continue
        out.append(
            MassMessage(
                name=doc.data["metadata"]["name"],
                type=spec["type"],
                content=content,
                audience=audience,
                window=window,
                ignore_reprint=bool(spec.get("sendIgnoreReprint", False)),
                preview_openids=tuple(preview.get("openIds", ())),
                preview_wxnames=tuple(preview.get("wxNames", ())),
                delete=delete,
                position=doc.position,
            )
        )
    return out, problems.found
