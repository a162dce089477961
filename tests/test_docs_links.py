"""The README and docs/*.md link only to files of the repository, and every such link resolves.

The README is read on PyPI, GitHub and in a checkout alone, so it must not point outside the
repository (`../`); a link into a moved or renamed doc, or to a heading that no longer exists, is
found here rather than by a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) outside code; images too. Autolinks and reference links are not used here.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")


def _links(path: Path) -> list[str]:
    """Every link target of a markdown file, code blocks and code spans left out."""
    text = _CODE.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    return _LINK.findall(text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def _is_local(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)  # http:, https:, mailto: ...


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in filter(_is_local, _links(doc)):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_readme_links_nothing_outside_the_repository() -> None:
    outside = [t for t in _links(ROOT / "README.md") if _is_local(t) and (t.startswith("../") or t.startswith("/"))]
    assert not outside, f"README.md links outside the repository: {outside}"


def test_the_link_parser_sees_links_and_skips_code() -> None:
    doc = "see [a](docs/a.md#x) and `[b](c.md)`\n```\n[d](e.md)\n```\n![i](img.png)\n"
    assert _LINK.findall(_CODE.sub("", _FENCE.sub("", doc))) == ["docs/a.md#x", "img.png"]
    assert _slug("6. Reconciliation semantics") == "6-reconciliation-semantics"
    assert _slug("Troubleshooting by exit code") == "troubleshooting-by-exit-code"
    assert _slug("Publishing, crashes and recovery") == "publishing-crashes-and-recovery"


def _yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readme_config_and_mapping_examples_are_valid() -> None:
    """The worked config and column mapping of the README pass the config schema as they are."""
    import yaml

    from invrecon.schemas.config import ConfigDoc, MappingDoc, schema_errors

    docs = [yaml.safe_load(block) for block in _yaml_blocks(ROOT / "README.md")]
    configs = [d for d in docs if isinstance(d, dict) and "sources" in d]
    mappings = [d for d in docs if isinstance(d, dict) and "columns" in d]
    assert configs and mappings
    for doc in configs:
        assert schema_errors(ConfigDoc, doc) == []
    for doc in mappings:
        assert schema_errors(MappingDoc, doc) == []
