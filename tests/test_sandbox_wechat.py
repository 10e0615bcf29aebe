"""The WeChat side of the sandbox over real HTTP: tokens, mass speed, the mass-send family."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import FakeClock

from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer


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
