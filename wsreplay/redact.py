"""Which values are secrets, by name and by shape: one implementation for every output.

The recorder (:mod:`wsreplay.recorder`), the console's save and the reports
(:mod:`wsreplay.report`) all ask this module. Pure: no I/O.

**By name** (documented defaults, extended with ``--redact-header/-query/-field``, narrowed
with ``--keep-field``):

* request and response headers in :data:`HEADERS` (``Authorization``, ``Cookie``,
  ``Set-Cookie``, ``X-Api-Key``, ``X-Auth-Token``...);
* query keys in :data:`QUERY` (``token``, ``access_token``, ``auth``, ``jwt``, ``sig``,
  ``key``, ``password``...);
* JSON object keys in :data:`FIELDS`, compared without case, ``_`` or ``-``, at any depth, in
  ``json``, ``msgpack`` and ``cbor`` messages (``password``, ``token``, ``accessToken``,
  ``refresh_token``, ``apiKey``, ``client_secret``...): their string values;
* ``KEY=VALUE`` and ``KEY: VALUE`` in text messages with such a key (``password=...``,
  STOMP's ``passcode:...``);
* offered subprotocols holding a secret word (``bearer``, ``token``...) or starting with a
  known prefix (Kubernetes' ``base64url.bearer.authorization.k8s.io.``); in the common pair
  ``access_token, <token>`` the label stays and the entry after it is the secret.

**By shape**, wherever a value travels (header values, query values, URL path segments,
subprotocols, JSON string values, text messages): JSON Web Tokens, ``Bearer <token>``, and
keys with well-known prefixes (:data:`KEY_PREFIXES`: Stripe ``sk_live_``, GitHub ``ghp_``,
Slack ``xoxb-``, AWS ``AKIA``, Google ``AIza``, OpenAI ``sk-``, GitLab ``glpat-``, npm ``npm_``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Iterable
from urllib.parse import unquote_plus

from .patterns import compiled

HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "apikey", "x-auth-token", "x-access-token", "x-refresh-token", "x-session-token",
    "x-csrf-token", "x-xsrf-token", "x-amz-security-token", "x-goog-api-key",
    "x-functions-key", "private-token", "x-hasura-admin-secret"})
QUERY = frozenset({
    "access_token", "token", "api_key", "apikey", "api-key", "key", "password", "passwd",
    "secret", "auth", "jwt", "sig", "signature", "id_token", "refresh_token", "client_secret",
    "session_token", "x-amz-signature", "x-amz-security-token", "x-amz-credential"})
# JSON keys, as :func:`field_key` spells them (lower case, no ``_`` or ``-``).
FIELDS = frozenset({
    "password", "passwd", "passcode", "secret", "token", "accesstoken", "refreshtoken",
    "idtoken", "authtoken", "sessiontoken", "apikey", "xapikey", "clientsecret",
    "authorization", "privatekey", "jwt", "bearer", "bearertoken", "otp"})
# Keys in text messages (``password=...``, ``passcode:...``): the fields and these.
TEXT_ONLY_KEYS = frozenset({"pass", "auth", "sig", "signature"})
TEXT_KEYS = FIELDS | TEXT_ONLY_KEYS
# An offered subprotocol holding one of these words (any case) is a secret...
PROTOCOL_WORDS = ("bearer", "token", "authorization", "password", "secret", "apikey",
                  "api_key", "api-key")
# ... and one starting with one of these prefixes (any case) is the prefix and a secret:
# Kubernetes' bearer token, AWS AppSync's base64url-encoded authorization headers.
PROTOCOL_PREFIXES = ("base64url.bearer.authorization.k8s.io.", "header-")
KEY_PREFIXES = (
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}",  # OpenAI, Anthropic
    r"gh[pousr]_[A-Za-z0-9]{30,}", r"github_pat_[A-Za-z0-9_]{40,}",  # GitHub
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key ids
    r"AIza[0-9A-Za-z_\-]{35}",  # Google
    r"npm_[A-Za-z0-9]{36}",  # npm
    r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",  # SendGrid
    r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",  # Shopify
)
_T = r"[A-Za-z0-9_\-]"  # a token character; what may not touch a shape from either side
_SHAPES = re.compile(
    rf"(?<!{_T})(?P<JWT>eyJ{_T}{{4,}}\.{_T}{{4,}}\.{_T}*)"
    # a bearer token: 20+ characters, or 8+ with a digit ("Bearer authentication" is prose)
    r"|(?i:\bbearer)[ \t]+(?P<BEARER>(?=[A-Za-z0-9._~+/\-]{0,200}?\d)[A-Za-z0-9._~+/\-]{8,}=*"
    r"|[A-Za-z0-9._~+/\-]{20,}=*)"
    rf"|(?<!{_T})(?P<KEY>(?:{'|'.join(KEY_PREFIXES)}))(?!{_T})"
    # KEY=VALUE / KEY: VALUE in text, with a secret key (checked against TEXT_KEYS)
    # (``: `` with a blank after it is prose: "the token: is here")
    r"|(?<![A-Za-z0-9_])(?P<k>[A-Za-z][A-Za-z0-9_\-]{1,31})(?:[ \t]*=[ \t]*|:)"
    r"(?P<VALUE>[^\s&;,\"'<>{}]{1,512})")


def _is_label(entry: str) -> bool:
    """Whether a subprotocol is only the name of a secret (``access_token``,
    ``Authorization``, ``bearer``): a label for the entry after it, not a secret itself."""
    return len(entry) <= 40 and field_key(entry.replace(".", "")) in FIELDS | {"xauthtoken"}


def field_key(key: str) -> str:
    """A key as the name lists spell it: ``accessToken``, ``access_token``, ``Access-Token``
    → ``accesstoken``."""
    return key.lower().replace("_", "").replace("-", "")


@dataclass(frozen=True)
class Secret:
    """A credential inside a text: ``text[start:end]``, named ``base`` (``JWT``, ``BEARER``,
    ``KEY``, or the key it stood under)."""

    start: int
    end: int
    base: str


# Every credential starts at, or a few characters before, one of these (the prefilter: RE2,
# linear and about 1.4 us per KB, where a lowered copy and a scan per word cost ten times that)
_STEM_WORDS = ("pass", "secret", "token", "key", "auth", "jwt", "bearer", "otp", "sig")
_STEM_EXACT = ("eyJ", "sk_", "sk-", "rk_", "gho_", "ghp_", "ghu_", "ghs_", "ghr_", "github_pat_",
               "glpat-", "xox", "AKIA", "ASIA", "AIza", "npm_", "SG.", "shp")


def _stem_pattern(extra: Iterable[str] = ()) -> str:
    words = sorted(set(_STEM_WORDS) | set(extra))
    return ("(?i:" + "|".join(re.escape(w) for w in words) + ")|"
            + "|".join(re.escape(e) for e in _STEM_EXACT))


def credentials(text: str, keys: frozenset[str] = TEXT_KEYS) -> list[Secret]:
    """The credential-shaped spans of ``text``, in order (see the module). Time linear in
    the text: RE2 finds where one may start (a stem), and the shapes are tried there only --
    at the stem, and at the start of the key holding it (``client_secret=``)."""
    if len(text) < 8:
        return []
    out: list[Secret] = []
    done = 0  # no credential starts before this
    for stem in _stems_for(keys).starts(text):
        if stem < done:
            continue
        key_start = stem
        while key_start > 0 and key_start > stem - 32 and text[key_start - 1] in _KEY_CHARS:
            key_start -= 1
        for at in dict.fromkeys((key_start, stem)):
            hit = _SHAPES.match(text, at)
            if hit is None:
                continue
            kind = hit.lastgroup
            if kind == "VALUE":
                if field_key(hit.group("k")) not in keys:
                    continue
                found = Secret(hit.start("VALUE"), hit.end("VALUE"), hit.group("k"))
            else:
                found = Secret(hit.start(kind), hit.end(kind), kind)
            out.append(found)
            done = found.end
            break
    return out


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@lru_cache(maxsize=64)
def _stems_for(keys: frozenset[str]):
    return compiled(_stem_pattern(_extra_words(keys)))


def _extra_words(keys: frozenset[str]) -> tuple[str, ...]:
    """Keys no stem word covers (a field named with ``--redact-field pin``)."""
    return tuple(sorted(k for k in keys if not any(w in k for w in _STEM_WORDS)))


def looks_secret(value: str) -> bool:
    """Whether the whole of ``value`` is credential-shaped (a JWT, a known key...)."""
    return any(s.start == 0 and s.end == len(value) and s.base in ("JWT", "KEY")
               for s in credentials(value))


def template(text: str, name_for: Callable[[str, str], str], escape: Callable[[str], str],
             keys: frozenset[str] = TEXT_KEYS) -> str:
    """``text`` as a template: each credential in it a placeholder ``{{name_for(base,
    value)}}``, the rest passed through ``escape``."""
    found = credentials(text, keys)
    if not found:
        return escape(text)
    out, at = [], 0
    for s in found:
        out += (escape(text[at:s.start]), "{{" + name_for(s.base, text[s.start:s.end]) + "}}")
        at = s.end
    out.append(escape(text[at:]))
    return "".join(out)


@dataclass(frozen=True)
class Redaction:
    """What is redacted (see the module). Header names and query keys compare without case,
    JSON keys as :func:`field_key` spells them; ``keep`` takes field names out;
    ``shapes=False`` redacts by name only; ``enabled=False`` writes everything as seen."""

    headers: frozenset[str] = HEADERS
    query: frozenset[str] = QUERY
    fields: frozenset[str] = FIELDS
    enabled: bool = True
    protocols: frozenset[str] = frozenset(PROTOCOL_PREFIXES)
    shapes: bool = True

    @classmethod
    def build(cls, headers: Iterable[str] = (), query: Iterable[str] = (),
              fields: Iterable[str] = (), enabled: bool = True,
              protocols: Iterable[str] = (), keep: Iterable[str] = ()) -> "Redaction":
        """The defaults plus the extra names given (as ``--redact-*`` options do), less the
        fields ``keep`` names (``--keep-field``); ``protocols`` are subprotocol prefixes."""
        kept = {field_key(k) for k in keep}
        return cls(HEADERS | {h.lower() for h in headers},
                   QUERY | {q.lower() for q in query},
                   (FIELDS | {field_key(f) for f in fields}) - kept, enabled,
                   frozenset(PROTOCOL_PREFIXES) | {p.lower() for p in protocols if p})

    @cached_property
    def _stems(self):
        return _stems_for(self.text_keys)

    def might_hold(self, text: str) -> bool:
        """A fast first look (RE2, linear): False when nothing in ``text`` can be a secret:
        every field and text key holds a stem word, every shape starts with a stem."""
        return bool(self._stems.starts(text[:1 << 30])) if text else False

    def header(self, name: str) -> bool:
        return self.enabled and name.lower() in self.headers

    def query_key(self, key: str) -> bool:
        return self.enabled and key.lower() in self.query

    def field(self, key: str) -> bool:
        return self.enabled and field_key(key) in self.fields

    @cached_property
    def text_keys(self) -> frozenset[str]:
        return self.fields | TEXT_ONLY_KEYS

    def text(self, text: str, name_for: Callable[[str, str], str],
             escape: Callable[[str], str]) -> str:
        """A text value (a message, a header value, a query value, a path) as a template:
        the credentials in it redacted when shapes are on."""
        if not (self.enabled and self.shapes):
            return escape(text)
        return template(text, name_for, escape, self.text_keys)

    def value(self, secret: bool, key: str, value: str, name_for: Callable[[str, str], str],
              escape: Callable[[str], str]) -> str:
        """A header or query value as a template: all of it a variable when its name is a
        secret one (``secret``: :meth:`header` or :meth:`query_key` said so), else the
        credentials in it redacted where they stand."""
        if secret:
            return "{{" + name_for(key, value) + "}}"
        return self.text(value, name_for, escape)

    def chosen_protocol(self, offered: tuple[str, ...], templates: tuple[str, ...],
                        chosen: str | None, name_for: Callable[[str, str], str],
                        escape: Callable[[str], str]) -> str:
        """The subprotocol the server chose as a template: the template of the same entry
        where it was offered (so a secret one is the same variable); "" for none."""
        if not chosen:
            return ""
        same = dict(zip(offered, templates)).get(chosen)
        return same if same is not None else \
            self.protocol_templates([chosen], name_for, escape)[0]

    def protocol(self, entry: str) -> tuple[str, str] | None:
        """``(prefix kept, secret)`` when the subprotocol ``entry`` is a secret, else None."""
        if not self.enabled:
            return None
        low = entry.lower()
        for prefix in sorted(self.protocols, key=len, reverse=True):
            if low.startswith(prefix) and len(entry) > len(prefix):
                return entry[:len(prefix)], entry[len(prefix):]
        if _is_label(entry):
            return None  # a label (``access_token``), not a value: see protocol_templates
        if any(word in low for word in PROTOCOL_WORDS) or (self.shapes and looks_secret(entry)):
            return "", entry
        return None

    def protocol_templates(self, entries: Iterable[str],
                           name_for: Callable[[str, str], str],
                           escape: Callable[[str], str]) -> tuple[str, ...]:
        """The offered subprotocols as templates: a secret one as its kept prefix and a
        variable; the entry right after a label naming a secret (``access_token``,
        ``Authorization``, ``bearer``) is a secret whatever its shape."""
        out, after_label = [], False
        for entry in entries:
            secret = self.protocol(entry)
            if secret is None and after_label and self.enabled:
                secret = ("", entry)
            after_label = self.enabled and _is_label(entry)
            if secret is None:
                out.append(escape(entry))
            else:
                kept, value = secret
                out.append(escape(kept) + "{{" + name_for("protocol", value) + "}}")
        return tuple(out)


# In a report every query key that names a secret counts too (``?key=...`` in a client's URL).
_SCRUB_KEYS = TEXT_KEYS | {field_key(q) for q in QUERY}
_JSON_FIELD = re.compile(r'"(?P<k>[A-Za-z0-9_\-]{1,40})"[ \t]*:[ \t]*"(?P<v>(?:[^"\\\n]|\\.)+)"')


def scrub(text: str, secrets: Iterable[str] = (), mask: str = "<redacted>") -> str:
    """``text`` with every value in ``secrets`` (values of secret variables), every string
    value of a secret JSON field (``"token":"..."``) and every credential-shaped span
    replaced by ``mask``: for reports, which never print a secret."""
    for value in sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4},
                        key=len, reverse=True):
        if value in text:
            text = text.replace(value, mask)
    if '"' in text:
        text = _JSON_FIELD.sub(lambda hit: hit.group() if field_key(hit["k"]) not in FIELDS
                               else hit.group()[:hit.start("v") - hit.start()] + mask + '"',
                               text)
    found = credentials(text, _SCRUB_KEYS)
    if not found:
        return text
    out, at = [], 0
    for s in found:
        out += (text[at:s.start], mask)
        at = s.end
    out.append(text[at:])
    return "".join(out)


def env_name(conn: str, base: str) -> str:
    """``C1_AUTHORIZATION``: a variable name from a connection name and a configured name."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_").upper() or "SECRET"
    return f"{conn.upper()}_{cleaned}"


class Namer:
    """The variables of one scenario file's redacted values. The same value keeps the same
    variable wherever it travels (a token the server issued and the client sends back is one
    variable); a name comes from the connection and the key (``C1_TOKEN``, ``C1_TOKEN_2``).

    A value the client sends first is an ``env`` variable: :meth:`take_env` hands out the
    names whose ``env`` lines are still to be written. A value the server sends first (it
    issues it: a fresh token every run) is a capture, ``NAME = MARKER``, so a replay takes the
    server's new one and a mock sends a fresh one; the recorded value is written nowhere."""

    def __init__(self):
        self.names: dict[str, str] = {}  # value → variable
        self._taken: dict[str, int] = {}  # stem → last number used
        self._env: list[str] = []

    def placeholder(self, conn: str, base: str, value: str, marker: str | None = None) -> str:
        """What goes between ``{{`` and ``}}`` for ``value``: the variable, or at its first
        appearance from the server (``marker`` given: ``#string`` in messages, ``#any`` in
        headers) the capture ``NAME = MARKER``."""
        name = self.names.get(value)
        if name is not None:
            return name
        stem = env_name(conn, base)
        n = self._taken.get(stem, 0) + 1
        self._taken[stem] = n
        name = stem if n == 1 else f"{stem}_{n}"
        self.names[value] = name
        if marker is None:
            self._env.append(name)
            return name
        return f"{name} = {marker}"

    def take_env(self) -> list[str]:
        """The ``env`` variables named since the last call, in order."""
        out, self._env = self._env, []
        return out


def redact_url(url: str, redaction: Redaction, name_for: Callable[[str, str], str],
               escape: Callable[[str], str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A URL as a ``conn`` template and the ``query`` lines taken out of it: a query
    parameter whose key is a secret moves to a ``query`` line holding a variable; path
    segments and other query values keep their place, their credentials redacted."""
    base, sep, query = url.partition("?")
    if not redaction.enabled:
        return escape(url), ()
    head, slashes, rest = base.partition("//")
    authority, slash, path = rest.partition("/") if slashes else ("", "", base)
    path_t = "/".join(redaction.text(seg, lambda b, v: name_for("path", v), escape)
                      for seg in path.split("/"))
    out = escape(head + slashes + authority + slash) + path_t if slashes else path_t
    if not sep:
        return out, ()
    kept, moved = [], []
    for part in query.split("&"):
        raw_key, eq, raw_value = part.partition("=")
        key = unquote_plus(raw_key)
        value = unquote_plus(raw_value)
        movable = eq and re.fullmatch(r"[^ \t=\r\n]+", key)
        if movable and redaction.query_key(key):
            moved.append((key, "{{" + name_for(key, value) + "}}"))
        elif movable and redaction.shapes and credentials(value, redaction.text_keys):
            # a credential inside a value (``?x=Bearer%20...``): on a query line, which
            # holds the value decoded (and is encoded for sending), redacted where it is
            moved.append((key, redaction.text(value, lambda b, v, k=key: name_for(k, v),
                                              escape)))
        else:
            kept.append(escape(part))
    return out + ("?" + "&".join(kept) if kept else ""), tuple(moved)
