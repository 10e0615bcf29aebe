"""reconciler: GitOps for Tencent Cloud IM official accounts and the WeChat mass-send speed."""

from __future__ import annotations

__version__ = "0.1.0"
