"""The docs point at things that exist: every `make <target>` is a Makefile target, every repository path
and `python -m` module is in the tree; the README stays short and opens with the two commands."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "shoeseg/weights/MODEL_CARD.md"]
# What the commands in the docs create (git-ignored), so they are not in a fresh clone.
GENERATED = (
    "runs/",
    "model_store/",
    ".serve/",
    ".venv/",
    ".gpudata",
    "shoeseg/client/proto_gen/",
    "reports/options/",
    "build/",
)
CHECKED_SUFFIXES = (".py", ".yaml", ".md", ".toml", ".properties", ".proto")  # bare names; outputs like x.png are not
SKIPPED_DIRS = {".git", ".venv", "runs", "model_store", ".serve", "__pycache__", "node_modules"}


def code_of(text: str) -> list[str]:
    """The fenced blocks and inline code spans of a Markdown text."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def links_of(text: str) -> list[str]:
    """Markdown link and image targets that are not URLs or anchors."""
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t and not t.startswith("#")]


@cache
def make_targets() -> set[str]:
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        rule = re.match(r"^([\w.-]+(?:[ \t]+[\w.-]+)*)[ \t]*:(?!=)", line)
        if rule and not line.startswith("\t"):
            targets |= set(rule[1].split())
    return targets


def make_calls(code: str) -> list[str]:
    """The target of each ``make ...`` command (its first word that is no VAR=value or flag)."""
    called = []
    for words in re.findall(r"(?:^|[\s;&|(])make((?:[ \t]+[^\s;&|#`]+)+)", code):
        target = next((w for w in words.split() if "=" not in w and not w.startswith("-")), None)
        if target and (name := re.match(r"[\w.-]*\w", target)):
            called.append(name[0])
    return called


@cache
def tree_names() -> set[str]:
    """Every file and folder name in the checkout (outside generated folders)."""
    names = set()
    for _folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        names |= set(dirs) | set(files)
    return names


def path_problems(token: str, top_level: set[str], names: set[str]) -> str | None:
    """Why a path-looking token from a doc's code does not exist in the tree, or None."""
    token = token.rstrip(".,:;)")
    if not token or any(c in token for c in "<>*{}$~") or "://" in token or token.startswith(("/", "../")):
        return None
    if token.startswith(GENERATED):
        return None
    if "/" in token:
        if token.split("/")[0] not in top_level:  # a user's file or a data folder, e.g. photos/, bench/white
            return None
        return None if (REPO / token).exists() else f"{token}: no such path in the repository"
    if token.endswith(CHECKED_SUFFIXES) and token not in names:
        return f"{token}: no file of that name in the repository"
    return None


def module_problems(code: str) -> list[str]:
    problems = []
    for module in re.findall(r"-m\s+((?:shoeseg|benchmarks|evaluation)(?:\.\w+)*)", code):
        base = REPO / module.replace(".", "/")
        if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
            problems.append(f"python -m {module}: no such module")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_make_target_path_and_module_in_the_docs_exists(doc: Path) -> None:
    text = doc.read_text()
    targets, top_level, names = make_targets(), set(os.listdir(REPO)), tree_names()
    problems = []
    for code in code_of(text):
        problems += [f"make {t}: no such Makefile target" for t in make_calls(code) if t not in targets]
        problems += [p for token in re.findall(r"[\w.*<>/-]+", code) if (p := path_problems(token, top_level, names))]
        problems += module_problems(code)
    for link in links_of(text):
        if not (doc.parent / link.split("#")[0]).exists():
            problems.append(f"link {link}: no such file")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_should() -> None:
    top_level, names = set(os.listdir(REPO)), tree_names()
    assert make_calls("make serve WEIGHTS=x  # and\nmake -n train; make PEERS=1 eval") == ["serve", "train", "eval"]
    assert {"serve", "test", "train", "train-plan"} <= make_targets()
    assert path_problems("docs/nothing.md", top_level, names) and path_problems("nothing_here.py", top_level, names)
    assert not path_problems("shoeseg/weights/resunet.pth", top_level, names)
    assert not path_problems("runs/stage1/best_model.pth", top_level, names)  # made by make train
    assert not path_problems("photos/1.jpg", top_level, names)  # the user's own files
    assert module_problems("python -m shoeseg.nothing") and not module_problems("python -m shoeseg.training.train")


def test_the_readme_is_short_and_opens_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 220
    first_block = "\n".join(lines[: lines.index("```", lines.index("```bash") + 1)])
    assert first_block.index("make serve") < first_block.index("make test")
    assert lines.index("```bash") < 5
