"""A wire-exact local emulator of the Tencent IM official-account and WeChat mass APIs."""
