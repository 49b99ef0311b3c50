"""The README stays a front page with the two newcomer commands; docs links resolve; every dated measurement
page says when, where, with which backend and by which command it was measured."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def fenced_out(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", fenced_out(page.read_text()), flags=re.M)}


def test_readme_is_a_front_page_of_at_most_12_kb():
    assert len(README.read_bytes()) <= 12_000


def test_readme_holds_exactly_the_two_newcomer_commands():
    text = README.read_text()
    section = text.split("## The two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: ", makefile, flags=re.M) and re.search(r"^test: ", makefile, flags=re.M)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
    assert "(docs/cli.md)" in text


def test_every_relative_link_in_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(fenced_out(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_every_dated_measurement_page_gives_date_machine_backend_and_command_and_is_listed():
    index = (ROOT / "docs" / "measurements.md").read_text()
    results = sorted((ROOT / "docs" / "results").glob("*.md"))
    assert results
    for page in results:
        assert re.match(r"\d{4}-\d\d-\d\d-", page.name), page.name
        text = page.read_text()
        for field in ("**Date**", "**Machine**", "**Backend**", "**Command"):
            assert field in text, f"{page.name} lacks {field}"
        assert f"(results/{page.name})" in index, f"{page.name} is not listed in docs/measurements.md"
