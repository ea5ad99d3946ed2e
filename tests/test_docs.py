"""The documentation stays short, true to CI and linked: README size and set-up commands, relative links and their
anchors, the normative method page, and the generated part of benchmarks/README.md."""

from __future__ import annotations

import ast
import dataclasses
import glob
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CI_SCRIPT = os.path.join(ROOT, ".ci", "run")
METHOD = os.path.join(ROOT, "docs", "method.md")
DOC_FILES = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
             os.path.join(ROOT, "benchmarks", "README.md")]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def ci_commands(marker: str) -> list:
    """The commands of the lines of .ci/run that contain ``marker``, in order."""
    return [line.strip() for line in read(CI_SCRIPT).splitlines() if marker in line and not line.startswith("#")]


def ci_command(marker: str) -> str:
    """The command of the one line of .ci/run that contains ``marker``."""
    lines = ci_commands(marker)
    assert len(lines) == 1, f".ci/run should have one line running {marker!r}, found {lines}"
    return lines[0]


def without_quiet(command: str) -> str:
    """The command without pip's ``-q`` (CI installs quietly; the README shows the plain command)."""
    return re.sub(r" -q(?= )", "", command)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: str) -> set:
    text = FENCE.sub("", read(path))
    return {slug(match) for match in re.findall(r"^#+\s+(.*)$", text, re.M)}


def relative_links(path: str) -> list:
    text = FENCE.sub("", read(path))
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:", target)]


def test_readme_is_short():
    size = os.path.getsize(README)
    assert size <= 12_000, f"README.md is {size} bytes; keep it under 12,000 and move details to docs/"


def test_readme_holds_the_install_command_ci_runs():
    install = ci_command("pip install")
    assert "-e" in install and ".[vision,dev,demo]" in install
    assert "mpnet" not in install  # the 440 MB packaged MPNet is opt-in, never part of the set-up
    readme = read(README)
    assert without_quiet(install) in readme, f"README must show .ci/run's install command: {without_quiet(install)}"
    # the main job CI runs first (shrunk with --smoke) is the README's first command; later ones are other tasks'
    distill = ci_commands("hf-spectralkd distill")[0]
    recipe = re.search(r"--config (\S+)", distill).group(1)
    first = next(line for line in readme.splitlines() if without_quiet(install) in line)
    assert f"hf-spectralkd distill --config {recipe}" in first


def test_readme_holds_the_test_command_ci_runs():
    command = ci_command("python -m pytest")
    assert "HF_HUB_OFFLINE=1" in command and "-p no:cacheprovider" in command
    assert command in read(README), f"README must show .ci/run's test command: {command}"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_point_to_existing_files_and_anchors(path):
    assert os.path.isfile(path)
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(destination):
            broken.append(f"{target} (no file {os.path.relpath(destination, ROOT)})")
        elif anchor and destination.endswith(".md") and anchor not in anchors(destination):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{os.path.relpath(path, ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_python_snippets_parse(path):
    for block in re.findall(r"^```python\n(.*?)^```", read(path), re.S | re.M):
        ast.parse(block)


def test_method_page_defines_the_math():
    text = read(METHOD)
    for heading in ("Spectral intensity", "What spectral intensity measures on text", "Spectral entropy",
                    "Layer selection", "Frequency-alignment loss", "Alignment terms", "Total loss", "Defaults"):
        assert re.search(rf"^## {heading}", text, re.M), f"docs/method.md has no '## {heading}' section"
    assert "L = (1-α)·CE(student_logits, y) + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) + β·L_align" in text
    for definition in ("F[n,t,k] = (1/D)", "S[k] = Σ_{n,t} M[n,t]·|F[n,t,k]|", "I = (1/D) · Σ_{k=0}^{D-1} S[k]",
                       'rfft(Xs_i, axis=tokens, norm="ortho")', "H = −Σ_k p_k·log p_k / log(D−1)",
                       "z = (x − mean(x)) / √(var(x) + ε)"):
        assert definition in text


def test_method_defaults_match_the_config():
    from transformers import TrainingArguments

    from hf_spectralkd import SpectralDistillationConfig

    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", read(METHOD), re.M))
    fields = {f.name: f.default for f in dataclasses.fields(SpectralDistillationConfig)}
    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    own = [name for name in fields if name not in inherited]
    assert set(own) <= set(rows), f"docs/method.md's defaults table misses {sorted(set(own) - set(rows))}"
    for name in own:
        assert rows[name] == str(fields[name]), f"{name}: docs/method.md says {rows[name]}, the config {fields[name]}"


def test_benchmarks_readme_tables_are_the_generated_ones():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks import summarize

    assert not os.path.exists(os.path.join(ROOT, "benchmarks", "README_section.md"))
    speed, quality_sets = summarize.collect()
    assert summarize.generated_part() == summarize.tables(speed, quality_sets), (
        "benchmarks/README.md's tables are out of date: run python benchmarks/summarize.py")
