"""MkDocs hooks (mkdocs.yml `hooks:`): the pages made at build time, and one link scheme.

Generated, never written by hand, so they cannot drift from the code:

- ``reference/cli.md`` from the argparse parser (``vqvae.cli.parser.build_parser``): every
  command and sub-command, its usage, and every option with its help;
- ``reference/api.md`` from ``vqvae.__all__``, one mkdocstrings block per name, grouped by the
  sub-package that defines it;
- ``index.md`` and ``benchmarks.md``: README.md and BENCHMARKS.md from the project root.

Links are written as the repository lays the files out, so that they work on GitHub (README.md
links ``docs/x.md``, a page in ``docs/`` links ``../BENCHMARKS.md``); ``on_page_markdown`` maps
each onto the site's page, and the strict build then checks that it exists.
"""

from __future__ import annotations

import argparse
import html
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent
# the references describe this checkout's code, whatever vqvae is installed
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

# files at the project root that are pages of the site: repository path -> site path
ROOT_PAGES = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md"}
CLI_PAGE = "reference/cli.md"
API_PAGE = "reference/api.md"

# a sub-package of vqvae -> its section in the API reference; others are titled by name
SECTIONS = {
    "models": "Models",
    "quantizers": "Quantizers",
    "nets": "Networks",
    "priors": "Priors",
    "config": "Configuration and presets",
    "data": "Data",
    "registry": "Registries",
    "errors": "Errors",
}

# [text](target) and ![alt](target): the target without a title
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def on_files(files: Files, config) -> Files:
    for repo_path, site_path in ROOT_PAGES.items():
        text = (ROOT / repo_path).read_text(encoding="utf-8")
        files.append(File.generated(config, site_path, content=text))
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    files.append(File.generated(config, API_PAGE, content=api_reference()))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    return rewrite_links(markdown, page.file.src_uri)


def on_page_content(html: str, page, config, files) -> str:
    # the source beside an equation is the point of showing it (concepts.md): open, not folded
    return html.replace(
        '<details class="mkdocstrings-source">', '<details class="mkdocstrings-source" open>'
    )


def repo_path_of(site_path: str) -> str:
    """Where a page of the site lives in the repository."""
    for repo_path, page in ROOT_PAGES.items():
        if page == site_path:
            return repo_path
    return f"docs/{site_path}"


def site_path_of(repo_path: str) -> str | None:
    """The site's file for a file of the repository, None if the site has no copy of it."""
    if repo_path in ROOT_PAGES:
        return ROOT_PAGES[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    return None


def rewrite_links(markdown: str, site_path: str) -> str:
    """Relative links as the repository lays files out -> relative links between site pages.

    A link to a file of the repository that the site does not hold (a script, a source file)
    becomes its text and the file's path, since the site cannot open it; a link to a file that
    does not exist is left as written, so that the strict build names it.
    """
    page_dir = posixpath.dirname(repo_path_of(site_path))

    def one(match: re.Match) -> str:
        bang, text, target = match.groups()
        path, hash_, anchor = target.partition("#")
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):  # "#anchor", http:, mailto:
            return match.group(0)
        repo_target = posixpath.normpath(posixpath.join(page_dir, path))
        site_target = site_path_of(repo_target)
        if site_target is None:
            if bang or not (ROOT / repo_target).is_file():
                return match.group(0)
            return text if repo_target in text else f"{text} (`{repo_target}`)"
        relative = posixpath.relpath(site_target, posixpath.dirname(site_path) or ".")
        return f"{bang}[{text}]({relative}{hash_}{anchor})"

    return LINK.sub(one, markdown)


# --- the command-line reference ---------------------------------------------------------------


def cli_reference() -> str:
    from vqvae.cli.parser import build_parser

    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Every command of `vqvae`, generated from its argument parser when this site was built:",
        "`vqvae COMMAND --help` prints the same. Guides: [images](../getting-started/images.md),",
        "[speech](../getting-started/speech.md), [the 3-D maze](../getting-started/maze.md).",
        "",
    ]
    lines += _command_section(parser, "vqvae", None, level=2)
    return "\n".join(lines) + "\n"


def _command_section(
    parser: argparse.ArgumentParser, name: str, summary: str | None, level: int
) -> list[str]:
    lines = [f"{'#' * level} `{name}`", ""]
    for text in (summary, parser.description):
        if text:
            text = _escape(text[0].upper() + text[1:])
            lines += [text if text.endswith(".") else text + ".", ""]
    first, *rest = parser.format_usage().removeprefix("usage: ").strip().splitlines()
    lines += [
        "```text",
        first,
        *("    " + line.strip() for line in rest if line.strip()),
        "```",
        "",
    ]
    formatter = parser._get_formatter()
    subcommands: list[tuple[str, argparse.ArgumentParser, str | None]] = []
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            seen: set[int] = set()
            for sub_name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias names the same parser again
                    seen.add(id(sub))
                    subcommands.append((sub_name, sub, helps.get(sub_name)))
        elif action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
            invocation = formatter._format_action_invocation(action)
            help_text = formatter._expand_help(action) if action.help else ""
            if _shows_default(action) and "default" not in help_text:
                help_text = f"{help_text} (default: {action.default})".strip()
            options.append(f"- `{invocation}`: {_escape(help_text)}".rstrip(": "))
    if options:
        lines += options + [""]
    if subcommands:
        lines += ["Commands:", ""]
        for sub_name, _sub, summary_text in subcommands:
            anchor = _slug(f"{name} {sub_name}")
            lines.append(f"- [`{name} {sub_name}`](#{anchor}): {_escape(summary_text or '')}")
        lines.append("")
        for sub_name, sub, summary_text in subcommands:
            lines += _command_section(sub, f"{name} {sub_name}", summary_text, min(level + 1, 4))
    return lines


def _shows_default(action: argparse.Action) -> bool:
    """A value the option takes when not given, worth saying (not a flag's False)."""
    return (
        action.default not in (None, argparse.SUPPRESS, False, True, [])
        and action.nargs != 0
        and not action.required
    )


def _escape(text: str) -> str:
    """Help text as literal Markdown: no emphasis, no HTML."""
    text = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([*_`\[\]])", r"\\\1", text)


def _slug(heading: str) -> str:
    """The anchor the toc extension (GitHub's rule) gives a heading of plain words."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# --- the API reference ------------------------------------------------------------------------


def api_reference() -> str:
    import vqvae

    sections: dict[str, list[str]] = {}
    for name in vqvae.__all__:
        module = getattr(getattr(vqvae, name), "__module__", None) or "vqvae"
        part = module.split(".")[1] if module.startswith("vqvae.") else ""
        title = SECTIONS.get(part, part.replace("_", " ").capitalize() or "Other")
        sections.setdefault(title, []).append(name)
    lines = [
        "# Python API reference",
        "",
        "What `import vqvae` exports (`vqvae.__all__`), generated from the docstrings when this",
        "site was built. A walk through it: [the Python API](../getting-started/python.md);",
        "the equations behind it: [the paper's equations in the code](../concepts.md).",
        "",
    ]
    ordered = [t for t in SECTIONS.values() if t in sections]
    ordered += sorted(t for t in sections if t not in ordered)
    for title in ordered:
        lines += [f"## {title}", ""]
        for name in sections[title]:
            lines += [f"::: vqvae.{name}", ""]
    return "\n".join(lines) + "\n"
