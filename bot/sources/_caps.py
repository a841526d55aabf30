"""What one feed may cost: a streaming pass over its bytes that trims what feedparser chokes on.

feedparser's time is linear in a feed's size except in a few places an attacker can reach:
the e-mail pattern it runs over every author field backtracks over a run of letters, digits
and `._+-` (a 100 KB `dc:creator` of one word takes over a minute, holding the GIL), and the
patterns it runs over everything before the first element are quadratic in a run of blank
lines. `cap_feed` bounds those before feedparser sees the document:

- the prolog (everything before the first element) is at most `PROLOG_CHARS`; a longer one
  keeps only its XML declaration; an `<!ENTITY>` may stand for one character at most
  (a character reference, or up to four bytes);
- an element's own text (CDATA included) is at most `FIELD_CHARS` characters;
- in an author field, a run of `[A-Za-z0-9._+-]` is at most `AUTHOR_RUN` characters.

A feed within those bounds comes back as the very same bytes, so every ordinary feed parses
exactly as before. The pass is one scan with `str.find`, linear in the size of the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

PROLOG_CHARS = 2_048
FIELD_CHARS = 100_000
AUTHOR_RUN = 64
MAX_DEPTH = 256  # deeper elements share their parent's budget

# Elements whose text feedparser runs its e-mail pattern over (by local name, any namespace).
AUTHOR_FIELDS = frozenset(
    {
        "author",
        "creator",
        "managingeditor",
        "webmaster",
        "publisher",
        "owner",
        "contributor",
        "name",
        "email",
    }
)
_FIRST_ELEMENT = re.compile(r"<\w")  # as feedparser's replace_doctype finds the end of the prolog
_XML_DECL = re.compile(r"(?:\xef\xbb\xbf|\ufeff)?\s*<\?xml[^<>]{0,300}\?>")
_ONE_CHARACTER = re.compile(r"[^&]{0,4}|&#\d{1,7};|&#x[0-9a-fA-F]{1,6};")  # 4: one UTF-8 character
_ENTITY = re.compile(r"""(<!ENTITY\s+[^\s"'>]+\s+)("[^"]*"|'[^']*')""")
_TAG_NAME = re.compile(r"<(/?)([^\s/>]+)")
# A run the e-mail pattern backtracks over; an entity reference may stand for such characters.
_RUN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-"
_RUN_CLASS = r"[A-Za-z0-9._+\-]"
# A run longer than AUTHOR_RUN, found from its first character only (so the search is linear).
_LONG_RUN = re.compile(rf"(?<!{_RUN_CLASS}){_RUN_CLASS}{{{AUTHOR_RUN + 1},}}")
_SPECIAL = (
    ("<![CDATA[", "]]>"),
    ("<!--", "-->"),
    ("<?", "?>"),
    ("<!", ">"),
)  # markup that is no tag
_PREDEFINED = ("&amp;", "&lt;", "&gt;", "&quot;", "&apos;")
_REF_AS_RUN = str.maketrans({"&": "a", "#": "a", ";": "a"})


@dataclass(slots=True)
class _Frame:
    """One open element: whether it is an author field, the text it used, the run it ends with."""

    author: bool
    used: int = 0
    run: int = 0


def cap_feed(content: bytes) -> tuple[bytes, list[str]]:
    """`content` with the bounds above applied, and what was over them (one line per kind)."""
    decoded = _as_text(content)
    if decoded is None:
        return content, []
    text, encode = decoded
    capper = _Capper(text)
    out = capper.run()
    if not capper.trimmed:
        return content, []
    return encode(out), capper.trimmed


_ENCODINGS = (  # (first bytes, codec, length of the byte order mark to keep aside)
    (b"\x00\x00\xfe\xff", "utf-32-be", 4),
    (b"\xff\xfe\x00\x00", "utf-32-le", 4),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<\x00?", "utf-16-be", 0),
    (b"<\x00?\x00", "utf-16-le", 0),
)


def _as_text(content: bytes) -> tuple[str, Callable[[str], bytes]] | None:
    """The document as text, and how to turn it back into bytes.

    UTF-16 and UTF-32 are decoded; every other encoding feedparser reads keeps `<`, `>`, `&`
    and ASCII letters as single bytes, so Latin-1 gives a lossless view of its bytes.
    """
    for start, codec, bom in _ENCODINGS:
        if content.startswith(start):
            try:
                text = content[bom:].decode(codec)
            except UnicodeDecodeError:
                return None  # not UTF-16/32 after all: no letter runs to trim, none parsed as such
            return text, _encoder(content[:bom], codec)
    return content.decode("latin-1"), lambda s: s.encode("latin-1")


def _encoder(mark: bytes, codec: str) -> Callable[[str], bytes]:
    return lambda s: mark + s.encode(codec, "surrogatepass")


class _Capper:
    """One pass over a document, element by element (see the module's docstring)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.trimmed: list[str] = []
        self.stack: list[_Frame] = [_Frame(author=False)]
        self.depth = 0  # open elements, pushed or not
        self.absent: dict[str, int] = {}  # terminator -> a position after which it never occurs

    def note(self, what: str) -> None:
        if what not in self.trimmed:
            self.trimmed.append(what)

    def find(self, needle: str, start: int) -> int:
        """`text.find`, remembering a miss: a later search for the same needle starts no scan."""
        if self.absent.get(needle, len(self.text) + 1) <= start:
            return -1
        at = self.text.find(needle, start)
        if at == -1:
            self.absent[needle] = start
        return at

    def run(self) -> str:
        first = _FIRST_ELEMENT.search(self.text)
        if first is None:
            return self.text
        self.out.append(self.prolog(self.text[: first.start()]))
        i, n = first.start(), len(self.text)
        while i < n:
            lt = self.find("<", i)
            if lt == -1:
                self.chars(self.text[i:])
                break
            if lt > i:
                self.chars(self.text[i:lt])
            i = self.markup(lt)
        return "".join(self.out)

    def markup(self, lt: int) -> int:
        """Copy (or trim) the markup that starts at `lt`; return where the scan goes on."""
        text = self.text
        special = text[lt + 1 : lt + 2] in ("!", "?")
        for opener, closer in _SPECIAL if special else ():
            if text.startswith(opener, lt):
                end = self.find(closer, lt + len(opener))
                if end == -1:  # never closed: the rest is text, as a loose parser reads it
                    self.chars(text[lt:])
                    return len(text)
                if opener == "<![CDATA[":
                    self.out.append(opener)
                    self.chars(text[lt + len(opener) : end])
                    self.out.append(closer)
                else:
                    self.out.append(text[lt : end + len(closer)])
                return end + len(closer)
        end = self.find(">", lt + 1)
        if end == -1:
            self.chars(text[lt:])
            return len(text)
        self.out.append(text[lt : end + 1])
        self.tag(text, lt, end)
        return end + 1

    def tag(self, text: str, lt: int, end: int) -> None:
        """Open or close an element (any end tag closes the innermost one, as a loose parser would)."""
        m = _TAG_NAME.match(text, lt, end + 1)
        if m is None:
            return
        if m.group(1):
            if self.depth:
                if self.depth <= MAX_DEPTH:
                    self.stack.pop()
                self.depth -= 1
            return
        if text[end - 1] == "/":
            return  # <empty/>
        self.depth += 1
        if self.depth <= MAX_DEPTH:
            local = m.group(2).rsplit(":", 1)[-1].lower()
            # What is inside an author field counts as the author field (a parser may join it in).
            self.stack.append(_Frame(author=local in AUTHOR_FIELDS or self.stack[-1].author))

    def chars(self, chunk: str) -> None:
        """Text of the innermost element, within its budget (and its author-run bound)."""
        frame = self.stack[-1]
        room = FIELD_CHARS - frame.used
        if len(chunk) > room:
            chunk = _safe_cut(chunk, max(room, 0))
            self.note(f"an element with more than {FIELD_CHARS:,} characters of text")
        frame.used += len(chunk)
        if frame.author and chunk:
            chunk = self.author_runs(frame, chunk)
        self.out.append(chunk)

    def author_runs(self, frame: _Frame, chunk: str) -> str:
        """`chunk` with each run cut to `AUTHOR_RUN`; a run at its start goes on from the last chunk.

        Runs are found at C speed in a same-length probe of the chunk (see `_probe`), so a field
        made of a million short runs costs no more than one made of words.
        """
        probe = _probe(chunk)
        lead = len(probe) - len(probe.lstrip(_RUN_CHARS))
        cuts: list[
            tuple[int, int, int]
        ] = []  # (start, end of what is kept, end) of each run too long
        if lead and frame.run + lead > AUTHOR_RUN:
            cuts.append((0, max(0, AUTHOR_RUN - frame.run), lead))
        cuts += [
            (m.start(), m.start() + AUTHOR_RUN, m.end()) for m in _LONG_RUN.finditer(probe, lead)
        ]
        if lead == len(probe):
            frame.run = min(frame.run + lead, AUTHOR_RUN)
        else:
            frame.run = min(len(probe) - len(probe.rstrip(_RUN_CHARS)), AUTHOR_RUN)
        if not cuts:
            return chunk
        self.note(f"an author field with a word of more than {AUTHOR_RUN} letters")
        parts: list[str] = []
        last = 0
        for start, keep, end in cuts:
            kept = chunk[start:keep]
            amp = kept.rfind("&")
            if amp != -1 and ";" not in kept[amp:]:
                kept = kept[:amp]  # never half an entity reference
            parts += [chunk[last:start], kept]
            last = end
        parts.append(chunk[last:])
        return "".join(parts)

    def prolog(self, head: str) -> str:
        if len(head) > PROLOG_CHARS:
            decl = _XML_DECL.match(head)
            head = decl.group() if decl else ""
            self.note(f"more than {PROLOG_CHARS:,} characters before its first element")

        def empty(m: re.Match[str]) -> str:
            if _ONE_CHARACTER.fullmatch(m.group(2)[1:-1]):
                return m.group()
            self.note("an entity declared as more than one character")
            return f'{m.group(1)}""'

        return _ENTITY.sub(empty, head)


def _probe(chunk: str) -> str:
    """`chunk` with each character of an entity reference made a run character, or not, by what it stands for.

    `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&apos;` stand for characters that end a run; any other
    reference stands for one character (see `prolog`), so counting all of its own characters
    (three at least) as run characters overestimates a run rather than underestimates it.
    """
    if "&" not in chunk and "#" not in chunk and ";" not in chunk:
        return chunk
    for ref in _PREDEFINED:
        chunk = chunk.replace(ref, "!" * len(ref))
    return chunk.translate(_REF_AS_RUN)


def _safe_cut(chunk: str, size: int) -> str:
    """`chunk[:size]`, backed off so it ends neither inside an entity reference nor a UTF-8 sequence."""
    end = size
    while 0 < end < len(chunk) and "\x80" <= chunk[end] <= "\xbf" and size - end < 3:
        end -= 1  # chunk[end] continues a character: cut before the byte it began with
    if (
        0 < end < len(chunk)
        and "\xc0" <= chunk[end - 1] <= "\xf7"
        and "\x80" <= chunk[end] <= "\xbf"
    ):
        end -= 1
    cut = chunk[:end]
    amp = cut.rfind("&", max(0, end - 34))
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut
