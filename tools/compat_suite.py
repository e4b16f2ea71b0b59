"""Run hother-cancelable's own test suite against cancelable_rx (the drop-in promise, measured).

    .venv/bin/python tools/compat_suite.py                   # both faces, both backends
    .venv/bin/python tools/compat_suite.py --face main --backend trio -k registry
    .venv/bin/python tools/compat_suite.py --ref /path/to/hother_cancelable-0.11.3

The reference's source distribution (0.11.3) holds its tests.  They are copied to a
temporary directory (never into this repository), their imports rewritten to
``cancelable_rx`` (the main face) or ``cancelable_rx.compat`` (the compatibility face;
``hother.cancelable.integrations.fastapi`` becomes ``cancelable_rx.integrations.web``), and
run with this venv's Python, on asyncio and on trio (the reference's conftest pins asyncio;
the copy takes the backend from the environment).  Nothing else in them is changed.

Each failure of the main face is classified, in this order:

* **deliberate** - listed in `DELIBERATE` with the row of ``docs/migration.md`` that gives
  the difference and its reason (a bug of the reference fixed, or a difference that only
  affects the reference's internals; never a shortcut);
* **private** - listed in `PRIVATE`: the test reads or writes an undocumented attribute of
  the reference with a leading underscore (``op._shields``, ``bridge._worker``...), named in
  the migration page's table of private internals with what to use instead;
* **typed** - it passes on the compatibility face: the one documented difference (leaving
  a cancelled operation raises a typed ``CancelationError``);
* **other** - anything else (the target: at most 5% of the tests run).

On the compatibility face every failure counts against its pass rate (the target: at least
95% of the tests run pass); its failures are split the same way (deliberate, private,
other), and the pass rate is also given over the tests that use no private attribute.

Tests that fail against the reference itself on a backend (`REFERENCE_FAILS`, measured
with the reference installed on Python 3.13) are not run on that backend.  The reference
is found with ``--ref``, ``$CANCELABLE_REF``, ``/tmp/ref/hother_cancelable-0.11.3``, or
downloaded with pip (``pip download --no-deps --no-binary :all: hother-cancelable==0.11.3``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compat_differences import DELIBERATE, PRIVATE, REFERENCE_FAILS  # noqa: E402 - the data beside this script

ROOT = Path(__file__).resolve().parent.parent
REF_VERSION = "0.11.3"
DEFAULT_REF = Path("/tmp/ref") / f"hother_cancelable-{REF_VERSION}"
BACKENDS = ("asyncio", "trio")
FACES = {"main": "cancelable_rx", "compat": "cancelable_rx.compat"}
_IMPORT = re.compile(r"^(\s*)from hother\.cancelable((?:\.\w+)*) import ", re.MULTILINE)
_CONFTEST_BACKEND = 'params=["asyncio"]'


def find_reference(given: str | None) -> Path:
    """The unpacked reference sdist: the argument, $CANCELABLE_REF, the default, or a download."""
    for candidate in (given, os.environ.get("CANCELABLE_REF"), str(DEFAULT_REF)):
        if candidate and (Path(candidate) / "tests").is_dir():
            return Path(candidate)
    cache = Path(tempfile.gettempdir()) / "cancelable_rx_ref"
    target = cache / f"hother_cancelable-{REF_VERSION}"
    if (target / "tests").is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"hother-cancelable=={REF_VERSION}", "-d", str(cache)],
        check=True,
    )
    (archive,) = cache.glob(f"hother_cancelable-{REF_VERSION}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return target


def rewrite_imports(text: str, package: str) -> str:
    """``from hother.cancelable[.sub] import X`` -> ``from <package> import X`` (the web
    integration keeps its own subpackage)."""

    def repl(match: re.Match[str]) -> str:
        indent, sub = match.group(1), match.group(2)
        if sub.startswith(".integrations"):
            return f"{indent}from cancelable_rx.integrations.web import "
        return f"{indent}from {package} import "

    return _IMPORT.sub(repl, text)


def prepare(ref: Path, face: str, workdir: Path) -> Path:
    """Copy the reference's tests into ``workdir`` with their imports rewritten (the
    ``reference`` face keeps them: it runs them against the reference itself)."""
    dest = workdir / face
    shutil.copytree(ref / "tests", dest / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (dest / "tests").rglob("*.py"):
        text = path.read_text()
        if face in FACES:
            text = rewrite_imports(text, FACES[face])
        if path.name == "conftest.py" and path.parent.name == "tests":
            if _CONFTEST_BACKEND not in text:
                raise SystemExit("the reference's conftest changed: cannot choose the backend")
            text = "import os\n" + text.replace(_CONFTEST_BACKEND, 'params=[os.environ["COMPAT_BACKEND"]]')
        path.write_text(text)
    ignore = "ignore::cancelable_rx.compat.CompatWarning" if face == "compat" else ""
    (dest / "pytest.ini").write_text(
        "[pytest]\n"
        "testpaths = tests\n"
        "xfail_strict = true\n"
        "timeout = 60\n"
        "filterwarnings =\n"  # the reference's own settings
        "    error\n"
        "    ignore:unclosed <socket:ResourceWarning\n"
        "    ignore:unclosed event loop:ResourceWarning\n"
        "    ignore::DeprecationWarning:pydantic.*\n"
        + (f"    {ignore}\n" if ignore else "")
    )
    return dest


def run(dest: Path, backend: str, selection: str | None, python: str = sys.executable) -> dict[str, str]:
    """Run the copied tests on ``backend``; returns ``{test id: passed|failed|skipped}``."""
    report = dest / f"junit-{backend}.xml"
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--continue-on-collection-errors", f"--junitxml={report}", "-o", "junit_family=xunit2"]
    if selection:
        cmd += ["-k", selection]
    env = {**os.environ, "COMPAT_BACKEND": backend}
    if python == sys.executable:
        env["PYTHONPATH"] = str(ROOT)
    subprocess.run(cmd, cwd=dest, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        if not case.get("classname"):  # a module that could not be imported
            outcomes[case.get("name", "?").replace(".", "/") + ".py::<import>"] = "failed"
            continue
        test_id = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        test_id = test_id.replace(f"[{backend}]", "")
        if case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[test_id] = "failed"
        else:
            outcomes[test_id] = "passed"
    return outcomes


def _normalise(test_id: str) -> str:
    """junit's classname joins the class to the module with a dot: put it back as ``::``."""
    module, _, name = test_id.partition(".py::")
    parts = module.split("/")
    cls = [p for p in parts if p[:1].isupper()]
    path = "/".join(p for p in parts if not p[:1].isupper())
    return f"{path}.py::" + "::".join([*cls, name])


def _row(table: dict[str, str], test_id: str) -> str | None:
    for pattern, row in table.items():
        if re.search(pattern, test_id):
            return row
    return None


def deliberate_row(test_id: str) -> str | None:
    return _row(DELIBERATE, test_id)


def private_row(test_id: str) -> str | None:
    return _row(PRIVATE, test_id)


KINDS = ("passed", "typed", "deliberate", "private", "other", "skipped", "not run")


def classify(main: dict[str, str], compat: dict[str, str] | None, backend: str) -> dict[str, list[str]]:
    """Split a face's results into passed / deliberate / private / typed / other (skipped and
    reference failures aside).  Without ``compat`` (the compatibility face itself) nothing is
    "typed"."""
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    for test_id, outcome in sorted(main.items()):
        if any(re.search(p, test_id) for p in REFERENCE_FAILS.get(backend, ())):
            out["not run"].append(test_id)
        elif outcome in ("passed", "skipped"):
            out[outcome].append(test_id)
        elif deliberate_row(test_id) is not None:
            out["deliberate"].append(test_id)
        elif private_row(test_id) is not None:
            out["private"].append(test_id)
        elif compat is not None and compat.get(test_id) == "passed":
            out["typed"].append(test_id)
        else:
            out["other"].append(test_id)
    return out


def check_rows() -> list[str]:
    """Rows named in `DELIBERATE` or `PRIVATE` that ``docs/migration.md`` does not have (as the
    start of a table row)."""
    page = (ROOT / "docs" / "migration.md").read_text()
    return sorted({row for row in (*DELIBERATE.values(), *PRIVATE.values()) if f"| {row}" not in page})


def reference_failures(ref: Path, python: str, selection: str | None) -> int:
    """Run the reference's tests against the reference itself on each backend; print what fails."""
    with tempfile.TemporaryDirectory(prefix="compat-suite-") as tmp:
        dest = prepare(ref, "reference", Path(tmp))
        for backend in BACKENDS:
            outcomes = {_normalise(k): v for k, v in run(dest, backend, selection, python).items()}
            failed = sorted(k for k, v in outcomes.items() if v == "failed")
            print(f"reference {backend}: {len(outcomes)} tests, {len(failed)} failed")
            for test_id in failed:
                print(f"    {test_id}")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", help="the unpacked reference sdist")
    parser.add_argument("--face", choices=("main", "compat", "both"), default="both")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument("-k", dest="selection", help="pytest -k expression")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the failing tests")
    parser.add_argument("--keep", metavar="DIR", help="prepare the copies in DIR and keep them (to rerun by hand)")
    parser.add_argument("--reference-python", metavar="PYTHON",
                        help="run the unmodified tests with this Python (hother-cancelable installed) and list "
                             "the failures (to refresh REFERENCE_FAILS)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    ref = find_reference(args.ref)
    if args.reference_python:
        return reference_failures(ref, args.reference_python, args.selection)
    faces = list(FACES) if args.face == "both" else [args.face]
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    missing = check_rows()
    if missing:
        print("rows missing from docs/migration.md:", *missing, sep="\n  ")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="compat-suite-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        if args.keep:
            for face in faces:
                shutil.rmtree(workdir / face, ignore_errors=True)
        dests = {face: prepare(ref, face, workdir) for face in faces}
        for backend in backends:
            results = {face: {_normalise(k): v for k, v in run(dests[face], backend, args.selection).items()}
                       for face in faces}
            for face in faces:
                split = classify(results[face], results.get("compat") if face == "main" else None, backend)
                run_count = sum(len(v) for k, v in split.items() if k != "not run")
                passed = len(split["passed"])
                counts = ", ".join(f"{k} {len(v)}" for k, v in split.items() if v or k in ("passed", "other"))
                share = len(split["other"]) / run_count if run_count else 0.0
                if face == "compat":  # on this face every failure counts against the pass rate
                    public = run_count - len(split["private"])
                    rates = (f"pass {passed / run_count:.1%} of all, {passed / public:.1%} of the {public} "
                             "that use no private attribute")
                else:
                    rates = f"pass {passed / run_count:.1%}, fail otherwise {share:.1%}"
                    worst = max(worst, share)
                print(f"{face:6} {backend:7} tests run {run_count}: {counts} ({rates})")
                if args.verbose:
                    for kind in ("typed", "deliberate", "private", "other"):
                        for test_id in split[kind]:
                            row = deliberate_row(test_id) if kind == "deliberate" else private_row(test_id)
                            print(f"    {kind:10} {test_id}" + (f"  [{row}]" if row and kind != "typed" else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
