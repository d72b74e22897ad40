"""One redaction function for everything that leaves the process or is stored.

Audit rows, error messages, checkpoints, reports, terminal output and cassettes all pass through
:func:`redact` (structures) or :func:`redact_text` (strings). Two things are masked:

- anything shaped like a secret: values of keys named like secrets (``api_key``, ``authorization``,
  ``token``, ``client_secret``, ...), and in any text Klaviyo private keys (``pk_`` + 20 or more),
  ``Bearer``/``Basic`` credentials, OpenAI keys (``sk-...``), other services' keys by their
  prefixes, ``token=...``-style pairs (``API key: ...`` too), passwords and keys said in a sentence
  (``my password is ...``, ``the api key is ...``) and passwords written into URLs
  (``postgresql://app:...@db``);
- every secret the process was given (:func:`register_secret`: the API keys, client secrets and
  vault keys the configuration holds), whatever its shape, so a key like ``hello-there`` that an
  endpoint echoes back is caught too.

:func:`redact_bytes` masks registered secrets in bytes without changing their length, so it can
clean a serialized checkpoint (msgpack keeps string lengths) without breaking it.

A secret is found only whole: cut in two, neither part looks like a key nor is a registered secret.
So text is redacted *before* it is cut (:func:`clip`), and text that arrives in pieces (a model's
streamed answer) is redacted as a whole as it grows (:class:`StreamRedactor`), never piece by piece.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any

from .auth import mask

__all__ = [
    "SAID_PASSWORD",
    "SECRET_PAIR",
    "URL_PASSWORD",
    "StreamRedactor",
    "clip",
    "has_key_shape",
    "is_secret_key",
    "mask_registered",
    "redact",
    "redact_bytes",
    "redact_text",
    "register_secret",
    "registered_secrets",
]

_known: set[str] = set()
#: Short-lived secrets (OAuth tokens), newest last: only the newest :data:`MAX_TOKENS` are kept, so a
#: process refreshing tokens for weeks does not grow its pattern (and the time of every redaction)
#: without end; a token that many rotations old is long dead.
_tokens: dict[str, None] = {}
MAX_TOKENS = 1_000
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None
#: A registered secret shorter than this is not masked in free text (it would mask ordinary words).
MIN_SECRET_CHARS = 8


def register_secret(value: str | None, *, short_lived: bool = False) -> None:
    """Mask ``value`` wherever it appears from now on (this process). Empty and short values are ignored.

    ``short_lived``: a secret that is replaced as it expires (an OAuth access or refresh token), kept
    among the newest :data:`MAX_TOKENS` such ones rather than for the life of the process."""
    if not value or len(value) < MIN_SECRET_CHARS or value in PUBLIC_VALUES:
        return  # the sandbox's documented demo key is printed on purpose (how to connect to it)
    with _known_lock:
        if value in _known or (short_lived and value in _tokens):
            return
        if short_lived:
            _tokens[value] = None
            while len(_tokens) > MAX_TOKENS:
                del _tokens[next(iter(_tokens))]
        else:
            _tokens.pop(value, None)
            _known.add(value)
        _compile()


def _compile() -> None:
    """The pattern of every registered secret, longest first (the caller holds ``_known_lock``)."""
    global _known_pattern
    ordered = sorted(_known.union(_tokens), key=len, reverse=True)
    _known_pattern = re.compile("|".join(re.escape(v) for v in ordered))
    _forget_clean()


def registered_secrets() -> frozenset[str]:
    with _known_lock:
        return frozenset(_known.union(_tokens))


_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "access_token",
    "refresh_token",
    "id_token",
    "code_verifier",
    "private_key",
    "cookie",
)
#: Words that, after "password is", say something about a password rather than give it.
_SAID_NOT_SECRET = """required incorrect invalid wrong missing not too the a an empty expired set needed correct changed
    reset weak strong long short case different same stored saved never now still being also only optional
    mandatory valid hidden masked encrypted hashed blank null none unknown sent shown ok okay fine good bad
    old new secure protected disabled enabled locked your my their his her its our used given kept in on at
    for from with this that here there it about due generated updated accepted rejected case-sensitive
    sensitive known forgotten lost stolen"""
#: How a sentence gives a password ("my password is ", "the passcode was: "), up to the value; also
#: what ``personas.kernel.privacy`` looks for in checkpoint bytes.
SAID_PASSWORD = (
    r"(?:passw(?:or)?d|pass(?:code|phrase)|pwd|api[\s_\-]?key|secret[\s_\-]key|client[\s_\-]secret"
    r"|(?:access|refresh|auth|api|bearer)[\s_\-]token)s?\s+(?:is|was|will\s+be|would\s+be):?\s+"
)
#: A name that says the value after it (``=`` or ``:``) is a secret: ``api_key=``, ``"password": "``,
#: ``API key: ``, ``client secret = ``; also what ``personas.kernel.privacy`` looks for in checkpoints.
_PAIR_NAME = (
    r"(?:[a-z_\-]*(?:passw(?:or)?d|secret(?:[\s_\-]?key)?|api[\s_\-]?key|access[\s_\-]token|refresh[\s_\-]token"
    r"|code[\s_\-]verifier|private[\s_\-]key)|token|pwd?|pass(?:code|phrase)?|credentials?)\\?[\"']?\s*[=:]\s*"
)
SECRET_PAIR = _PAIR_NAME + r"\\?[\"']?"
#: A password written into a URL (``postgresql://app:s3cret@db:5432/x``): the part between ``:`` and ``@``.
#: It starts at the literal ``://`` (not at the scheme), so a search skips to it instead of trying
#: every position: 2 us on a 7 kB checkpoint against 120 us.
URL_PASSWORD = r"(://[^\s:/?#@\"'<>]*:)([^\s/?#@\"'<>]+)(@)"
#: Where a secret may start and end: not inside a run of ASCII letters and digits. ``\b`` is not
#: that: on text it is Unicode-aware, so a key written against CJK, accented letters or ``_``
#: (``私钥是pk_...``, ``Schlüssel:pk_...ä``, ``old_pk_...``) has no boundary and went unmasked.
_A = r"(?<![A-Za-z0-9])"
_Z = r"(?![A-Za-z0-9])"
#: Where a secret's *name* may start (``Bearer``, ``api_key=``, ``my password is``): not inside an
#: ASCII word, ``_`` included, so ``fields_push_token: null`` (a tool's argument) is not a pair.
_W = r"(?<![A-Za-z0-9_])"
#: A backslash inside a value that does not escape a quote: in JSON text (a tool's arguments, a
#: response dumped into an error) a quoted secret reads ``\"hunter2\"``, and the value ends before
#: the backslash that escapes its closing quote, so that masking it leaves the JSON as valid as it was.
_LONE_BACKSLASH = r"\\(?![\"'\\]|u201[89cd])"
_SECRET_VALUE_PATTERNS = (
    # "Bearer <token>" and "Basic <base64 id:secret>" (headers copied into messages)
    re.compile(rf"(?i){_W}(bearer\s+)([A-Za-z0-9\-._~+/]{{8,}}=*)"),
    re.compile(rf"(?i){_W}(basic\s+)([A-Za-z0-9+/]{{16,}}=*)"),
    # key=value / "key": "value" pairs inside free text (form bodies, URLs, JSON dumped into errors)
    re.compile(rf"""(?i){_W}({SECRET_PAIR})((?:[^\s"'&,;}}\\]|{_LONE_BACKSLASH}){{4,}})"""),
    # a quoted value of such a pair, whole up to its closing quote (JSON text, a repr): spaces, commas and
    # short values too, which the unquoted rule stops at ('"password": "correct horse battery"')
    re.compile(rf"""(?i){_W}({_PAIR_NAME}(\\?)(["']))((?:(?!\3)[^\\\n]|{_LONE_BACKSLASH}){{1,500}})(?=\2\3)"""),
    # a password said in a sentence ("my password is hunter2!", "the passcode was 8842"): a quoted
    # value whole, spaces and all; an unquoted word unless it says something about the password
    # ("the password is incorrect")
    re.compile(
        rf"(?i){_W}({SAID_PASSWORD})"
        r"(?:(\\?[\"'\u201c\u2018]|\\u201[8c])((?:[^\"'\u201c\u201d\u2018\u2019\n\\]|" + _LONE_BACKSLASH + r"){4,200})"
        r"(\\?[\"'\u201d\u2019]|\\u201[9d])"
        r"|(?!(?:"
        + "|".join(map(re.escape, _SAID_NOT_SECRET.split()))
        + r")(?:[\s.,;:!?)\"'\\]|$))((?:[^\s\"'\u201c\u201d\u2018\u2019,;\\]|"
        + _LONE_BACKSLASH
        + r"){4,}))"
    ),
    # Klaviyo private keys, OpenAI keys
    re.compile(rf"{_A}(pk_[A-Za-z0-9]{{20,}}){_Z}"),
    re.compile(rf"{_A}(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{{20,}})"),
)
#: Other services' credentials, by their documented prefixes (a profile property or a form answer
#: may hold one): (literal prefix, shape). Masked in text and, byte for byte, in checkpoints.
_KEY_SHAPES: tuple[tuple[str, str], ...] = (
    ("sk_live_", r"sk_live_[A-Za-z0-9]{16,}"),  # Stripe secret and restricted keys
    ("sk_test_", r"sk_test_[A-Za-z0-9]{16,}"),
    ("rk_live_", r"rk_live_[A-Za-z0-9]{16,}"),
    ("AKIA", r"AKIA[0-9A-Z]{16}"),  # AWS access key ids
    ("ASIA", r"ASIA[0-9A-Z]{16}"),
    ("ghp_", r"gh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    ("gho_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
    ("ghs_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
    ("ghu_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
    ("ghr_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
    ("github_pat_", r"github_pat_[A-Za-z0-9_]{40,}"),
    ("xox", r"xox[abprs]-[A-Za-z0-9\-]{20,}"),  # Slack tokens
    ("AIza", r"AIza[0-9A-Za-z_\-]{35}"),  # Google API keys
    ("whsec_", r"whsec_[A-Za-z0-9+/]{20,}"),  # webhook signing secrets (Svix, Stripe)
    # what a Klaviyo account is wired to: Shopify admin and app tokens, SendGrid and Mailchimp keys
    ("shpat_", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("shpss_", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("shpca_", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("shppa_", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("SG.", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    ("-us", r"[0-9a-f]{32}-us[0-9]{1,2}"),
    # a signed JSON Web Token (an id token, a session): base64url JSON header and claims, signature
    ("eyJ", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}"),
)
#: Shapes that start and end with punctuation, so ``\b`` cannot bound them: a PEM private key
#: (RSA, EC, OpenSSH, PKCS#8, encrypted or not) or an armored PGP one, its body (base64 and any
#: header lines: printable ASCII) masked even when the text was cut before its END line.
_BLOCK_SHAPES: tuple[tuple[str, str], ...] = (
    (
        "-----BEGIN ",
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\x20-\x2c\x2e-\x7e\t\r\n]|-(?!----END))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
    ),
)
_TEXT_SHAPES = (
    *((prefix, re.compile(rf"{_A}({shape}){_Z}")) for prefix, shape in _KEY_SHAPES),
    *((prefix, re.compile(f"({shape})")) for prefix, shape in _BLOCK_SHAPES),
)
_BYTE_SHAPES = (
    *((prefix.encode(), re.compile((_A + shape + _Z).encode())) for prefix, shape in _KEY_SHAPES),
    *((prefix.encode(), re.compile(shape.encode())) for prefix, shape in _BLOCK_SHAPES),
)


def _mask(secret: str) -> str:
    """auth.mask, but nothing of a short secret: 10 visible characters must be a small part of it.

    A value that is already masked stays as it is, so redacting twice changes nothing.
    """
    if secret == "***" or (len(secret) == 11 and secret[6] == "…"):
        return secret
    return mask(secret) if len(secret) >= 24 else "***"


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    """Whether a key names a secret (cached: the same few hundred keys come back on every row)."""
    k = key.lower().replace("-", "_").strip("[]")
    return (
        k in _SECRET_KEY_NAMES
        or k.endswith("_token")
        or k.endswith(("_pw", "_pwd"))
        or any(part in k for part in _SECRET_KEY_PARTS)
    )


#: Whole key names that name a secret, too short or too common to look for inside other names.
_SECRET_KEY_NAMES = frozenset(
    {"token", "pw", "pwd", "pass", "passphrase", "passcode", "pin_code", "credentials", "credential"}
)


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``password``, ``refresh_token`` ...): its
    value is masked whatever it looks like."""
    return _is_secret_key(key)


#: Values shaped like secrets that are public on purpose: the sandbox's documented demo key.
PUBLIC_VALUES = frozenset({"pk_sandbox_demo"})
#: An unquoted value of a secret's pair kept as it is: a public value, or a JSON or Python literal
#: (``"token": null`` in a dumped response says there is no token; masking it hid that).
_NOT_A_VALUE = PUBLIC_VALUES | {"null", "true", "false", "None", "True", "False"}


#: Every match of ``_SECRET_VALUE_PATTERNS`` contains one of these once folded by :func:`_fold`: text
#: without any of them is returned as it is, without running the five expressions (most strings in a
#: row are plain).
_PATTERN_HINTS = (
    "bearer",
    "basic",
    "passw",
    "secret",
    "api_key",
    "api-key",
    "apikey",
    "api key",
    "token",
    "code_verifier",
    "code-verifier",
    "private_key",
    "private-key",
    "private key",
    "pk_",
    "sk-",
    "pw",
    "pass",
    "credential",
)


_HINTS = re.compile("|".join(map(re.escape, _PATTERN_HINTS)))


def _fold(text: str) -> str:
    """``text`` with every letter ``(?i)`` matches to a hint's letter made that letter: ``casefold``
    does it for the long s and the Kelvin sign; ``(?i)i`` also matches the dotless i, which it keeps,
    and the dotted capital I, which it makes an i and a combining dot."""
    return text.casefold().replace("\u0131", "i").replace("\u0307", "")


_URL_PASSWORD = re.compile(URL_PASSWORD)


def _patterns(text: str) -> str:
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{_mask(m.group(2))}{m.group(3)}", text)
    if _HINTS.search(_fold(text)) is None:  # one scan for all the hints, not one per hint
        return _shapes(text)
    bearer, basic, pair, quoted_pair, said, klaviyo_key, openai_key = _SECRET_VALUE_PATTERNS
    text = quoted_pair.sub(_quoted_pair, text)
    for prefixed in (bearer, basic, pair):
        text = prefixed.sub(
            lambda m: m.group(0) if m.group(2) in _NOT_A_VALUE else f"{m.group(1)}{_value_mask(m.group(2))}", text
        )
    text = said.sub(_said, text)
    for bare in (klaviyo_key, openai_key):
        text = bare.sub(lambda m: _mask(m.group(1)), text)
    return _shapes(text)


def _quoted_pair(m: re.Match[str]) -> str:
    """A quoted secret pair's value masked whole, up to its closing quote (:data:`PUBLIC_VALUES` kept)."""
    value = m.group(4)
    return m.group(0) if value in PUBLIC_VALUES else f"{m.group(1)}{_value_mask(value)}"


def _said(m: re.Match[str]) -> str:
    """A password said in a sentence, masked: inside its quotes (escaped ones too) when quoted."""
    lead, quote, quoted, close, word = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)
    if quoted is not None:
        return f"{lead}{quote}{_value_mask(quoted)}{close}"
    return f"{lead}{_value_mask(word)}"


def _value_mask(secret: str) -> str:
    """:func:`_mask`, but all of a value with a backslash in it (JSON text: the ends that
    :func:`_mask` keeps could split an escape and leave the text unparsable)."""
    return "***" if "\\" in secret else _mask(secret)


def _shapes(text: str) -> str:
    """``text`` with other services' keys (:data:`_KEY_SHAPES`) masked; a substring test first."""
    if _SHAPE_PREFIXES.search(text) is None:  # none of the prefixes: one scan instead of one per shape
        return text
    for prefix, shape in _TEXT_SHAPES:
        if prefix in text:
            text = shape.sub(lambda m: _mask(m.group(1)), text)
    return text


_SHAPE_PREFIXES = re.compile("|".join(re.escape(prefix) for prefix, _ in _TEXT_SHAPES))
#: Short texts that :func:`redact_text` returned unchanged, with the registered-secrets pattern they
#: were checked against (a new secret starts a new set): the same names and values come back in every
#: audit row. Only clean texts are kept, so no secret is held here; bounded, emptied when full.
_clean: tuple[re.Pattern[str] | None, set[str]] = (None, set())
_CLEAN_CHARS = 200
_CLEAN_COUNT = 4096


def _forget_clean() -> None:
    """Texts checked against an older set of registered secrets are checked again (the caller holds
    ``_known_lock``, after setting ``_known_pattern``)."""
    global _clean
    _clean = (_known_pattern, set())


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets masked, for anything that is logged or stored.

    Masks the values of keys named like secrets (``api_key``, ``authorization``, ``token``,
    ``client_secret``, ``password``, ``refresh_token``, ``code_verifier`` ...) and, in any string,
    Klaviyo private keys (``pk_`` + 20 or more alphanumerics), ``Bearer``/``Basic`` credentials,
    OpenAI keys (``sk-...``), ``token=...``-style pairs and passwords said in a sentence
    (``my password is ...``). Long secrets keep :func:`auth.mask`'s
    ``pk_abc…wxyz`` shape so they can be recognised; short ones become ``***``.

    Example::

        redact({"api_key": "pk_0123456789abcdef0123", "note": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"})
        # {'api_key': '***', 'note': 'Bearer eyJhbG….sig'}
    """
    kind = type(value)  # the exact common types first: isinstance(x, Mapping) is a slow ABC check
    if kind is str:
        return redact_text(value)
    if value is None or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            shown = redact_text(name)  # a key may itself be a secret (a form field named by a pasted key)
            if _is_secret_key(name) and item not in (None, "", True, False):
                out[shown] = _mask(item) if isinstance(item, str) else "***"
            else:
                out[shown] = redact(item)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    cleared = sys.modules.get("klaviyo_toolkit._clear")  # CLEAR exists only once that module is loaded
    if cleared is not None and value is cleared.CLEAR:
        return None  # what the request sends for it: an update's null
    return value


def redact_text(text: str) -> str:
    """``text`` with every registered secret and everything shaped like one masked."""
    pattern, (checked_with, clean) = _known_pattern, _clean
    short = len(text) <= _CLEAN_CHARS and checked_with is pattern  # both read before the text is checked
    if short and text in clean:
        return text
    out = text if pattern is None else pattern.sub(lambda m: _mask(m.group(0)), text)
    out = _patterns(out)
    if short and out == text:
        if len(clean) >= _CLEAN_COUNT:
            clean.clear()
        clean.add(text)
    return out


def clip(text: str, limit: int, *, more: str = "…") -> str:
    """``text`` redacted, then cut to ``limit`` characters (``more`` marks the cut): in that order,
    since a key cut first leaves a part too short to look like one (``pk_`` + 12) that is no
    registered secret either."""
    text = redact_text(text)
    return text if len(text) <= limit else text[: max(limit - len(more), 0)] + more


class StreamRedactor:
    """Text that arrives in pieces (a model's streamed answer), redacted as a whole as it grows.

    :meth:`feed` returns what may be shown now: the text redacted up to its last whitespace, the
    word still arriving held back (a key split over two pieces is caught whole), and the whole line
    held while it holds a word that names a secret (``the password is "two words"``); :meth:`end`
    returns the rest. What is returned never repeats what was shown.

    Example::

        stream = StreamRedactor()
        for piece in ("key pk_ab", "cdefghijklmnopqrstuvwxyz0 ok"):
            out.write(stream.feed(piece))
        out.write(stream.end())  # 'key pk_abc…xyz0 ok'
    """

    def __init__(self) -> None:
        self._raw = ""
        self._shown = ""
        self._released = 0  # how much of the raw text has been shown (redacted)

    def feed(self, piece: str) -> str:
        """What of the text so far (``piece`` added) may be shown now, redacted, not shown before."""
        self._raw += piece
        line = self._raw.rfind("\n") + 1
        if any(hint in _fold(self._raw[line:]) for hint in _PATTERN_HINTS):
            return self._release(self._raw[:line])
        cut = max(self._raw.rfind(c) for c in " \t\r\n") + 1
        return self._release(self._raw[:cut])

    def end(self) -> str:
        """The rest of the text, redacted as a whole."""
        return self._release(self._raw)

    def _release(self, text: str) -> str:
        # Only redacted text is ever returned. Should a longer text mask part of what was shown (a
        # pattern reaching back over whitespace), what follows is shown from the same offset. A hint
        # word that holds its line back releases less than was shown already: nothing new, and what
        # was shown stays counted as shown (else the line's start would be shown again).
        if len(text) < self._released:
            return ""
        self._released = len(text)
        redacted = redact_text(text)
        new, self._shown = redacted[len(self._shown) :], redacted
        return new


def redact_bytes(data: bytes) -> bytes:
    """``data`` with registered secrets (and Klaviyo/OpenAI key shapes) overwritten by ``*``, same length."""
    data = mask_registered(data)
    for prefix, shape in _BYTES_ALL_SHAPES:
        # A regex that starts with a lookbehind cannot skip ahead to its literal, so it tries every position
        # (~70 us for a 7 kB checkpoint, written several times per run); a substring search can.
        if prefix in data:
            data = shape.sub(lambda m: m.group(0)[:3] + b"*" * (len(m.group(0)) - 3), data)
    return data


def mask_registered(data: bytes) -> bytes:
    """``data`` with the registered secrets overwritten by ``*`` (same length); the part of
    :func:`redact_bytes` that changes as secrets are registered."""
    for secret in registered_secrets():
        raw = secret.encode()
        if raw in data:
            data = data.replace(raw, raw[:3] + b"*" * (len(raw) - 3))
    return data


def has_key_shape(data: bytes) -> bool:
    """Whether ``data`` holds the literal start of a key shape :func:`redact_bytes` masks (when it
    does not, :func:`redact_bytes` changes only registered secrets)."""
    return any(prefix in data for prefix, _ in _BYTES_ALL_SHAPES)


_BYTES_KLAVIYO = re.compile((_A + r"pk_[A-Za-z0-9]{20,}" + _Z).encode())
_BYTES_OPENAI = re.compile((_A + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}").encode())
_BYTES_ALL_SHAPES = ((b"pk_", _BYTES_KLAVIYO), (b"sk-", _BYTES_OPENAI), *_BYTE_SHAPES)
