"""`reconciler preview MassMessage/NAME [--to OPENID|WXNAME ...]`: the message on a reviewer's
phone before the pull request is merged.

It uploads what the message needs (news, video) and calls `mass/preview` once per recipient (the
manifest's `spec.preview`, or `--to`); never a real send. A recipient that has an OpenID's shape
(28 letters, digits, `_` and `-`, as wechatpy tells them apart; reference section 8) is previewed
by OpenID, anything else by WeChat ID, which the vendor allows 100 times a day: more than that in
one command is refused before any call, and the answer's 45009 says when the day's are used up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from reconciler.errors import ConfigError
from reconciler.kinds.mass_message.model import OPENID, MassMessage, preview_body
from reconciler.providers import MassMessageProvider

#: Reference section 8: previews by WeChat ID a day.
WXNAME_PREVIEWS: Final = 100


def recipients(message: MassMessage, given: Sequence[str]) -> list[str]:
    """`--to`, or the manifest's `spec.preview`; a `ConfigError` when there is nobody."""
    chosen = list(dict.fromkeys(given)) or [*message.preview_openids, *message.preview_wxnames]
    if not chosen:
        raise ConfigError(
            f"MassMessage/{message.name}: no one to preview to (declare spec.preview.openIds or"
            " wxNames, or give --to OPENID|WXNAME)"
        )
    wxnames = [r for r in chosen if not OPENID.fullmatch(r)]
    if len(wxnames) > WXNAME_PREVIEWS:
        raise ConfigError(
            f"{len(wxnames)} previews by WeChat ID; the vendor allows {WXNAME_PREVIEWS} a day"
        )
    return chosen


async def send_previews(
    wechat: MassMessageProvider, message: MassMessage, to: Sequence[str]
) -> list[str]:
    """Upload what `message` needs, preview it to each of `to`; a line per preview."""
    content = message.content
    media = ""
    if message.type == "news":
        media = await wechat.upload_news(list(content["articles"]))
    elif message.type == "video":
        media = await wechat.upload_video(
            content["media_id"], content["title"], content["description"]
        )
    body = preview_body(message.type, content, media)
    lines = []
    by_wxname = 0
    for recipient in to:
        if OPENID.fullmatch(recipient):
            msg_id = await wechat.preview_mass(body, openid=recipient)
            lines.append(f"previewed to OpenID {recipient} (msg_id {msg_id})")
        else:
            msg_id = await wechat.preview_mass(body, wxname=recipient)
            by_wxname += 1
            lines.append(f"previewed to WeChat ID {recipient} (msg_id {msg_id})")
    if by_wxname:
        lines.append(
            f"{by_wxname} preview(s) by WeChat ID: the vendor allows {WXNAME_PREVIEWS} a day"
        )
    lines.append("Nothing was sent to the audience: a preview is not the send.")
    return lines
