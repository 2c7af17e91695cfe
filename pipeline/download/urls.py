"""Turn a manifest row into the URL to fetch, treating ids and URLs as untrusted input.

Ids and URLs come from CSVs that anyone can write. An id that is not a YouTube id, a path that
climbs out of its folder (``../``), a shell metacharacter, or a scheme other than http, https and
file is rejected with a reason and recorded; nothing here is ever passed to a shell (every
subprocess gets an argument list).
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
SCHEMES = ("http", "https", "file")
# Query strings keep ? & = %; anything a shell would act on is refused outright.
_SHELL_META = re.compile(r"[\s;|`$<>\\\"'(){}*!\x00-\x1f]")


class RejectedInput(ValueError):
    """An id or URL that is not safe to fetch; the message says why."""


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) or file URL with no shell metacharacters."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise RejectedInput(f"unsupported URL scheme {parts.scheme or 'none'!r} in {url!r}")
    if _SHELL_META.search(url):
        raise RejectedInput(f"URL {url!r} holds a shell metacharacter or whitespace")
    if ".." in Path(urllib.parse.unquote(parts.path)).parts:
        raise RejectedInput(f"URL {url!r} climbs out of its folder ('..')")
    if parts.scheme != "file" and not parts.netloc:
        raise RejectedInput(f"URL {url!r} has no host")
    return url


def clip_url(record: dict, url_template: str, source_dir: str | Path) -> str:
    """The URL of a manifest row.

    A row's own ``url`` wins: absolute URLs are checked as they are, relative ones (the synthetic
    world's ``media/<clip>.mp4``) are resolved inside ``source_dir`` as ``file://`` URLs. Otherwise
    the ``youtube_id`` is checked and put into ``url_template`` (``{youtube_id}``).

    Raises:
        RejectedInput: a hostile or malformed id or URL.
    """
    url = record.get("url")
    if url:
        if urllib.parse.urlsplit(url).scheme:
            return check_url(url)
        root = Path(source_dir).resolve()
        if _SHELL_META.search(url) or ".." in Path(url).parts or Path(url).is_absolute():
            raise RejectedInput(f"relative media path {url!r} is not a plain path inside {root}")
        return check_url((root / url).as_uri())
    yid = record.get("youtube_id")
    if not isinstance(yid, str) or not YOUTUBE_ID.match(yid):
        raise RejectedInput(f"youtube_id {yid!r} is not an 11-character YouTube id")
    return check_url(url_template.format(youtube_id=yid))
