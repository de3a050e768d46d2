"""Dependencies point inward: nlu/ imports nothing from bot/ or flows/, flows/
imports nothing from bot/. Checked on the AST of every module, so imports
inside functions, relative imports and importlib.import_module("...") count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"nlu": ("bot", "flows"), "flows": ("bot",)}


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names imported by `source`, a module of the package `package`
    (dotted name of the package that contains the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (
                called in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def package_of(path: Path) -> str:
    # The package a module's relative imports start from; for __init__.py
    # that is the package itself, for any other module its parent.
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_inward(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules found in {package}/"
    violations = []
    for path in modules:
        source = path.read_text(encoding="utf-8")
        for name in imported_modules(source, package_of(path)):
            if name.split(".")[0] in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert violations == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("import bot.app", "bot.app"),
        ("from bot.cli.common import CliError", "bot.cli.common"),
        ("def f():\n    from flows import store", "flows"),
        ("from ...flows import store", "flows"),
        ("from ... import bot", "bot"),
        ("from ..tokenizer import Tokenizer", "nlu.tokenizer"),
        ("import importlib\nimportlib.import_module('flows.store')", "flows.store"),
    ],
)
def test_the_walker_sees_every_form_of_import(source: str, caught: str) -> None:
    # Without this, a walker that missed relative or nested imports would pass vacuously.
    assert caught in imported_modules(source, "nlu.sub")
