"""More retrieval corpora for bench/bench_rag.py, of other kinds than CPython's own docs.

Each is built from real text installed on this machine (nothing is downloaded): inputs
read in sorted order, the pairs that pass the rules below sorted by id, shuffled by
``random.Random(SEED)`` and cut to ``LIMIT`` pairs. So the same installed files give the
same pairs, and the even / odd halves bench_rag.py tunes and tests on (and ``--quick``'s
first 200) are random samples. One relevant passage per query; the passages of a corpus's
pairs are its collection. (``cpython`` is bench/rag_corpus.py's corpus, as it is.)

``manpages``
    Debian's manual pages: ``/usr/share/man/man{1,2,3,4,5,7,8}/*.gz`` (gzipped roff), the
    pages the installed Debian packages put there (coreutils, util-linux, manpages and
    manpages-dev's system calls and C library, systemd, git, OpenSSL, iproute2, Perl …),
    minus the Google Cloud CLI's (``gcloud*``, the next corpus); here 3,408 pages besides
    2,384 links, 2,547 pairs pass the rules, 2,000 kept. Symbolic links, ``.so``
    redirects and the few ``mdoc`` pages are skipped. Each page gives one pair: the NAME
    line's description (``ls \\- list directory contents`` → ``list directory
    contents``: the names before ``\\-`` are left out) as the query, the DESCRIPTION
    section as the passage, both stripped of roff requests and escapes by
    :func:`roff_text` (fonts, ``\\-``, ``\\(xx`` glyphs, pod2man strings; no ``groff``
    needed). help2man's ``manual page for …`` descriptions are skipped. Ids
    ``man:NAME.SECTION``.
``gcloud``
    The Google Cloud CLI's reference pages (``/usr/share/man/man1/gcloud*.1.gz``, from
    Debian's ``google-cloud-cli`` package), GA commands only (``gcloud alpha …`` and
    ``gcloud beta …`` repeat them nearly word for word), built as ``manpages``. Most
    DESCRIPTIONs are one line (too short) or repeat the NAME line (a leak): 1,134 pairs
    of 5,677 pages here.
``numpy-scipy-sklearn``
    The docstrings of the NumPy, SciPy and scikit-learn installed in the venv (here 2.4.6,
    1.17.1 and 1.9.1): every public module (no ``_private``, test or vendored module),
    each function, class (and its methods) or other callable it exports that one of the
    three packages defines (SciPy and scikit-learn define their API in private modules),
    counted once, under the first public module in sorted order that exports it. The
    docstring's summary paragraph is the query (a leading signature paragraph, as C
    functions have, is skipped), the rest the passage, without its ``See Also``,
    ``References`` and ``Examples`` sections, ``..`` directives and ``-----`` underlines.
    2,826 pairs pass the rules here, 2,000 kept. Ids ``module:qualname``.

Every corpus applies the same rules, to keep the evaluation sound:

- queries of at least 3 words, passages of 120 to 1,500 characters (cut at a space);
- no leak: a pair is dropped when its query, lower-cased and reduced to letters and
  digits, occurs in the passage reduced the same way (a passage that restates its
  summary word for word, as many gcloud pages do, would be found by string match);
  shared words are kept, as real questions share words with their answers;
- passages unique (the first of a repeated text is kept) and queries unique: a query
  shared by several pages (``list operations``, ``fit the model``) is dropped with all
  of its pages, since one relevant passage per query would be a coin toss among them.
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import pkgutil
import random
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_corpus import Pair
from rag_corpus import pairs as cpython_pairs

__all__ = ["CORPORA", "DESCRIPTIONS", "LIMIT", "SEED", "corpus", "gcloud", "manpages"]
__all__ += ["roff_text", "scientific"]

SEED = 0
LIMIT = 2_000
MAN = Path("/usr/share/man")
MAN_SECTIONS = ("man1", "man2", "man3", "man4", "man5", "man7", "man8")
_MIN_QUERY_WORDS = 3
_MIN_PASSAGE_CHARS = 120
_MAX_PASSAGE_CHARS = 1_500


# --- shared rules ----------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_PASSAGE_CHARS:
        return text
    cut = text.rfind(" ", 0, _MAX_PASSAGE_CHARS)
    return text[: cut if cut > 0 else _MAX_PASSAGE_CHARS]


def _finish(found: Iterable[Pair], limit: int | None) -> list[Pair]:
    """The shared rules (module docstring), then a seeded shuffle cut to ``limit``."""
    kept: list[Pair] = []
    seen: set[str] = set()
    for p in found:
        query, passage = " ".join(p.query.split()), _clip(p.passage)
        if len(query.split()) < _MIN_QUERY_WORDS or len(passage) < _MIN_PASSAGE_CHARS:
            continue
        if _norm(query) in _norm(passage) or passage in seen:
            continue
        seen.add(passage)
        kept.append(Pair(query, p.passage_id, passage))
    shared = Counter(_norm(p.query) for p in kept)
    kept = sorted((p for p in kept if shared[_norm(p.query)] == 1), key=lambda p: p.passage_id)
    random.Random(SEED).shuffle(kept)
    return kept[:limit] if limit else kept


# --- roff -------------------------------------------------------------------------------

_GLYPHS = {
    "em": "—", "en": "–", "hy": "-", "mi": "-", "bu": "•", "aq": "'", "dq": '"', "lq": '"',
    "rq": '"', "oq": "'", "cq": "'", "co": "©", "rg": "®", "tm": "™", "de": "°", "mu": "×",
    "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "ti": "~", "ha": "^", "rs": "\\",
    "sl": "/", "ba": "|", "or": "|", "pl": "+", "eq": "=", "lh": "☜", "rh": "☞", "Fo": "«",
    "Fc": "»", "fo": "‹", "fc": "›", "ga": "`", "aa": "´", "ss": "ß", "ae": "æ",
}  # fmt: skip
_STRINGS = {'L"': '"', 'R"': '"', "C`": '"', "C'": '"', "lq": '"', "rq": '"', "Tm": "™"}
_ESCAPE = re.compile(
    r"""\\(?:
      f(?:\[[^\]]*\]|\(..|.)           # font
    | s[-+]?(?:\(\d\d|\[\d+\]|\d)      # size
    | [*](?:\[(?P<sb>[^\]]*)\]|\((?P<sp>..)|(?P<s1>.))   # string
    | \((?P<gp>..)                      # glyph \(xx
    | \[(?P<gb>[^\]]*)\]                # glyph \[xx]
    | [NhvwlLDoXbxRSHZ]'[^']*'          # drawing, motions, widths
    | [kngmMYV$](?:\[[^\]]*\]|\(..|.)   # registers, colours
    | (?P<c>.)
    )""",
    re.VERBOSE,
)
_KEEP = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`",
         ".": ".", "%": "", "&": "", "|": "", "^": "", "c": "", ")": "", "/": "", ",": "",
         "t": " ", "a": "", ":": "", "!": "", "{": "", "}": "", "z": "", "d": "", "u": "",
         "r": "", "p": ""}  # fmt: skip


def _unescape(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if (name := m.group("sb") or m.group("sp") or m.group("s1")) is not None:
            return _STRINGS.get(name, "")
        if (glyph := m.group("gp") or m.group("gb")) is not None:
            return _GLYPHS.get(glyph, "")
        if (c := m.group("c")) is not None:
            return _KEEP.get(c, c)
        return ""

    return _ESCAPE.sub(sub, text)


_FONT_MACROS = {"B", "I", "SM", "SB"}
_ALTERNATING = {"BR", "RB", "BI", "IB", "IR", "RI"}
_BREAKS = {
    *("PP", "P", "LP", "TP", "TQ", "IP", "HP", "SS", "sp", "br", "RS", "RE"),
    *("nf", "fi", "EX", "EE", "in", "ti", "bp", "ne", "UR", "UE", "MT", "ME"),
}


def _args(rest: str) -> list[str]:
    return [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"?|\S+', rest)]


def roff_text(lines: Iterable[str]) -> list[str]:
    """The paragraphs of roff source written with the ``man`` macros, as plain text."""
    paragraphs: list[list[str]] = [[]]
    for raw in lines:
        line = re.sub(r'\\".*', "", raw.rstrip("\n"))
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in _FONT_MACROS:
                paragraphs[-1].append(_unescape(" ".join(_args(rest))))
            elif macro in _ALTERNATING:
                paragraphs[-1].append(_unescape("".join(_args(rest))))
            elif macro in _BREAKS:
                paragraphs.append([])
                if macro in ("IP", "SS", "UR", "MT") and rest.strip():
                    tag = _unescape(_args(rest)[0]) if macro != "UR" else ""
                    if tag.strip() and tag.strip() != "•":
                        paragraphs[-1].append(tag)
            continue  # any other request, and comments
        if not line.strip():
            paragraphs.append([])
            continue
        paragraphs[-1].append(_unescape(line))
    out = [" ".join(" ".join(p).split()) for p in paragraphs]
    return [p for p in out if p]


def _sections(text: str) -> dict[str, list[str]] | None:
    """The page's ``.SH`` sections (upper-case name → source lines); None for mdoc pages,
    ``.so`` redirects and pages without NAME."""
    if re.search(r"^\.(Sh|Dd)\b", text, re.MULTILINE) or re.match(r"\s*\.so\s", text):
        return None
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if m := re.match(r"\.SH\s*(.*)", line):
            name = " ".join(_unescape(" ".join(_args(m.group(1)))).split()).upper()
            current = out.setdefault(name, []) if name not in out else None
            continue
        if current is not None:
            current.append(line)
    return out if "NAME" in out else None


def man_pair(path: Path, page_id: str) -> Pair | None:
    """The NAME line's description → the DESCRIPTION section, or None (see the docstring)."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return None
    sections = _sections(text)
    if sections is None or "DESCRIPTION" not in sections:
        return None
    name = " ".join(roff_text(sections["NAME"]))
    _, dash, query = name.partition(" - ")
    description = " ".join(roff_text(sections["DESCRIPTION"]))
    if not dash or re.search(r"manual page for|^\S+$", query, re.IGNORECASE):
        return None
    return Pair(query.strip(), page_id, description)


def _pages(select: Callable[[str], bool]) -> Iterable[tuple[Path, str]]:
    for section in MAN_SECTIONS:
        folder = MAN / section
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.name.endswith(".gz") or not select(path.name):
                continue
            yield path, f"man:{path.name.removesuffix('.gz')}"  # ids hold no /


def manpages(limit: int | None = LIMIT) -> list[Pair]:
    """Debian's manual pages, Google Cloud CLI's left out (module docstring)."""
    found = (man_pair(p, i) for p, i in _pages(lambda n: not n.startswith("gcloud")))
    return _finish((p for p in found if p is not None), limit)


def gcloud(limit: int | None = LIMIT) -> list[Pair]:
    """The Google Cloud CLI's GA reference pages (module docstring)."""

    def ga(name: str) -> bool:
        return name.startswith("gcloud") and not name.startswith(("gcloud_alpha", "gcloud_beta"))

    found = (man_pair(p, i) for p, i in _pages(ga) if p.parent.name == "man1")
    return _finish((p for p in found if p is not None), limit)


# --- NumPy, SciPy, scikit-learn docstrings ------------------------------------------------

_SCI_PACKAGES = ("numpy", "scipy", "sklearn")
_SCI_SKIP = re.compile(
    r"(^|\.)(_[^.]*|tests?|testing|testutils|conftest|setup|externals|f2py|distutils)(\.|$)"
)
_DROP_SECTIONS = {"see also", "references", "examples"}


def _public_modules() -> list[str]:
    names: set[str] = set()
    for top in _SCI_PACKAGES:
        module = importlib.import_module(top)
        names.add(top)
        for info in pkgutil.walk_packages(module.__path__, f"{top}.", onerror=lambda _: None):
            if not _SCI_SKIP.search(info.name):
                names.add(info.name)
    return sorted(names)


def _defined(module: object, seen: set[tuple[str, str]]) -> list[tuple[str, object]]:
    # SciPy and scikit-learn define their API in private modules (scipy.linalg._basic) and
    # export it from public ones: an object counts where it is first exported, once.
    out = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or not callable(value):
            continue
        home = getattr(value, "__module__", None)
        key = (str(home), str(getattr(value, "__qualname__", name)))
        if not isinstance(home, str) or home.split(".")[0] not in _SCI_PACKAGES or key in seen:
            continue
        seen.add(key)
        out.append((name, value))
        if inspect.isclass(value):
            for attr, member in sorted(vars(value).items()):
                if not attr.startswith("_") and inspect.isfunction(member):
                    out.append((f"{name}.{attr}", member))
    return out


def docstring_pair(doc: str, pair_id: str) -> Pair | None:
    """numpydoc: the summary paragraph → the rest, without See Also, References, Examples."""
    doc = inspect.cleandoc(doc)
    if re.fullmatch(r"[\w.]+\(.*\)(\s*->.*|\s*--)?", doc.partition("\n\n")[0], re.DOTALL):
        doc = doc.partition("\n\n")[2]  # a signature first (C functions, Cython, vectorize)
    summary, _, body = doc.partition("\n\n")
    lines, keep = body.splitlines(), []
    drop = False
    for n, line in enumerate(lines):
        following = lines[n + 1] if n + 1 < len(lines) else ""
        if re.fullmatch(r"\s*-{3,}\s*", following):  # a section title
            drop = line.strip().lower() in _DROP_SECTIONS
        if drop or re.fullmatch(r"\s*-{3,}\s*", line) or line.lstrip().startswith(".. "):
            continue
        keep.append(line)
    if summary.lstrip().startswith((".. ", ">>>")):
        return None
    return Pair(" ".join(summary.split()), pair_id, " ".join(keep))


def scientific(limit: int | None = LIMIT) -> list[Pair]:
    """NumPy's, SciPy's and scikit-learn's docstrings (module docstring)."""
    found: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    with warnings.catch_warnings():  # deprecated submodules warn on import
        warnings.simplefilter("ignore")
        for module_name in _public_modules():
            try:
                module = importlib.import_module(module_name)
            except Exception:  # an optional dependency this machine lacks
                continue
            for name, value in _defined(module, seen):
                doc = getattr(value, "__doc__", None)
                if isinstance(doc, str) and (p := docstring_pair(doc, f"{module_name}:{name}")):
                    found.append(p)
    return _finish(found, limit)


DESCRIPTIONS = {
    "cpython": f"CPython {sys.version.split()[0]}'s docstrings and pydoc topics",
    "manpages": "Debian's manual pages (NAME description → DESCRIPTION)",
    "gcloud": "the Google Cloud CLI's GA reference pages (NAME description → DESCRIPTION)",
    "numpy-scipy-sklearn": "NumPy's, SciPy's and scikit-learn's docstrings (summary → body)",
}
CORPORA: dict[str, Callable[[], list[Pair]]] = {
    "cpython": cpython_pairs,
    "manpages": manpages,
    "gcloud": gcloud,
    "numpy-scipy-sklearn": scientific,
}


def corpus(name: str) -> list[Pair]:
    """The pairs of the corpus called ``name`` (one of :data:`CORPORA`)."""
    return CORPORA[name]()
