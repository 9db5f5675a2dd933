"""Secrets out of everything cinv writes or prints: passwords and tokens inside URLs.

Storage and tracking URLs may carry credentials (``postgresql://user:pw@host/db``,
``...?password=pw``, ``https://user:token@server``). Params, ``config.json``, tags, error
messages and console lines go through [redact][], which replaces each secret with ``***``
and leaves the rest of the URL readable. Resumed runs compare redacted configs.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["MASK", "SECRET_KEYS", "redact", "redact_url", "redacted", "unclean_userinfo"]

MASK = "***"
# Query parameters that hold a secret (libpq, SQLAlchemy drivers, cloud SDKs, generic tokens).
SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "sslkey", "token", "access_token", "api_key",
                         "apikey", "secret", "client_secret", "sig", "signature", "x-amz-signature", "x-amz-credential",
                         "x-amz-security-token", "auth", "authorization"})
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"<>]+""")


# scheme://<userinfo>@<host>: the userinfo runs to the last "@" before a host (and port), so a
# password typed raw with "#", "/", "?" or "@" in it is found before a URL parser splits it apart.
_RAW_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>.*)@(?P<rest>[A-Za-z0-9.\-_~%\[\]:]+(?:[/?#].*)?)$",
                           re.DOTALL)


def _mask_raw_userinfo(url: str) -> str:
    """A userinfo holding characters that end the authority (``#``, ``/``, ``?``, ``@``) masked
    before parsing: ``http://alice:pa#SECRET@host`` would otherwise parse as host ``alice``, port
    ``pa`` and a fragment that keeps the secret."""
    match = _RAW_USERINFO.match(url)
    if not match or match["userinfo"].startswith("/") or not any(c in match["userinfo"] for c in "#/?@"):
        return url
    user, colon, _ = match["userinfo"].partition(":")
    if colon and not any(c in user for c in "#/?@"):
        return f"{match['scheme']}{user}:{MASK}@{match['rest']}"
    return f"{match['scheme']}{MASK}@{match['rest']}"


# RFC 3986 user-info (unreserved, percent-encoded, sub-delims but the quote, and ":"): anything else
# ends the authority for some parser ('#', '/', '?', '@') or a URL inside a message (quotes, spaces,
# '<', '>'), so a password holding it would be read as a host, a port, a fragment, or printed whole.
_CLEAN_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&()*+,;=:]|%[0-9A-Fa-f]{2})*")


def unclean_userinfo(url: str) -> str | None:
    """Why ``url``'s user-info cannot be taken as ``user:password`` (None when it can, or has none):
    such a URL is refused before any connection, never guessed at. The reason names no character
    of the secret, and [redact_url][] masks the URL whole around it."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest or rest.startswith("/"):  # no authority (sqlite:////tmp/a@b/x.db): nothing to parse
        return None
    match = _RAW_USERINFO.match(url)
    userinfo = match["userinfo"] if match else rest.rpartition("@")[0]
    if _CLEAN_USERINFO.fullmatch(userinfo):
        return None
    return ("its user-info is not user:password as a URL must write it (the password holds a character that "
            "ends it: '#', '/', '?', '@', a quote, a space, '<' or '>', or a '%' not followed by two hex digits); "
            "percent-encode the password, e.g. # as %23, / as %2F, @ as %40, a space as %20")


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo and every secret query value replaced by ``***``."""
    if unclean_userinfo(url):  # no part of the password is shown, whatever a parser makes of it: the user name
        match = _RAW_USERINFO.match(url)  # only when it stands clean before the first ':'
        user, colon, _ = (match["userinfo"] if match else "").partition(":")
        shown = f"{user}:{MASK}" if colon and user and _CLEAN_USERINFO.fullmatch(user) else MASK
        return f"{url.partition('://')[0]}://{shown}@{match['rest'] if match else url.rpartition('@')[2]}"
    url = _mask_raw_userinfo(url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not parseable (a bad port): mask any userinfo wholesale
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", url)
    netloc, query = parts.netloc, parts.query
    user, at, host = netloc.rpartition("@")
    if password is not None:
        netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}"
    elif at and parts.scheme.lower() in ("http", "https"):  # https://<token>@host: the user name is the secret
        netloc = f"{MASK}@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_KEYS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_KEYS else v) for k, v in pairs], safe="*")
    # Replaced in place, so the rest stays byte for byte (urlunsplit would drop an empty "//").
    if netloc != parts.netloc:
        url = url.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


def redact(text: str) -> str:
    """Every URL inside ``text`` redacted (a message, a parameter value, a console line)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text) if "://" in text else text


def redacted(value: Any) -> Any:
    """``value`` (a string, or dicts and lists of them, as a config dumps) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)
    return value
