"""`kind: MassMessage` through the real CLI against a sandbox served over real HTTP: upload and
send to everyone, by tag and to 25,000 OpenIDs in three batches; preview; status to success;
delete; a lost answer on every send call resolved by the 45065 replay; drift of a job deleted by
hand; and a fresh checkout (no local state: everything is read from the live system) that plans
no changes. The crash test is `test_mass_message_crash.py`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_e2e_common import Project, config_text, in_process_project

from reconciler.kinds.mass_message.diff import TYPE_UNKNOWN
from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.serve import RunningServer

OPENIDS = [f"o{n:027d}" for n in range(25_000)]
NOT_AFTER = "2099-01-01T00:00:00Z"


def message(name: str, audience: dict[str, Any], msg_type: str = "text", **spec: Any) -> str:
    body: dict[str, Any] = {"type": msg_type, "audience": audience}
    body["window"] = spec.pop("window", {"notAfter": NOT_AFTER})
    if msg_type == "text":
        body["text"] = {"content": f"hello from {name}"}
    elif msg_type == "news":
        body["news"] = {
            "articles": [
                {"title": f"{name} {i}", "content": f"<p>{i}</p>", "thumbMediaId": "thumb"}
                for i in (1, 2)
            ]
        }
    body.update(spec)
    return json.dumps(
        {
            "apiVersion": "reconciler/v1",
            "kind": "MassMessage",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def log(project: Project) -> list[dict[str, Any]]:
    vendor = project.vendor()
    try:
        return vendor.log()
    finally:
        vendor.close()


def effects(project: Project, kind: str) -> list[list[str]]:
    return [e[1:] for entry in log(project) for e in entry["effects"] if e[0] == kind]


@pytest.fixture
def project(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Project:
    return in_process_project(tmp_path, make_sandbox_server, monkeypatch)


def test_news_to_everyone_is_uploaded_sent_deleted_and_then_plans_no_changes(
    project: Project,
) -> None:
    project.manifests(message("digest-49", {"all": True}, "news", delete=True))
    plan = project.cli("plan", "m")
    assert plan.code == 0, plan.text
    assert plan.lines[2:9] == [
        "+ mass message digest-49 will be sent (irreversible)",
        '    type: news — "digest-49 1", "digest-49 2"',
        "    audience: everyone",
        "    window: until 2099-01-01 00:00 UTC",
        "    quota: 1 of 100 sends in 24 hours after this one; 1 of 10 news uploads",
        "    then deleted: every article (irreversible)",
        "",
    ]
    shown = json.loads(project.cli("plan", "m", "--format", "json").out)
    (send,) = [c for c in shown["changes"] if c["type"] == "sendMassMessage"]
    assert (send["audienceLabel"], send["irreversible"], send["send"]) == ("everyone", True, [0])
    markdown = project.cli("plan", "m", "--format", "markdown").out
    assert "Mass message `digest-49` will be sent (irreversible)" in markdown
    applied = project.run("apply", "m", "--auto-approve")  # the CLI in a process of its own
    assert applied.code == 0, applied.text
    assert [e[1] for e in effects(project, "mass_sent")] == ["all"]
    assert len(effects(project, "media_uploaded")) == 1
    assert [e[1] for e in effects(project, "mass_deleted")] == ["all"]
    # a fresh checkout: nothing local, the record in the live system says it was sent
    again = project.run("plan", "m", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.text
    drift = project.run("drift", "m")
    assert drift.code == 0, drift.text


def test_a_tag_and_25000_openids_in_three_batches(project: Project) -> None:
    project.write("m/vip.txt", "\n".join(OPENIDS) + "\n")
    vip = json.dumps(
        {
            "apiVersion": "reconciler/v1",
            "kind": "SubscriberSet",
            "metadata": {"name": "vip"},
            "spec": {"files": ["vip.txt"]},
        }
    )
    project.manifests(
        message("tagged", {"tag": 102}),
        message("listed", {"openIds": {"sets": ["vip"]}}),
        vip,
    )
    plan = project.cli("plan", "m")
    assert "    audience: 25,000 OpenIDs in 3 batches (8,334 + 8,333 + 8,333)" in plan.lines
    unsafe = project.cli("apply", "m", "--auto-approve")
    assert unsafe.code == 1 and "--allow-mass-messages 2" in unsafe.text, unsafe.text
    assert effects(project, "mass_sent") == []
    applied = project.cli("apply", "m", "--auto-approve", "--allow-mass-messages", "2")
    assert applied.code == 0, applied.text
    labels = Counter(e[1].split(":sha256:")[0] for e in effects(project, "mass_sent"))
    assert labels == {"tag:102": 1, "openids:8334": 1, "openids:8333": 2}
    assert project.cli("plan", "m", "--detailed-exitcode").code == 0


def test_a_lost_answer_on_each_send_is_resolved_by_the_replay(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lossy = Behaviour(wechat_lose_send_answers=True, wechat_retry_gap=0)
    project = in_process_project(tmp_path, make_sandbox_server, monkeypatch, behaviour=lossy)
    project.manifests(message("listed", {"openIds": {"members": OPENIDS}}))
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    assert len(effects(project, "mass_sent")) == 3
    codes = Counter((e["code"], e["fault"]) for e in log(project) if e["api"].endswith("mass/send"))
    assert codes == {(0, "http_after"): 3, (45065, ""): 3}
    assert project.cli("plan", "m", "--detailed-exitcode").code == 0


def test_preview_never_sends(project: Project) -> None:
    preview = {"openIds": [OPENIDS[0]], "wxNames": ["reviewer"]}
    project.manifests(message("digest", {"all": True}, "news", preview=preview))
    shown = project.run("preview", "MassMessage/digest", "m")
    assert shown.code == 0, shown.text
    assert shown.lines[1:3] == [
        f"previewed to OpenID {OPENIDS[0]} (msg_id 3000000001)",
        "previewed to WeChat ID reviewer (msg_id 3000000002)",
    ]
    to = project.cli("preview", "MassMessage/digest", "m", "--to", "boss")
    assert to.code == 0, to.text
    assert [e[0] for e in effects(project, "mass_previewed")] == [
        f"touser:{OPENIDS[0]}",
        "towxname:reviewer",
        "towxname:boss",
    ]
    assert effects(project, "mass_sent") == []
    wrong = project.cli("preview", "MassMessage/digst", "m")
    assert wrong.code == 1
    assert wrong.err == (
        "error: no MassMessage named 'digst' in the manifests (did you mean 'digest'?)\n"
    )


def test_a_job_deleted_by_hand_is_drift(project: Project) -> None:
    project.manifests(message("digest", {"tag": 3}, "news"))
    assert project.cli("apply", "m", "--auto-approve").code == 0
    ((msg_id, _, _),) = effects(project, "mass_sent")
    vendor = project.vendor()
    doc = vendor.client.wx("message/mass/delete", {"msg_id": int(msg_id)})
    vendor.close()
    assert doc["errcode"] == 0
    drift = project.cli("drift", "m")
    assert drift.code == 2, drift.text
    assert drift.lines[3] == (
        '  MassMessage/digest status: git (unset), live "batch 0 (msg_id 1000000001) reads'
        ' DELETE: deleted by hand"'
    )
    assert project.cli("plan", "m", "--detailed-exitcode").code == 0  # nothing to send again


def test_a_closed_or_future_window_sends_nothing(project: Project) -> None:
    project.manifests(
        message("late", {"tag": 1}, window={"notAfter": "2020-01-01T00:00:00Z"}),
        message(
            "early", {"tag": 2}, window={"notBefore": "2098-01-01T00:00:00Z", "notAfter": NOT_AFTER}
        ),
    )
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 0, plan.text
    assert "  MassMessage/early: waits for its window: not sent before 2098-01-01 00:00 UTC" in (
        plan.lines
    )
    assert (
        "  MassMessage/late: its window closed at 2020-01-01 00:00 UTC: done, nothing more is"
        " sent" in plan.lines
    )


def test_a_saved_plan_sends_once_and_is_stale_after(project: Project) -> None:
    project.manifests(message("saved", {"tag": 9}))
    assert project.cli("plan", "m", "--out", "send.plan").code == 0
    first = project.cli("apply", "send.plan", "--auto-approve")
    assert first.code == 0, first.text
    again = project.cli("apply", "send.plan", "--auto-approve")
    assert again.code == 1, again.text
    assert "mass record saved" in again.err
    assert len(effects(project, "mass_sent")) == 1


def test_a_job_still_sending_is_read_until_final(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 30,000 followers at 800,000 a minute: about two seconds SENDING, then SEND_SUCCESS
    slow = Behaviour(wechat_followers=30_000)
    project = in_process_project(tmp_path, make_sandbox_server, monkeypatch, behaviour=slow)
    project.manifests(message("video", {"tag": 4}, "text"))
    project.manifests(
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "MassMessage",
                "metadata": {"name": "film"},
                "spec": {
                    "type": "video",
                    "video": {"mediaId": "tmp-video", "title": "Film", "description": "d"},
                    "audience": {"tag": 4},
                    "window": {"notAfter": NOT_AFTER},
                    "delete": True,
                },
            }
        )
    )
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    gets = [e for e in log(project) if e["api"].endswith("mass/get")]
    assert len(gets) >= 2
    assert [e[1] for e in effects(project, "mass_deleted")] == ["all"]
    assert len(effects(project, "media_uploaded")) == 1
    shown = project.cli("preview", "MassMessage/film", "m", "--to", "reviewer")
    assert shown.code == 0, shown.text


def test_a_send_the_vendor_refuses_fails_cleanly_and_is_planned_again(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a subscription account cannot send by OpenID (reference section 4): 48001
    subscription = Behaviour(wechat_account_type="subscription")
    project = in_process_project(tmp_path, make_sandbox_server, monkeypatch, behaviour=subscription)
    project.manifests(message("listed", {"openIds": {"members": OPENIDS[:5]}}))
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 3, applied.text  # the inventory user was imported, the send failed
    assert (
        "failed  MassMessage/listed: send: wechat (mass_send) on wxsandbox00000000: api"
        " unauthorized [vendor code 48001]" in applied.lines
    )
    assert effects(project, "mass_sent") == []
    again = project.cli("plan", "m", "--detailed-exitcode")
    assert again.code == 2 and "+ mass message listed will be sent (irreversible)" in again.out


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["MassMessage/quiet"],
            "error: MassMessage/quiet: no one to preview to (declare"
            " spec.preview.openIds or wxNames, or give --to OPENID|WXNAME)\n",
        ),
        (["Broadcast/quiet"], "error: preview takes MassMessage/NAME, not 'Broadcast/quiet'\n"),
        (
            ["MassMessage/quiet", *[a for n in range(101) for a in ("--to", f"wx{n}")]],
            "error: 101 previews by WeChat ID; the vendor allows 100 a day\n",
        ),
    ],
)
def test_preview_refuses_before_any_call(project: Project, args: list[str], error: str) -> None:
    project.manifests(message("quiet", {"tag": 1}))
    done = project.cli("preview", *args[:1], "m", *args[1:])
    assert (done.code, done.err) == (1, error)
    assert effects(project, "mass_previewed") == []


def test_a_declared_subscription_account_defers_the_second_send_and_refuses_openids(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscription = Behaviour(wechat_account_type="subscription")
    project = in_process_project(tmp_path, make_sandbox_server, monkeypatch, behaviour=subscription)
    plain = config_text(project.base_url)
    declared = plain.replace(
        "      secret: ${E2E_WX_SECRET}\n",
        "      secret: ${E2E_WX_SECRET}\n      accountType: subscription\n",
    )
    project.write("reconciler.yaml", declared)
    listed = message("listed", {"openIds": {"members": OPENIDS[:5]}})
    project.manifests(message("first", {"tag": 1}), message("second", {"tag": 2}), listed)
    refused = project.cli("plan", "m")
    assert refused.code == 1, refused.text
    assert (
        "  MassMessage/listed: a subscription account (wechat.accountType: subscription) cannot"
        " send to a list of OpenIDs (WeChat mass API section 4): send to everyone or to a tag"
    ) in refused.lines
    project.manifests(message("first", {"tag": 1}), message("second", {"tag": 2}))
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    [deferred] = [line for line in applied.lines if "deferred until" in line]
    assert deferred.endswith("over the quota: a subscription account sends once a day")
    assert [e[1] for e in effects(project, "mass_sent")] == ["tag:1"]
    # without the setting the plan says the limit is not known; the vendor's 45028 is clean
    project.write("reconciler.yaml", plain)
    plan = project.cli("plan", "m")
    assert f"  MassMessage: {TYPE_UNKNOWN}" in plan.lines
    over = project.cli("apply", "m", "--auto-approve")
    assert over.code == 1, over.text  # nothing applied
    assert (
        "failed  MassMessage/second: send: wechat (mass_sendall) on wxsandbox00000000: has no"
        " masssend quota [vendor code 45028]"
    ) in over.lines, over.text
    assert [e[1] for e in effects(project, "mass_sent")] == ["tag:1"]
