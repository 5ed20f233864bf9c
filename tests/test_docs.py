"""The documentation holds together: the README stays a newcomer's page, every relative link (and the
heading it names) resolves, the README's set-up runs the tests the way CI does, and docs/design.md has
a line for every module of the package. Plain file reads: no Ray, no torch."""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PACKAGE = ROOT / "tune_sd"

MAX_LINES = 250
MAX_CHARS = 15_000

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at the first space (a "title" may follow)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks (a YAML comment there is no heading, `[a](b)` no link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text without markup, lower case, punctuation dropped (but
    hyphens and underscores), spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text).lower()
    return "".join("-" if c == " " else c for c in text if c.isalnum() or c in " -_")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(prose(path.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(path.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_slugs_follow_github():
    assert slug("Racing configs (`--scheduler race`)") == "racing-configs---scheduler-race"
    assert slug("What the report concludes, and what it does not") == "what-the-report-concludes-and-what-it-does-not"
    assert slug("With repeats: a config's seeds stop together") == "with-repeats-a-configs-seeds-stop-together"
    assert slug("Why `sd-study` stops only non-learners") == "why-sd-study-stops-only-non-learners"


def test_readme_is_a_newcomers_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"README.md has {len(text.splitlines())} lines (at most {MAX_LINES})"
    assert len(text) <= MAX_CHARS, f"README.md has {len(text)} characters (at most {MAX_CHARS})"


def test_docs_index_lists_every_page():
    index = {Path(t.split("#")[0]).name for t in relative_links(DOCS / "README.md")}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and p.name not in index]
    assert not missing, f"docs/README.md does not link {missing}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n[there](missing.md), [here](#a-page), [gone](#nowhere)\n"
                    "```\n[not a link](nope.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["missing.md", "#a-page", "#nowhere"]
    assert anchors(page) == {"a-page"}


def ci_test_command() -> str:
    """The test command of `.ci/run`: its line that runs pytest."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if not line.startswith("#") and "pytest" in shlex.split(line)[:4]]
    assert len(commands) == 1, f".ci/run should run pytest once, found {commands}"
    return commands[0]


def test_readme_setup_runs_the_tests_as_ci_does():
    command = ci_test_command()
    assert command == "python -m pytest -q"
    text = README.read_text(encoding="utf-8")
    setup = text.split("\n## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```", setup, re.M | re.S)
    assert block, "README.md: no ```bash block under ## Set-up"
    assert command in [line.strip() for line in block.group(1).splitlines()], (
        f"README.md's set-up block does not run {command!r}, the test command of .ci/run")


def design_modules() -> set[str]:
    """The modules named in docs/design.md's "Who owns what" (first column, paths under tune_sd/)."""
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text.split("\n## Who owns what", 1)[1].split("\n## ", 1)[0]
    named = set()
    for row in re.findall(r"^\|(.*)$", section, re.M):
        first = row.split("|", 1)[0]
        named.update(re.findall(r"`([\w/]+\.py)`", first))
    return named


def test_design_names_every_module():
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    named = design_modules()
    assert not sorted(modules - named), f"docs/design.md, Who owns what: no line for {sorted(modules - named)}"
    assert not sorted(named - modules), f"docs/design.md, Who owns what: no such module {sorted(named - modules)}"
