"""Secrets in URLs: stream keys, passwords, tokens and passphrases are never shown.

Every message, log line and report that names a source or destination goes through
``mask_url`` (one URL) or ``mask_secrets`` (any text that may contain URLs, such as an
FFmpeg error, which quotes the URL it failed on). What is hidden:

    rtsp://admin:PW@host/stream            userinfo          -> rtsp://***@host/stream
    srt://host:9000?passphrase=P&mode=x    every query value -> srt://host:9000?passphrase=***&mode=***
    https://host/a#token                   the fragment      -> https://host/a#***
    rtmp://host/app/KEY                    RTMP path after the app -> rtmp://host/app/***
    rtmp://host/KEY                        (no app: the only segment may be the key) -> rtmp://host/***

Paths that are not URLs (no ``scheme://``) are returned unchanged. A URL that went
through ``pathlib.Path`` lost a slash (``http:/user:PW@host/a?token=T``); ``mask_secrets``
masks that form too, so a message quoting such a "path" shows no secret either.
"""
from __future__ import annotations

import re

MASK = "***"
# A URL runs to white space or a quote; punctuation that ends a sentence is not part of it.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:,.;)]")
# The same after pathlib folded '//' into '/' (a scheme of 2+ letters: not a drive letter).
_FOLDED_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]+):/(?!/)([^\s'\"<>]*[^\s'\"<>:,.;)])")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def looks_like_url(text: str) -> bool:
    """True for ``scheme://...`` (two or more letters: ``C://`` is a Windows drive)."""
    return bool(_SCHEME.match(str(text)))


def mask_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***`` (see the module docstring)."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    if scheme.lower().startswith("rtmp") and path:
        segments = path.split("/")
        keep = segments[:1] if len(segments) > 1 else []
        path = "/".join([*keep, MASK])
    if query:
        query = "&".join(_mask_param(p) for p in query.split("&"))
    return (f"{scheme}://{authority}{slash}{path}{question}{query}"
            f"{hash_sign}{MASK if fragment else ''}")


def _mask_param(param: str) -> str:
    key, eq, value = param.partition("=")
    return f"{key}={MASK}" if eq else (MASK if key else key)


def mask_secrets(text: str) -> str:
    """``text`` with every URL in it masked by :func:`mask_url`."""
    text = _URL.sub(lambda m: mask_url(m.group(0)), str(text))
    return _FOLDED_URL.sub(lambda m: mask_url(f"{m.group(1)}://{m.group(2)}"), text)


class SecretFilter:
    """A logging filter that masks URLs in every record's message (attach it to handlers)."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
