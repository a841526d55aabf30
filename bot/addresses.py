"""The one email address check: subscription files, the web form and the email channel use it."""

from __future__ import annotations

import re

MAX_LENGTH = 254  # RFC 5321's limit on a forward path
# One '@'; no space, quote, comment, group or list syntax on either side: a display name, a
# comment or a group would make the email library deliver somewhere the raw string does not say.
_PLAIN = r"[^@\s<>()\[\],;:\"\\]+"
_ADDRESS = re.compile(rf"^{_PLAIN}@{_PLAIN}$")


def is_address(text: str, *, dotted: bool = True) -> bool:
    """Whether `text` is a plain ASCII `local@domain` address of at most 254 characters.

    `dotted` (the default) also asks for a dot in the domain, as every recipient's has; a sender
    on this machine (`digestbot@localhost`, the default From) passes with `dotted=False`.
    """
    if len(text) > MAX_LENGTH or not text.isascii() or not _ADDRESS.match(text):
        return False
    return not dotted or "." in text.rpartition("@")[2].strip(".")
