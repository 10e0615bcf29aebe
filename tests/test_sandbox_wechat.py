"""The WeChat side of the sandbox over real HTTP: tokens, mass speed, the mass-send family."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock

from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.sandbox.wechat import audience_label, content_digest


@pytest.fixture
def client(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> Iterator[SandboxClient]:
    server = make_sandbox_server(clock=fake_clock)
    with httpx.Client(base_url=server.base_url) as http:
        yield SandboxClient(http, server.options, clock=fake_clock)


def get_token(client: SandboxClient, **params: str) -> dict[str, Any]:
    query = {
        "grant_type": "client_credential",
        "appid": client.options.wechat_appid,
        "secret": client.options.wechat_secret,
        **params,
    }
    doc: dict[str, Any] = client.http.get("/cgi-bin/token", params=query).json()
    return doc


def stable(client: SandboxClient, **body: Any) -> dict[str, Any]:
    doc: dict[str, Any] = client.http.post(
        "/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": client.options.wechat_appid,
            "secret": client.options.wechat_secret,
            **body,
        },
    ).json()
    return doc


def speed_get(client: SandboxClient, token: str) -> dict[str, Any]:
    doc: dict[str, Any] = client.http.post(
        "/cgi-bin/message/mass/speed/get", params={"access_token": token}, json={}
    ).json()
    return doc


def test_token_credentials(client: SandboxClient) -> None:
    doc = get_token(client)
    assert set(doc) == {"access_token", "expires_in"}
    assert doc["expires_in"] == 7200
    assert get_token(client, secret="wrong") == {"errcode": 40125, "errmsg": "invalid appsecret"}
    assert get_token(client, appid="wxnope") == {"errcode": 40013, "errmsg": "invalid appid"}
    assert get_token(client, grant_type="password") == {
        "errcode": 40002,
        "errmsg": "invalid grant_type",
    }


def test_token_expiry_and_replacement(client: SandboxClient, fake_clock: FakeClock) -> None:
    first = get_token(client)["access_token"]
    assert speed_get(client, first) == {"speed": 0, "realspeed": 80}
    second = get_token(client)["access_token"]
    fake_clock.advance(299)
    assert speed_get(client, first)["speed"] == 0  # 5 minutes of overlap
    fake_clock.advance(2)
    assert speed_get(client, first)["errcode"] == 40001
    fake_clock.advance(7200)
    assert speed_get(client, second)["errcode"] == 42001
    assert client.http.post("/cgi-bin/message/mass/speed/get").json()["errcode"] == 41001
    unknown = client.http.post("/cgi-bin/message/mass/speed/get", params={"access_token": "x"})
    assert unknown.json()["errcode"] == 40001


def test_a_third_token_kills_the_first_at_once(client: SandboxClient) -> None:
    first = get_token(client)["access_token"]
    get_token(client)
    get_token(client)
    assert speed_get(client, first)["errcode"] == 40001


def test_stable_token(client: SandboxClient, fake_clock: FakeClock) -> None:
    a = stable(client)
    assert a["expires_in"] == 7200
    fake_clock.advance(100)
    b = stable(client)
    assert b == {"access_token": a["access_token"], "expires_in": 7100}
    plain = get_token(client)["access_token"]  # the two kinds are independent
    assert speed_get(client, a["access_token"])["speed"] == 0
    assert plain != a["access_token"]
    forced = stable(client, force_refresh=True)
    assert forced["access_token"] != a["access_token"]
    fake_clock.advance(10)
    assert stable(client, force_refresh=True)["access_token"] == forced["access_token"]  # < 30 s
    fake_clock.advance(30)
    again = stable(client, force_refresh=True)["access_token"]
    assert again != forced["access_token"]
    assert speed_get(client, a["access_token"])["errcode"] == 40001  # two forced refreshes
    assert stable(client, secret="nope")["errcode"] == 40125
    # Renewed in its last 5 minutes.
    fake_clock.advance(7200 - 299)
    assert stable(client)["access_token"] != again


def test_token_daily_quota(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> None:
    server = make_sandbox_server(clock=fake_clock)
    with httpx.Client(base_url=server.base_url) as http:
        c = SandboxClient(http, server.options, clock=fake_clock)
        server.sandbox._db.execute(
            "INSERT INTO quota (name, day, used) VALUES ('token', ?, 1999)",
            (int(fake_clock()) // 86400,),
        )
        assert "access_token" in get_token(c)
        assert get_token(c)["errcode"] == 45009
        fake_clock.advance(86400)
        assert "access_token" in get_token(c)


def test_mass_speed(client: SandboxClient) -> None:
    for speed, real in [(0, 80), (1, 60), (2, 45), (3, 30), (4, 10)]:
        assert client.wx("message/mass/speed/set", {"speed": speed}) == {"errcode": 0, "errmsg": ""}
        assert client.wx("message/mass/speed/get", {}) == {"speed": speed, "realspeed": real}
    assert client.wx("message/mass/speed/get") == {"speed": 4, "realspeed": 10}  # no body
    for bad in (5, -1, "2", 2.0, True):
        assert client.wx("message/mass/speed/set", {"speed": bad})["errcode"] == 45083, bad
    assert client.wx("message/mass/speed/set", {}) == {
        "errcode": 45084,
        "errmsg": "No speed message",
    }
    assert client.wx("message/mass/speed/set", b"{nope")["errcode"] == 47001
    assert client.wx("message/mass/speed/set", b"")["errcode"] == 44002
    response = client.http.get(
        "/cgi-bin/message/mass/speed/get", params={"access_token": client.token()}
    )
    assert response.json()["errcode"] == 43002
    assert response.headers["content-type"] == "application/json; encoding=utf-8"


TEXT = {"msgtype": "text", "text": {"content": "hello"}}


def test_sendall_clientmsgid_and_status(client: SandboxClient, fake_clock: FakeClock) -> None:
    body = {"filter": {"is_to_all": True}, **TEXT, "clientmsgid": "job-1"}
    sent = client.wx("message/mass/sendall", body)
    assert sent == {"errcode": 0, "errmsg": "send job submission success", "msg_id": 1000000001}
    assert client.wx("message/mass/sendall", body)["errcode"] == 45066  # retried within a minute
    fake_clock.advance(60)
    assert client.wx("message/mass/sendall", body) == {
        "errcode": 45065,
        "errmsg": "clientmsgid exist",
        "msg_id": 1000000001,
    }
    fake_clock.advance(86400)
    assert client.wx("message/mass/sendall", body)["msg_id"] == 1000000002
    assert client.wx("message/mass/get", {"msg_id": 1000000001}) == {
        "msg_id": 1000000001,
        "msg_status": "SEND_SUCCESS",
    }
    assert client.wx("message/mass/get", {"msg_id": "1000000002"})["msg_status"] == "SEND_SUCCESS"
    assert client.wx("message/mass/get", {"msg_id": 5})["errcode"] == 40059
    long_id = {**body, "clientmsgid": "x" * 65}
    assert client.wx("message/mass/sendall", long_id)["errcode"] == 45067


def test_sendall_without_clientmsgid_dedups_on_content(
    client: SandboxClient, fake_clock: FakeClock
) -> None:
    body = {"filter": {"is_to_all": False, "tag_id": 2}, **TEXT}
    assert client.wx("message/mass/sendall", body)["errcode"] == 0
    fake_clock.advance(120)
    assert client.wx("message/mass/sendall", body)["errcode"] == 45065
    other_tag = {**body, "filter": {"is_to_all": False, "tag_id": 3}}
    assert client.wx("message/mass/sendall", other_tag)["errcode"] == 0


def test_sendall_validation(client: SandboxClient) -> None:
    no_tag = {"filter": {"is_to_all": False}, **TEXT}
    assert client.wx("message/mass/sendall", no_tag)["errcode"] == 47001
    assert client.wx("message/mass/sendall", {**TEXT})["errcode"] == 47001
    to_all = {"filter": {"is_to_all": True}}
    assert (
        client.wx("message/mass/sendall", {**to_all, "msgtype": "fax", "fax": {}})["errcode"]
        == 40008
    )
    assert (
        client.wx("message/mass/sendall", {**to_all, "msgtype": "voice", "voice": {}})["errcode"]
        == 40007
    )
    news = client.wx(
        "message/mass/sendall", {**to_all, "msgtype": "mpnews", "mpnews": {"media_id": "m"}}
    )
    assert news["msg_data_id"] == 2247480000 + news["msg_id"]
    legacy = {"filter": {"is_to_all": False, "group_id": 9}, **TEXT}  # wechatpy's key
    assert client.wx("message/mass/sendall", legacy)["errcode"] == 0


def test_send_by_openid_list(client: SandboxClient) -> None:
    assert client.wx("message/mass/send", {"touser": ["o1"], **TEXT})["errcode"] == 40130
    many = [f"o{i}" for i in range(10001)]
    assert client.wx("message/mass/send", {"touser": many, **TEXT})["errcode"] == 40032
    assert client.wx("message/mass/send", {"touser": ["o1", ""], **TEXT})["errcode"] == 40003
    assert client.wx("message/mass/send", {"touser": ["o1", "o2"], **TEXT})["errcode"] == 0


def test_preview_delete_and_uploads(client: SandboxClient) -> None:
    preview = client.wx("message/mass/preview", {"towxname": "someone", **TEXT})
    assert (preview["errcode"], preview["errmsg"]) == (0, "preview success")
    assert client.wx("message/mass/preview", TEXT)["errcode"] == 40003
    article = {"title": "T", "thumb_media_id": "thumb", "content": "<p>x</p>"}
    news = client.wx("media/uploadnews", {"articles": [article]})
    assert news["type"] == "news"
    assert isinstance(news["media_id"], str)
    assert client.wx("media/uploadnews", {"articles": [article] * 9})["errcode"] == 47001
    video = client.wx("media/uploadvideo", {"media_id": "tmp", "title": "V", "description": "d"})
    assert video["type"] == "video"
    assert client.wx("media/uploadvideo", {"title": "V"})["errcode"] == 40007
    sent = client.wx(
        "message/mass/sendall",
        {
            "filter": {"is_to_all": True},
            "msgtype": "mpvideo",
            "mpvideo": {"media_id": video["media_id"]},
        },
    )
    text = client.wx("message/mass/sendall", {"filter": {"is_to_all": True}, **TEXT})
    assert client.wx("message/mass/delete", {"msg_id": text["msg_id"]})["errcode"] == 40008
    assert client.wx("message/mass/delete", {"msg_id": 1})["errcode"] == 40059
    assert (
        client.wx("message/mass/delete", {"url": "https://mp.weixin.qq.com/s/x"})["errcode"]
        == 40059
    )
    assert client.wx("message/mass/delete", {})["errcode"] == 47001
    ok = client.wx("message/mass/delete", {"msg_id": sent["msg_id"], "article_idx": None})
    assert ok == {"errcode": 0, "errmsg": "ok"}
    assert client.wx("message/mass/get", {"msg_id": sent["msg_id"]})["msg_status"] == "DELETE"


def test_mass_quotas(client: SandboxClient, fake_clock: FakeClock) -> None:
    article = {"title": "T", "thumb_media_id": "thumb", "content": "c"}
    for _ in range(10):
        assert client.wx("media/uploadnews", {"articles": [article]})["type"] == "news"
    assert client.wx("media/uploadnews", {"articles": [article]})["errcode"] == 45009
    # 60 mass calls a minute: the 61st is refused, the next minute is fine again.
    fake_clock.now = (int(fake_clock()) // 60 + 1) * 60
    for i in range(60):
        doc = client.wx("message/mass/preview", {"touser": f"o{i}", **TEXT})
        assert doc["errcode"] == 0
    assert client.wx("message/mass/preview", {"touser": "o", **TEXT})["errcode"] == 45011
    fake_clock.advance(60)
    assert client.wx("message/mass/preview", {"touser": "o", **TEXT})["errcode"] == 0


# -- jobs over sandbox time, protection, account types, deletes, allow-list, the call log ---------


@pytest.fixture
def make_client(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> Iterator[Callable[..., SandboxClient]]:
    """WeChat clients of servers with some `Behaviour` fields set (one server each)."""
    with ExitStack() as stack:

        def start(**behaviour: Any) -> SandboxClient:
            server = make_sandbox_server(clock=fake_clock, behaviour=Behaviour(**behaviour))
            http = stack.enter_context(httpx.Client(base_url=server.base_url))
            return SandboxClient(http, server.options, clock=fake_clock)

        yield start


TO_ALL = {"filter": {"is_to_all": True}, **TEXT}


def status(client: SandboxClient, msg_id: int) -> str:
    return str(client.wx("message/mass/get", {"msg_id": msg_id})["msg_status"])


def test_job_is_sending_until_its_audience_is_reached(
    make_client: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_client(wechat_followers=1_000_000)
    # Speed 0 reaches 800,000 a minute: a million followers take 75 seconds.
    job = c.wx("message/mass/sendall", TO_ALL)["msg_id"]
    assert status(c, job) == "SENDING"
    fake_clock.advance(74)
    assert status(c, job) == "SENDING"
    fake_clock.advance(1)
    assert status(c, job) == "SEND_SUCCESS"
    # Speed 4 reaches 100,000 a minute: 10,000 OpenIDs (distinct ones counted) take 6 seconds.
    c.wx("message/mass/speed/set", {"speed": 4})
    ids = [f"o{i}" for i in range(10_000)]
    batch = c.wx("message/mass/send", {"touser": ids, **TEXT})["msg_id"]
    video = c.wx(
        "message/mass/send",
        {"touser": ["a", "a", "b"], "msgtype": "mpvideo", "mpvideo": {"media_id": "v"}},
    )["msg_id"]
    assert status(c, video) == "SEND_SUCCESS"  # two people take no whole second
    assert c.wx("message/mass/delete", {"msg_id": video}) == {"errcode": 0, "errmsg": "ok"}
    fake_clock.advance(5)
    assert status(c, batch) == "SENDING"
    fake_clock.advance(1)
    assert status(c, batch) == "SEND_SUCCESS"


def test_admin_confirmation_holds_a_send_to_all(
    make_client: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_client(wechat_admin_confirm=600, wechat_followers=800_000)
    job = c.wx("message/mass/sendall", TO_ALL)["msg_id"]
    tag = c.wx("message/mass/sendall", {"filter": {"is_to_all": False, "tag_id": 2}, **TEXT})
    fake_clock.advance(60)
    assert status(c, tag["msg_id"]) == "SEND_SUCCESS"  # only a send to all waits
    fake_clock.advance(599)  # confirmed at 600 s, then a minute to reach 800,000
    assert status(c, job) == "SENDING"
    fake_clock.advance(1)
    assert status(c, job) == "SEND_SUCCESS"
    never = make_client(wechat_admin_confirm=1801)
    held = never.wx(
        "message/mass/sendall", {**TO_ALL, "mpvideo": {"media_id": "v"}, "msgtype": "mpvideo"}
    )["msg_id"]
    fake_clock.advance(1799)
    assert status(never, held) == "SENDING"
    assert never.wx("message/mass/delete", {"msg_id": held}) == {
        "errcode": 40059,
        "errmsg": "invalid msg id: message is not sent successfully",
    }
    fake_clock.advance(1)
    assert status(never, held) == "SEND_FAIL"  # the admin did not answer within 30 minutes
    assert never.wx("message/mass/delete", {"msg_id": held})["errcode"] == 40059


def test_subscription_account_sends_once_a_day_and_never_by_openid(
    make_client: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_client(wechat_account_type="subscription")
    assert c.wx("message/mass/send", {"touser": ["a", "b"], **TEXT}) == {
        "errcode": 48001,
        "errmsg": "api unauthorized",
    }
    assert c.wx("message/mass/sendall", TO_ALL)["errcode"] == 0
    fake_clock.advance(120)
    by_tag = {"filter": {"is_to_all": False, "tag_id": 2}, **TEXT}
    assert c.wx("message/mass/sendall", by_tag) == {
        "errcode": 45028,
        "errmsg": "has no masssend quota",
    }
    fake_clock.now = (int(fake_clock()) // 86400 + 1) * 86400
    assert c.wx("message/mass/sendall", by_tag)["errcode"] == 0


def test_service_account_sends_to_all_four_times_a_month(
    client: SandboxClient, fake_clock: FakeClock
) -> None:
    for i in range(4):
        assert client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": f"m{i}"})["errcode"] == 0
    assert client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "m4"})["errcode"] == 45028
    by_tag = {"filter": {"is_to_all": False, "tag_id": 2}, **TEXT, "clientmsgid": "t"}
    assert client.wx("message/mass/sendall", by_tag)["errcode"] == 0  # tags are not capped
    fake_clock.advance(31 * 86400)  # mid-January to mid-February
    assert client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "m4"})["errcode"] == 0


def test_mass_send_daily_quota_is_100(client: SandboxClient, fake_clock: FakeClock) -> None:
    fake_clock.now = (int(fake_clock()) // 86400) * 86400
    for i in range(100):
        fake_clock.advance(1 if i % 50 else 61)  # under 60 calls a minute
        sent = client.wx("message/mass/send", {"touser": ["a", "b"], **TEXT, "clientmsgid": str(i)})
        assert sent["errcode"] == 0, i
    over = client.wx("message/mass/send", {"touser": ["a", "b"], **TEXT, "clientmsgid": "x"})
    assert over == {"errcode": 45009, "errmsg": "reach max api daily quota limit"}


def test_clientmsgid_limit_counts_bytes(client: SandboxClient) -> None:
    fits = client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "é" * 32})  # 64 bytes
    assert fits["errcode"] == 0
    over = client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "é" * 33})
    assert over == {"errcode": 45067, "errmsg": "clientmsgid size out of limit"}
    assert client.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": 7})["errcode"] == 47001


def test_delete_all_or_listed_articles(client: SandboxClient) -> None:
    article = {"title": "T", "thumb_media_id": "thumb", "content": "<p>x</p>"}
    news = client.wx("media/uploadnews", {"articles": [article] * 3})["media_id"]
    sent = client.wx(
        "message/mass/sendall", {**TO_ALL, "msgtype": "mpnews", "mpnews": {"media_id": news}}
    )
    job = sent["msg_id"]
    ok = {"errcode": 0, "errmsg": "ok"}
    assert client.wx("message/mass/delete", {"msg_id": job, "article_idx": 2}) == ok
    assert status(client, job) == "SEND_SUCCESS"
    assert client.wx("message/mass/delete", {"msg_id": job, "article_idx": 2}) == ok  # again
    assert client.wx("message/mass/delete", {"msg_id": job, "article_idx": 4})["errcode"] == 47001
    assert client.wx("message/mass/delete", {"msg_id": job, "article_idx": 1}) == ok
    assert client.wx("message/mass/delete", {"msg_id": job, "article_idx": 3}) == ok
    assert status(client, job) == "DELETE"
    assert client.wx("message/mass/delete", {"msg_id": job}) == ok  # deleted already: no quota
    video = client.wx(
        "message/mass/sendall",
        {
            "filter": {"is_to_all": False, "tag_id": 1},
            "msgtype": "mpvideo",
            "mpvideo": {"media_id": "v"},
        },
    )["msg_id"]
    assert client.wx("message/mass/delete", {"msg_id": video, "article_idx": 1})["errcode"] == 47001
    assert client.wx("message/mass/delete", {"msg_id": video, "article_idx": 0}) == ok
    assert status(client, video) == "DELETE"
    deletes = [e["effects"] for e in client.log() if e["api"] == "cgi-bin/message/mass/delete"]
    assert [d for d in deletes if d] == [
        [["mass_deleted", str(job), "2"]],
        [["mass_deleted", str(job), "1"]],
        [["mass_deleted", str(job), "3"]],
        [["mass_deleted", str(video), "all"]],
    ]
    # Three real deletes of the news and one of the video used 4 of the daily 10; repeats none.
    for tag in range(2, 9):
        more = client.wx(
            "message/mass/sendall",
            {
                "filter": {"is_to_all": False, "tag_id": tag},
                "msgtype": "mpvideo",
                "mpvideo": {"media_id": "v"},
            },
        )["msg_id"]
        expected = 0 if tag < 8 else 45009
        assert client.wx("message/mass/delete", {"msg_id": more})["errcode"] == expected, tag


def test_uploadnews_checks_article_field_types(client: SandboxClient) -> None:
    article = {"title": "T", "thumb_media_id": "thumb", "content": "<p>x</p>"}
    for bad in ({"author": 1}, {"digest": []}, {"show_cover_pic": 2}, {"need_open_comment": True}):
        doc = client.wx("media/uploadnews", {"articles": [{**article, **bad}]})
        assert doc["errcode"] == 47001, bad
    full = {
        **article,
        "author": "A",
        "digest": "d",
        "content_source_url": "https://x",
        "show_cover_pic": 1,
    }
    assert client.wx("media/uploadnews", {"articles": [full]})["type"] == "news"


def test_call_log_names_audience_and_content(client: SandboxClient) -> None:
    ids = ["o2", "o1", "o2"]
    job = client.wx("message/mass/send", {"touser": ids, **TEXT})["msg_id"]
    tag = client.wx("message/mass/sendall", {"filter": {"is_to_all": False, "tag_id": 5}, **TEXT})
    client.wx("message/mass/preview", {"towxname": "wxid", "touser": "o1", **TEXT})
    effects = [
        e["effects"][0] for e in client.log() if e["effects"] and e["api"] != "cgi-bin/token"
    ]
    digest = content_digest("text", TEXT["text"])
    assert effects == [
        ["mass_sent", str(job), audience_label(["o1", "o2"]), digest],
        ["mass_sent", str(tag["msg_id"]), "tag:5", digest],
        ["mass_previewed", "towxname:wxid", digest],
    ]
    assert audience_label(["o1", "o2"]).startswith("openids:2:sha256:")


def test_allow_list_refusal_names_the_ip(
    make_client: Callable[..., SandboxClient],
) -> None:
    c = make_client()
    token = c.token()
    refused = {
        "errcode": 40164,
        "errmsg": "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
    }
    assert c.behave(wechat_blocked_ip="203.0.113.7")["wechat_blocked_ip"] == "203.0.113.7"
    with pytest.raises(RuntimeError, match="unknown behaviour field 'nope'"):
        c.behave(nope=1)
    assert speed_get(c, token) == refused
    assert get_token(c) == refused
    assert stable(c) == refused
    c.http.post("/__sandbox/behaviour", json={"wechat_blocked_ip": ""})
    assert speed_get(c, token) == {"speed": 0, "realspeed": 80}
    from_start = make_client(wechat_blocked_ip="198.51.100.1")
    assert get_token(from_start)["errcode"] == 40164


def test_in_process_transport_moves_jobs_on_the_injected_clock(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    options = SandboxOptions(
        db_path=tmp_path / "inproc.db",
        clock=fake_clock,
        behaviour=Behaviour(wechat_followers=400_000),
    )
    box = Sandbox(options)
    try:
        with httpx.Client(transport=box.transport(), base_url="http://sandbox") as http:
            c = SandboxClient(http, options, clock=fake_clock)
            job = c.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "j"})["msg_id"]
            assert status(c, job) == "SENDING"
            fake_clock.advance(60)
            replay = c.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "j"})
            assert replay == {"errcode": 45065, "errmsg": "clientmsgid exist", "msg_id": job}
            fake_clock.advance(-31)  # 29 s after the send
            assert c.wx("message/mass/sendall", {**TO_ALL, "clientmsgid": "j"})["errcode"] == 45066
            fake_clock.advance(1)  # 400,000 at 800,000 a minute: 30 seconds
            assert status(c, job) == "SEND_SUCCESS"
    finally:
        box.close()
