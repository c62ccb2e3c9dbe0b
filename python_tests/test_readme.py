"""The README's examples and the public docstrings' examples run as written."""
from __future__ import annotations

import doctest
import pathlib
import re

import pytest

import weightmem_fast.ops.distances
import weightmem_fast.ops.iou
import weightmem_fast.ops.neighbors

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples_and_commands():
    text = README.read_text()
    assert python_blocks()
    assert "pip install torch==2.13.0 && pip install \".[test]\"" in text
    assert "\npytest\n" in text


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index):
    block = python_blocks()[index]
    assert "assert " in block  # every example checks what it claims, so running it is a test
    exec(compile(block, f"README.md[python block {index}]", "exec"), {})


@pytest.mark.parametrize(
    "module", [weightmem_fast.ops.neighbors, weightmem_fast.ops.distances, weightmem_fast.ops.iou]
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0
