"""The documentation site (mkdocs.yml, docs_hooks.py): built once, strictly, into a temporary
folder; every command and exported name is in it, and every link in it and in README.md
resolves to a file and an anchor that exist, with no network."""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

import vqvae
from vqvae.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import docs_hooks  # noqa: E402  (the hooks module sits beside mkdocs.yml, not in the package)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "NO_MKDOCS_2_WARNING": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


class _Page(HTMLParser):
    """The ids a page defines and the links (href, src) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.assets: list[str] = []  # what a browser fetches: scripts, styles, images

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script", "iframe", "audio", "video", "source") and a.get("src"):
            self.links.append(a["src"])
            self.assets.append(a["src"])
        if tag == "link" and a.get("href"):
            self.links.append(a["href"])
            self.assets.append(a["href"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _external(link: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", link))  # http:, https:, mailto:, data:


def _commands(
    parser: argparse.ArgumentParser, name: str = "vqvae"
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and sub-command, depth first (the reference's order)."""
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _commands(sub, f"{name} {sub_name}")
    return found


def test_every_command_and_option_is_in_the_cli_reference(site):
    html = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    commands = _commands(build_parser())
    assert len(commands) > 20  # the walk found the sub-commands
    starts = []
    for name, _ in commands:
        anchor = f'id="{name.replace(" ", "-")}"'
        assert anchor in html, f"{name} missing from the CLI reference"
        starts.append(html.index(anchor))
    assert starts == sorted(starts)  # one section per command, in the parser's order
    for i, (name, parser) in enumerate(commands):
        section = html[starts[i] : starts[i + 1] if i + 1 < len(starts) else len(html)]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in section, f"{name} {option} missing from its section"


def test_every_exported_name_is_in_the_api_reference(site):
    page = _parse(site / "reference" / "api.html")
    missing = [name for name in vqvae.__all__ if f"vqvae.{name}" not in page.ids]
    assert not missing


def test_every_link_in_the_site_resolves(site):
    # 404.html is a web server's page for a missing address: its links are absolute on purpose
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    parsed = {p: _parse(p) for p in pages}
    checked = 0
    for page, content in parsed.items():
        for link in content.links:
            if _external(link):
                continue
            path, _, anchor = unquote(link).partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.exists(), f"{page.relative_to(site)}: {link} does not exist"
            if anchor and target.suffix == ".html":
                assert anchor in parsed[target].ids, f"{page.relative_to(site)}: no #{anchor}"
            checked += 1
    assert checked > 1000  # the nav alone links every page from every page


def test_the_site_fetches_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        remote = [a for a in _parse(page).assets if _external(a)]
        assert not remote, f"{page.relative_to(site)} fetches {remote}"
    for sheet in site.rglob("*.css"):
        text = sheet.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and "@import url(http" not in text, sheet.name


def _markdown_links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # not inside code blocks
    return [m.group(1) for m in re.finditer(r"\]\(([^)\s]+)\)", text)]


def test_every_link_in_the_readme_resolves(site):
    links = _markdown_links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(links) > 10
    for link in links:
        if _external(link):
            continue
        path, _, anchor = link.partition("#")
        repo_path = posixpath.normpath(path) if path else "README.md"
        assert (ROOT / repo_path).exists(), f"README.md: {link} does not exist"
        if anchor:
            # the site's anchors are GitHub's (mkdocs.yml: toc slugify), so one check serves both
            site_page = docs_hooks.site_path_of(repo_path)
            assert site_page and site_page.endswith(".md"), f"README.md: {link} is not a page"
            ids = _parse(site / site_page.replace(".md", ".html")).ids
            assert anchor in ids, f"README.md: {link}: no such heading"


def test_links_are_mapped_from_the_repository_layout_to_the_site():
    readme = "[a](docs/speech.md#x) ![b](docs/mnist-samples.png) [c](BENCHMARKS.md#y) [d](#z)"
    assert docs_hooks.rewrite_links(readme, "index.md") == (
        "[a](speech.md#x) ![b](mnist-samples.png) [c](benchmarks.md#y) [d](#z)"
    )
    page = "[a](../../BENCHMARKS.md#y) [b](../speech.md) [c](https://x.org/a.md) [d](../none.md)"
    assert docs_hooks.rewrite_links(page, "getting-started/speech.md") == (
        "[a](../benchmarks.md#y) [b](../speech.md) [c](https://x.org/a.md) [d](../none.md)"
    )
    # a file of the repository outside the site: its path, since the site cannot open it
    page = "[the set-up](../Makefile) and [benchmarks/data.py](../benchmarks/data.py)"
    assert docs_hooks.rewrite_links(page, "training.md") == (
        "the set-up (`Makefile`) and benchmarks/data.py"
    )


def _command_lines(text: str) -> list[str]:
    """The `vqvae ...` lines of a page's shell blocks, environment variables and comments off."""
    blocks = re.findall(r"```(?!python)[a-z]*\n(.*?)```", text, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    lines = [re.sub(r"^(\w+=\S+\s+)+", "", line) for line in lines]
    return [line for line in lines if line.startswith("vqvae ")]


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        "docs/getting-started/images.md",
        "docs/getting-started/speech.md",
        "docs/getting-started/maze.md",
    ],
)
def test_the_commands_of_the_readme_and_the_getting_started_pages_parse(page):
    lines = _command_lines((ROOT / page).read_text(encoding="utf-8"))
    assert len(lines) >= 3, f"{page}: {lines}"
    parser = build_parser()
    for line in lines:
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"{page}: `{line}` does not parse")
