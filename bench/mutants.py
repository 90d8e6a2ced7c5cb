"""Mutation testing of key modules: apply plausible one-line bugs one at a time and see whether the tests notice.

    DEEPMF_DATA=../shared/data python bench/mutants.py                       # every module in TARGETS
    python bench/mutants.py --module src/deepmf/evaluation/ranking.py        # one of them
    python bench/mutants.py --module src/deepmf/data/idmap.py --tests tests/test_idmap.py,tests/test_ratings.py
    python bench/mutants.py --list --module src/deepmf/data/splits.py        # the mutants, without running

Each mutant is the module with one node of its syntax tree changed (the mutations, by kind):

- ``compare``: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``is`` <-> ``is not``
- ``arith``: ``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``%`` -> ``*``
- ``mask``: ``a & b`` -> ``a`` and -> ``b`` (a dropped mask), ``a | b`` -> ``a & b``
- ``bool``: ``and`` <-> ``or``; ``not x`` -> ``x``; ``-x`` -> ``x``; ``True`` <-> ``False``
- ``off-by-one``: an integer literal n -> n + 1 and n -> n - 1; a slice bound b -> b + 1 and b -> b - 1
- ``swap``: a name or attribute spelt with ``user`` spelt with ``item`` instead, and the other way round
  (``users`` -> ``items``, ``n_items`` -> ``n_users``)

Docstrings, type annotations, decorators and error-message f-strings are left alone, and so is any line marked
``# no mutate``. The module's tests run once per mutant, stopping at the first failure; a mutant that makes them
fail, crash or run past the time limit is *killed*, one they pass *survives*. A survivor is a bug the tests
would not notice, or an equivalent mutant (the same behaviour written differently): read each one. Each mutant
runs in a child forked from one process that has imported the package once (POSIX only), with the mutation
patched into the child's loaded module; no file is edited.

Hand-written because mutmut, the maintained tool, runs every listed module against one test command and routes
calls through trampolines that numba-compiled functions cannot take; here each module is paired with the test
files that should catch its bugs, and the code under test runs unchanged apart from the one mutation.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import signal
import time
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Module -> the test files that should kill its mutants.
TARGETS: dict[str, tuple[str, ...]] = {
    "src/deepmf/evaluation/metrics.py": ("tests/test_metrics.py",),
    "src/deepmf/evaluation/ranking.py": ("tests/test_ranking.py", "tests/test_recommender.py"),
    "src/deepmf/data/splits.py": ("tests/test_splits.py",),
    "src/deepmf/data/idmap.py": ("tests/test_idmap.py", "tests/test_ratings.py"),
    "src/deepmf/recommender/ranking.py": ("tests/test_recommender.py",),
    "src/deepmf/recommender/predictions.py": ("tests/test_recommender.py",),
}

BROKEN = 99  # a child's exit code when the mutated module raised on import

_COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                  ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_ARITH_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
                ast.Mod: ast.Mult}


@dataclass
class Mutant:
    """One mutation: where, what kind, the source line before and after."""

    module: str
    line: int
    kind: str
    before: str
    after: str
    source: str = ""  # the whole mutated module (not reported)
    outcome: str = ""  # "killed", "survived", "timeout" or "broken"


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes not to mutate: docstrings, annotations, decorators, f-strings (error messages) and what
    they hold."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                roots.append(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, ast.AnnAssign):
            roots.append(node.annotation if node.value is not None else node)  # a bare declaration: all of it
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            roots += node.decorator_list  # applied once, when the class or function is made
        if isinstance(node, ast.JoinedStr):
            roots.append(node)
    return {id(child) for root in roots for child in ast.walk(root)}


def _identifiers(tree: ast.Module) -> set[str]:
    """Every name, argument, attribute and function name spelt in the module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        for field in ("id", "arg", "attr", "name"):
            value = getattr(node, field, None)
            if isinstance(value, str):
                found.add(value)
    return found


def _variants(node: ast.AST, identifiers: set[str]) -> Iterator[tuple[str, ast.AST]]:
    """(kind, replacement node) for each mutation of ``node`` alone.

    A user/item swap is made only to a name the module spells somewhere, so it is a plausible slip rather
    than a NameError.
    """

    def copy() -> ast.AST:
        return ast.parse(ast.unparse(node), mode="eval").body

    if isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            if type(op) in _COMPARE_SWAPS:
                new = copy()
                new.ops[position] = _COMPARE_SWAPS[type(op)]()
                yield "compare", new
    elif isinstance(node, ast.BinOp):
        if type(node.op) in _ARITH_SWAPS:
            new = copy()
            new.op = _ARITH_SWAPS[type(node.op)]()
            yield "arith", new
        elif isinstance(node.op, ast.BitAnd):
            yield "mask", node.left
            yield "mask", node.right
        elif isinstance(node.op, ast.BitOr):
            yield "mask", ast.BinOp(node.left, ast.BitAnd(), node.right)
    elif isinstance(node, ast.BoolOp):
        yield "bool", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield "bool", node.operand
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield "bool", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield "off-by-one", ast.Constant(node.value + 1)
        yield "off-by-one", ast.Constant(node.value - 1)
    elif isinstance(node, ast.Slice):
        for bound in ("lower", "upper"):
            if getattr(node, bound) is not None:
                for op in (ast.Add(), ast.Sub()):
                    new = ast.Slice(node.lower, node.upper, node.step)
                    setattr(new, bound, ast.BinOp(getattr(node, bound), op, ast.Constant(1)))
                    yield "off-by-one", new
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    if name is not None and ("user" in name) != ("item" in name):
        swapped = name.replace("user", "item") if "user" in name else name.replace("item", "user")
        if swapped not in identifiers:
            return
        if isinstance(node, ast.Name):
            yield "swap", ast.Name(swapped, node.ctx)
        else:
            yield "swap", ast.Attribute(node.value, swapped, node.ctx)


def _offset(lines: list[str], line: int, col: int) -> int:
    """Character offset of (1-based line, UTF-8 byte column) in the text split into ``lines``."""
    before = sum(len(text) for text in lines[: line - 1])
    return before + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8"))


def mutants_of(module: str) -> list[Mutant]:
    """Every mutant of ``module`` (a path relative to the repository root), in source order."""
    text = (REPO_ROOT / module).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    skipped = _skipped_nodes(tree)
    identifiers = _identifiers(tree)
    found: list[Mutant] = []
    for node in ast.walk(tree):
        if id(node) in skipped or not hasattr(node, "end_col_offset") or node.end_lineno != node.lineno:
            continue  # one-line mutations only: a node spanning lines is mutated through its parts
        if "# no mutate" in lines[node.lineno - 1]:
            continue
        start = _offset(lines, node.lineno, node.col_offset)
        end = _offset(lines, node.end_lineno, node.end_col_offset)
        for kind, replacement in _variants(node, identifiers):
            snippet = ast.unparse(replacement)
            if isinstance(node, ast.Slice):
                snippet = snippet.strip("()")
            elif not isinstance(replacement, (ast.Name, ast.Constant, ast.Attribute)):
                snippet = f"({snippet})"  # keeps the precedence the node had where it stood
            source = text[:start] + snippet + text[end:]
            try:
                ast.parse(source)
            except SyntaxError:
                continue
            after = source.splitlines()[node.lineno - 1]
            found.append(Mutant(module, node.lineno, kind, lines[node.lineno - 1].rstrip("\n"), after, source))
    found.sort(key=lambda m: (m.line, m.kind, m.after))
    return found


def _patch_function(old: object, new: object) -> bool:
    """Give ``old`` (a function, or a property / static / class method / decorator wrapping one) ``new``'s code.

    Patching the code object in place reaches every reference to the function: other modules that imported
    it by name, subclasses that inherit it, tests that hold it.
    """
    if isinstance(old, property) and isinstance(new, property):
        pairs = [(old.fget, new.fget), (old.fset, new.fset)]
        return all(_patch_function(a, b) for a, b in pairs if a is not None and b is not None)
    if isinstance(old, (staticmethod, classmethod)) and isinstance(new, (staticmethod, classmethod)):
        return _patch_function(old.__func__, new.__func__)
    if hasattr(old, "__wrapped__") and hasattr(new, "__wrapped__"):
        return _patch_function(old.__wrapped__, new.__wrapped__)
    if isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType):
        try:
            old.__code__ = new.__code__
        except ValueError:  # different closure variables: cannot be patched in place
            return False
        old.__defaults__, old.__kwdefaults__ = new.__defaults__, new.__kwdefaults__
        return True
    return False


def _apply(module: types.ModuleType, source: str) -> None:
    """Run the mutated ``source`` of an imported ``module`` and carry its changes into the live objects."""
    fresh: dict[str, object] = {"__name__": module.__name__, "__file__": module.__file__,
                                "__package__": module.__package__, "__spec__": module.__spec__}
    exec(compile(source, module.__file__, "exec"), fresh)
    for name, new in fresh.items():
        old = module.__dict__.get(name)
        if name.startswith("__") or old is new:
            continue
        if isinstance(new, type) and isinstance(old, type) and new.__module__ == module.__name__:
            for attr, new_attr in new.__dict__.items():
                if not _patch_function(old.__dict__.get(attr), new_attr) and not attr.startswith("__"):
                    setattr(old, attr, new_attr)  # a class constant
        elif not _patch_function(old, new):
            module.__dict__[name] = new  # a module constant


def _test_in_child(module: types.ModuleType | None, source: str, tests: tuple[str, ...], timeout: float) -> str:
    """Fork; the child applies the mutation (if any) and runs pytest.

    Returns:
        "killed", "survived", "timeout", or "broken" when the mutated module does not even run (a mutant no
        test is needed to catch; not counted).
    """
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            if module is not None:
                try:
                    _apply(module, source)
                except Exception:
                    code = BROKEN
                    raise
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return "survived" if code == 0 else "broken" if code == BROKEN else "killed"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)


def run_module(module: str, tests: tuple[str, ...], say=print) -> list[Mutant]:
    """Run ``tests`` against each mutant of ``module``; each Mutant's ``outcome`` is filled in.

    The package, torch, pytest and the test modules are imported once here; each mutant runs in a forked
    child, which patches the mutation into its copy of the imported module, so a mutant costs the tests' time,
    not an interpreter's start and imports (seconds on a busy machine). The parent's code is never mutated.
    """
    from hypothesis import settings

    # Reproducible examples and no example database: each child is a fresh run of the same tests.
    settings.register_profile("mutants", derandomize=True, database=None)
    settings.load_profile("mutants")
    name = ".".join(Path(module).with_suffix("").parts[1:])  # src/deepmf/data/idmap.py -> deepmf.data.idmap
    live = importlib.import_module(name)
    if Path(live.__file__).resolve() != (REPO_ROOT / module).resolve():
        raise SystemExit(f"{name} is imported from {live.__file__}, not this tree: run with PYTHONPATH=src")
    import pytest

    # Collecting here imports the test modules (and all they import) once, for every child to inherit: a
    # quarter of the time per mutant on the recommender's tests.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *tests])
    mutants = mutants_of(module)
    started = time.perf_counter()
    if _test_in_child(None, "", tests, timeout=600) != "survived":
        raise SystemExit(f"{', '.join(tests)} fail without any mutation: fix them first")
    timeout = max(30.0, 4 * (time.perf_counter() - started))
    for number, mutant in enumerate(mutants, 1):
        mutant.outcome = _test_in_child(live, mutant.source, tests, timeout)
        say(f"  [{number}/{len(mutants)}] {mutant.outcome:8} {module}:{mutant.line} {mutant.kind}")
    return mutants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--module", action="append", help="module to mutate (default: every one in TARGETS)")
    parser.add_argument("--tests", help="comma-separated test files (default: the module's in TARGETS)")
    parser.add_argument("--list", action="store_true", help="print the mutants without running the tests")
    parser.add_argument("--json", type=Path, help="also write every mutant and its outcome to this file")
    args = parser.parse_args()
    modules = args.module or list(TARGETS)
    report: list[dict[str, object]] = []
    for module in modules:
        if args.list:
            for mutant in mutants_of(module):
                print(f"{module}:{mutant.line} {mutant.kind}: {mutant.after.strip()}")
            continue
        tests = tuple(args.tests.split(",")) if args.tests else TARGETS.get(module)
        if not tests:
            raise SystemExit(f"no test files known for {module}: pass --tests")
        print(f"{module} against {', '.join(tests)}", flush=True)
        mutants = run_module(module, tests, say=lambda line: print(line, flush=True))
        survivors = [m for m in mutants if m.outcome == "survived"]
        counted = [m for m in mutants if m.outcome != "broken"]
        print(f"{module}: {len(counted)} mutants, {len(counted) - len(survivors)} killed, "
              f"{len(survivors)} survived ({len(mutants) - len(counted)} broken on import, not counted)")
        for mutant in survivors:
            print(f"  SURVIVED {module}:{mutant.line} {mutant.kind}\n    - {mutant.before.strip()}\n"
                  f"    + {mutant.after.strip()}")
        report += [{k: v for k, v in asdict(m).items() if k != "source"} for m in mutants]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
