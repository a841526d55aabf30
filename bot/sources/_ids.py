"""Canonical entry ids (DESIGN.md): arXiv papers are `arxiv:<id>`; other entries a normalized guid or link."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

# New-style (0704.0001 .. 2401.12345) and old-style (astro-ph/0601001, math.GT/0309136) ids.
_NEW = r"\d{4}\.\d{4,5}"
_OLD = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ARXIV = re.compile(
    rf"^(?:arxiv:|oai:arxiv\.org:|(?P<url>https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/))?"
    rf"(?P<id>{_NEW}|{_OLD})(?:v(?P<version>\d+))?(?:\.pdf)?/?"
    # A link may carry a query or a fragment (`?context=cs.LG`, `#abstract`, `#S2`): same paper.
    r"(?(url)(?:[?#].*)?)$",
    re.IGNORECASE | re.DOTALL,
)


def arxiv_id(text: str) -> tuple[str, int | None] | None:
    """Return (bare arXiv id, version) when `text` names an arXiv paper, else None.

    An old-style id is spelled as arXiv does, `hep-th/9901001` and `math.GT/0309136`, whatever
    the case it came in.
    """
    m = _ARXIV.match(text.strip())
    if not m:
        return None
    version = m.group("version")
    return _spelled(m.group("id")), int(version) if version else None


def _spelled(pid: str) -> str:
    if "/" not in pid:
        return pid
    name, number = pid.split("/", 1)
    archive, dot, subject = name.partition(".")
    return f"{archive.lower()}{dot}{subject.upper()}/{number}"


def canonical_id(guid: str = "", link: str = "") -> str:
    """The id DESIGN.md prescribes: `arxiv:<id>` for arXiv papers, else the guid, else the link."""
    for text in (guid, link):
        if text:
            found = arxiv_id(text)
            if found:
                return f"arxiv:{found[0]}"
    if guid.strip():
        return normalize_url(guid.strip()) if "://" in guid else guid.strip()
    return normalize_url(link.strip())


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, drop the fragment and default ports, so one link is one id."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.lower()
    if parts.scheme.lower() == "http" and host.endswith(":80"):
        host = host[:-3]
    if parts.scheme.lower() == "https" and host.endswith(":443"):
        host = host[:-4]
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))


MAX_ID = 300  # the store's entries.id column


def bounded_id(eid: str) -> str:
    """An id that fits the store: a longer one keeps its start plus a digest of the whole id.

    The digest is of the id (a guid or link), never of the content, so it is as stable as the id.
    """
    if len(eid) <= MAX_ID:
        return eid
    return f"{eid[: MAX_ID - 18]}#~{hashlib.sha256(eid.encode()).hexdigest()[:16]}"
