"""Where the two vendors answer: Tencent IM's regional domains and the WeChat API's base URL.

A leaf module (it imports nothing of reconciler's): `config.py` resolves a target's `region` with it
without loading the HTTP stack (`validate` stays light), and `providers/` and `connect.py` default
to the same addresses.
"""

from __future__ import annotations

from typing import Final

#: Tencent IM regions and their REST domains (reference section 1.2). Use the region the SDKAppID
#: was created in. `schemas/reconciler.schema.json` lists the same names (a test holds them equal).
REGION_DOMAINS: Final = {
    "cn": "console.tim.qq.com",
    "sgp": "adminapisgp.im.qcloud.com",
    "kr": "adminapikr.im.qcloud.com",
    "jpn": "adminapijpn.im.qcloud.com",
    "ger": "adminapiger.im.qcloud.com",
    "ind": "adminapiind.im.qcloud.com",
    "usa": "adminapiusa.im.qcloud.com",
    "idn": "adminapiidn.im.qcloud.com",
}
#: The WeChat Official Accounts Platform API (reference/wechat-mp-mass-api.md, introduction).
WECHAT_ENDPOINT: Final = "https://api.weixin.qq.com"
