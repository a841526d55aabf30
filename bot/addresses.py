"""The one email address check: subscription files, the web form and the email channel use it.

`is_address` says whether a string is a plain `local@domain` address; `normalize` gives the one
spelling digestbot keeps and keys on (domain case-folded, IDNA-checked, no trailing dot);
`mailbox_key` what per-address limits count (also the local part case-folded and `+tag` dropped,
since mail servers deliver those spellings to one mailbox).
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna

MAX_LENGTH = 254  # RFC 5321's limit on a forward path
# One '@'; no space, control character, quote, comment, group or list syntax on either side: a
# display name, a comment or a group would make the email library deliver somewhere the raw
# string does not say.
_PLAIN = r"[^@\s\x00-\x1f\x7f<>()\[\],;:\"\\]+"
_ADDRESS = re.compile(rf"{_PLAIN}@{_PLAIN}")


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The domain in its one ASCII spelling (lower case, IDNA-valid labels), or None.

    Cached: 10,000 subscriber files name a handful of domains, and IDNA checks are slow."""
    domain = domain.removesuffix(".").lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def normalize(text: str, *, dotted: bool = True) -> str | None:
    """`text` as digestbot keeps it (`local@domain`, domain in lower case), or None if no address.

    Only a plain ASCII `local@domain` of at most 254 characters passes; a domain with a trailing
    dot is the same domain without it. `dotted` (the default) also asks for a dot in the domain,
    as every recipient's has; a sender on this machine (`digestbot@localhost`) passes with
    `dotted=False`.
    """
    if len(text) > MAX_LENGTH or not text.isascii() or not _ADDRESS.fullmatch(text):
        return None
    local, _, domain = text.rpartition("@")
    canonical = _domain(domain)
    if canonical is None or (dotted and "." not in canonical):
        return None
    return f"{local}@{canonical}"


def is_address(text: str, *, dotted: bool = True) -> bool:
    """Whether `text` is a plain ASCII `local@domain` address of at most 254 characters."""
    return normalize(text, dotted=dotted) is not None


def mailbox_key(address: str) -> str:
    """What per-address limits count: the normalized address, case-folded, without a `+tag`.

    `Victim@Example.org`, `victim+1@example.org` and `victim@example.org.` reach one mailbox at
    most providers, so they share one limit. (Call it with an address that passed `is_address`;
    anything else is keyed as given, folded.)
    """
    canonical = normalize(address.strip(), dotted=False) or address.strip()
    local, _, domain = canonical.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".casefold()
