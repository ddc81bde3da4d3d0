"""The code a reader copies from the tutorial and the how-to pages, as files.

Every code block on those pages is one of:

- a piece of a file, named by its ``:caption:`` (``examples/provision.py``,
  ``test_howto_clock.py``): the page's pieces of one file, in page order, are that whole
  file; a reader who copies them gets code that runs as shown;
- a deliberate fragment, marked ``:class: fragment``, which nothing runs;
- a ``console`` command, an ``ini`` setting or ``text`` (a script's output).

``.ci/wheel_test.py`` writes each page's files to a fresh folder and runs them against the
installed wheel; tests/test_docs.py checks them for undefined names. Standard library
only, so both run without Sphinx. The page is read here the way Sphinx reads it (the
``literalinclude`` options ``pyobject``, ``start-after``, ``start-at``, ``end-before``,
``end-at``); as a Sphinx extension this module checks, in every build, that its blocks are
the ones Sphinx renders, text for text, so the files tested are what the page shows.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The pages whose code must run as copied (the tutorial and the how-to guides).
PAGE_GLOBS = ("tutorial.rst", "howto/*.rst")
#: The class that marks a block nothing runs.
FRAGMENT = "fragment"
#: Languages of blocks that are pieces of files (with a caption) or fragments.
CODE_LANGUAGES = {"python", "py", "bash", "sh", "shell"}
#: Blocks that are not files: commands, settings, output.
OTHER_LANGUAGES = {"console", "ini", "text", "none"}
_LANGUAGE_BY_SUFFIX = {".py": "python", ".sh": "bash"}
_KNOWN_OPTIONS = {
    "language",
    "caption",
    "class",
    "name",
    "pyobject",
    "start-after",
    "start-at",
    "end-before",
    "end-at",
}
_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. (?P<name>[\w-]+)::(?: +(?P<arg>.*?))? *$")
_OPTION = re.compile(r"^ +:(?P<name>[\w-]+):(?: +(?P<value>.*?))? *$")


@dataclass(frozen=True)
class Block:
    """One code block of a page, with the text the rendered page shows."""

    page: Path
    line: int  # 1-based line of the directive in the page
    directive: str  # literalinclude, code-block or "::" for a literal block
    language: str
    caption: str | None
    classes: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def fragment(self) -> bool:
        return FRAGMENT in self.classes

    @property
    def is_code(self) -> bool:
        return self.language in CODE_LANGUAGES


def pages(docs: Path) -> list[Path]:
    """The tutorial and the how-to pages under ``docs``."""
    return sorted(p for pattern in PAGE_GLOBS for p in docs.glob(pattern))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _body(lines: list[str], start: int, parent_indent: int) -> tuple[list[str], int]:
    """The indented block from ``start`` (blank lines first skipped), dedented, and the
    index after it."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > parent_indent):
        end += 1
    body = lines[start:end]
    while body and not body[-1].strip():  # trailing blank lines belong to no block
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    width = min((_indent(line) for line in body if line.strip()), default=0)
    return [line[width:] for line in body], end


def _pyobject(source: str, name: str, path: Path) -> list[str]:
    """The lines of the top-level function or class ``name`` (``Class.method`` too), its
    decorators included, as Sphinx's ``:pyobject:`` picks them."""
    scope: list[ast.stmt] = ast.parse(source).body
    node: ast.stmt | None = None
    for part in name.split("."):
        node = next(
            (
                n
                for n in scope
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise ValueError(f"{path}: no object named {name!r}")
        scope = node.body
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    assert node.end_lineno is not None
    return source.splitlines(keepends=True)[first - 1 : node.end_lineno]


def _include(path: Path, options: dict[str, str]) -> str:
    """What ``literalinclude`` shows of ``path``, in Sphinx's order of filters."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    if "pyobject" in options:
        lines = _pyobject(source, options["pyobject"], path)
    for option, after in (("start-after", True), ("start-at", False)):
        if option in options:
            at = next((i for i, line in enumerate(lines) if options[option] in line), None)
            if at is None:
                raise ValueError(f"{path}: {option} {options[option]!r} not found")
            lines = lines[at + 1 if after else at :]
    for option, before in (("end-before", True), ("end-at", False)):
        if option in options:
            at = next((i for i, line in enumerate(lines) if options[option] in line), None)
            if at is None:
                raise ValueError(f"{path}: {option} {options[option]!r} not found")
            lines = lines[: at if before else at + 1]
    return "".join(lines)


def blocks(page: Path) -> list[Block]:
    """Every code block of an rst page, in page order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive and directive["name"] in ("literalinclude", "code-block", "code"):
            indent, name, arg = len(directive["indent"]), directive["name"], directive["arg"] or ""
            options: dict[str, str] = {}
            j = i + 1
            while j < len(lines) and (option := _OPTION.match(lines[j])):
                if _indent(lines[j]) <= indent:
                    break
                options[option["name"]] = option["value"] or ""
                j += 1
            unknown = set(options) - _KNOWN_OPTIONS
            if unknown:
                raise ValueError(f"{page.name}:{i + 1}: options not read here: {sorted(unknown)}")
            if name == "literalinclude":
                path = (page.parent / arg).resolve()
                text = _include(path, options)
                language = options.get("language") or _LANGUAGE_BY_SUFFIX.get(path.suffix, "text")
                end = j
            else:
                body, end = _body(lines, j, indent)
                text = "\n".join(body)
                language = arg or "default"
            found.append(
                Block(
                    page=page,
                    line=i + 1,
                    directive=name,
                    language=language,
                    caption=options.get("caption") or None,
                    classes=tuple(options.get("class", "").split()),
                    text=text.rstrip("\n") + "\n",
                )
            )
            i = max(end, i + 1)
            continue
        if line.rstrip().endswith("::") and not directive and line.strip():
            # An expanded literal block ("...::" then an indented block): shown as text.
            body, end = _body(lines, i + 1, _indent(line))
            if body:
                found.append(Block(page, i + 1, "::", "text", None, (), "\n".join(body) + "\n"))
                i = end
                continue
        i += 1
    return found


def files(page_blocks: list[Block]) -> dict[str, str]:
    """The files a page's code blocks make, by the path their caption names: each file's
    pieces in page order, a blank line between two pieces.

    A code block with neither a caption nor the fragment class is an error: a reader could
    not tell where it goes, and nothing would run it.
    """
    out: dict[str, list[str]] = {}
    for block in page_blocks:
        if block.language not in CODE_LANGUAGES | OTHER_LANGUAGES:
            raise ValueError(f"{block.where}: a {block.language!r} block; say what it is")
        if not block.is_code or block.fragment:
            continue
        if not block.caption:
            raise ValueError(
                f"{block.where}: a code block without a caption naming its file; "
                f"add one, or mark a deliberate fragment with ':class: {FRAGMENT}'"
            )
        caption = Path(block.caption)
        if caption.is_absolute() or ".." in caption.parts:
            raise ValueError(f"{block.where}: caption {block.caption!r} is not a relative path")
        out.setdefault(caption.as_posix(), []).append(block.text)
    return {name: "\n".join(pieces) for name, pieces in out.items()}


def write(page_blocks: list[Block], folder: Path) -> list[Path]:
    """Write :func:`files` under ``folder`` (a fresh one) and return their paths."""
    written = []
    for name, text in files(page_blocks).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def console_commands(page_blocks: list[Block]) -> list[tuple[Block, str]]:
    """The commands (``$ ...`` lines) of a page's console blocks."""
    return [
        (block, line.strip()[2:])
        for block in page_blocks
        if block.language == "console"
        for line in block.text.splitlines()
        if line.strip().startswith("$ ")
    ]


def output_after(page_blocks: list[Block], block: Block) -> Block | None:
    """The ``text`` block right after ``block``: what the page says it prints."""
    at = page_blocks.index(block)
    following = page_blocks[at + 1] if at + 1 < len(page_blocks) else None
    return following if following is not None and following.language == "text" else None


# -- Sphinx: the blocks read here are the blocks the page renders ----------------------


def _check_doctree(app: Any, doctree: Any) -> None:
    from docutils import nodes
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    docname = app.env.docname
    page = Path(app.srcdir, docname + ".rst")
    if page not in pages(Path(app.srcdir)):
        return
    read = blocks(page)
    rendered = list(doctree.findall(nodes.literal_block))
    if len(read) != len(rendered):
        logger.warning(
            "pagecode: %d code blocks read, %d rendered", len(read), len(rendered), location=docname
        )
        return
    for mine, node in zip(read, rendered, strict=True):
        caption = None
        if isinstance(node.parent, nodes.container) and node.parent.get("literal_block"):
            caption = next(iter(node.parent.findall(nodes.caption)), None)
        shown = caption.astext() if caption is not None else None
        if node.astext().rstrip("\n") != mine.text.rstrip("\n"):
            logger.warning(
                "pagecode: the text read at %s is not the text Sphinx renders there; make "
                "this module read that directive as Sphinx does",
                mine.where,
                location=node,
            )
        if shown != mine.caption:
            logger.warning(
                "pagecode: caption %r read at %s, %r rendered",
                mine.caption,
                mine.where,
                shown,
                location=node,
            )
        try:
            files([mine])
        except ValueError as error:
            logger.warning("pagecode: %s", error, location=node)


def setup(app: Any) -> dict[str, Any]:
    app.connect("doctree-read", _check_doctree)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
