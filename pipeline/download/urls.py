"""Turn a manifest row into the URL to fetch, treating ids and URLs as untrusted input.

Ids and URLs come from CSVs that anyone can write. An id that is not a YouTube id, a path that
climbs out of its folder (``../``), a shell metacharacter, or a scheme other than http, https and
file is rejected with a reason and recorded; nothing here is ever passed to a shell (every
subprocess gets an argument list).

Local files (``file://`` URLs and paths) are refused unless ``download.allow_local_files`` is
true; the one exception is a relative path inside the source folder, which is the source stage's
own output (the synthetic world's ``media/<clip>.mp4``).
"""

from __future__ import annotations

import re
import string
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


TEMPLATE_FIELDS = ("youtube_id", "start", "end")


def check_template(template: str) -> str:
    """Return ``template`` if it is a URL pattern with ``{youtube_id}`` and no other field than
    ``{start}`` and ``{end}`` (seconds); else raise ValueError saying what is wrong, in one line."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:  # an unbalanced brace
        raise ValueError(f"url_template {template!r}: {err}") from None
    unknown = sorted({f.split(".")[0].split("[")[0] for f in fields} - set(TEMPLATE_FIELDS))
    if unknown or "youtube_id" not in fields:
        raise ValueError(
            f"url_template {template!r} must hold {{youtube_id}} and may hold {{start}} and "
            f"{{end}}; {'unknown field(s) ' + ', '.join(unknown) if unknown else 'no {youtube_id}'}"
        )
    sample = template.format(youtube_id="x" * 11, start=0.0, end=10.0)
    if urllib.parse.urlsplit(sample).scheme not in SCHEMES:
        raise ValueError(f"url_template {template!r} is not an http(s) or file URL")
    return template


def clip_url(
    record: dict, url_template: str, source_dir: str | Path, allow_local: bool = False
) -> tuple[str, str]:
    """The URL to fetch a manifest row from, and the URL to record (relative where the row's own
    is, so no stored manifest holds the checkout's path).

    A row's own ``url`` wins: absolute URLs are checked as they are, relative ones (the synthetic
    world's ``media/<clip>.mp4``) are resolved inside ``source_dir`` as ``file://`` URLs. Otherwise
    the ``youtube_id`` is checked and put into ``url_template`` (``{youtube_id}``, and
    ``{start}``, ``{end}`` in seconds).

    Raises:
        RejectedInput: a hostile or malformed id or URL, or a local file without
            ``allow_local``.
    """
    url = record.get("url")
    if url:
        if urllib.parse.urlsplit(url).scheme:
            return _no_local(check_url(url), allow_local), url
        root = Path(source_dir).resolve()
        if _SHELL_META.search(url) or ".." in Path(url).parts or Path(url).is_absolute():
            raise RejectedInput(f"relative media path {url!r} is not a plain path inside {root}")
        return check_url((root / url).as_uri()), url
    yid = record.get("youtube_id")
    if not isinstance(yid, str) or not YOUTUBE_ID.match(yid):
        raise RejectedInput(f"youtube_id {yid!r} is not an 11-character YouTube id")
    made = url_template.format(youtube_id=yid, start=record.get("start"), end=record.get("end"))
    return _no_local(check_url(made), allow_local), made


def _no_local(url: str, allow_local: bool) -> str:
    if urllib.parse.urlsplit(url).scheme == "file" and not allow_local:
        raise RejectedInput(
            f"{url} is a local file; set download.allow_local_files: true to fetch local files"
        )
    return url
