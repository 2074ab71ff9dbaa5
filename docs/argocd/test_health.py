#!/usr/bin/env python3
"""Runs Barrage's Argo CD health checks against their sample statuses, with a
real Lua 5.1 interpreter, the way Argo CD's own tests run its built-in checks.

    python3 docs/argocd/test_health.py [-k SUBSTRING] [-v]

Layout (Argo CD's resource_customizations layout): for each GROUP/KIND under
docs/argocd/, a health.lua, a health_test.yaml listing
{healthStatus: {status, message}, inputPath} and the inputs in testdata/.
Each input is converted to a Lua table bound to the global `obj` (as Argo CD
does from the object's JSON: numbers are floats, null is nil), the script
runs, and the returned `hs.status` and `hs.message` must equal the expected
ones exactly.

Needs `lua5.1` on PATH (Debian: `apt-get install -y lua5.1`) and PyYAML.
Prints one line per case, then "N passed, N failed"; exits 1 if any failed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from typing import Any

try:
    import yaml
except ImportError:  # CI machines have it; a bare Python may not.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "pyyaml"], check=True)
    import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# What Argo CD accepts from a health check.
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


class Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: timestamps stay strings."""


Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def lua_string(s: str) -> str:
    out = ['"']
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b}")  # Lua 5.1: decimal byte escapes
    out.append('"')
    return "".join(out)


def lua_value(v: Any) -> str:
    """A Lua 5.1 literal of a JSON-like value, as Argo CD hands it over."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return lua_string(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, dict):
        items = [f"[{lua_string(str(k))}] = {lua_value(x)}" for k, x in v.items() if x is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot pass {type(v).__name__} to Lua")


def find_lua() -> str:
    for name in ("lua5.1", "lua"):
        path = shutil.which(name)
        if path:
            version = subprocess.run([path, "-v"], capture_output=True, text=True)
            if "Lua 5.1" in version.stdout + version.stderr:
                return path
    sys.exit("no Lua 5.1 interpreter: apt-get install -y lua5.1")


def run_check(lua: str, script: str, obj: Any) -> tuple[str, str]:
    """The health check's (status, message) for `obj`."""
    harness = "\n".join(
        [
            f"obj = {lua_value(obj)}",
            f"local check = assert(loadfile({lua_string(script)}))",
            "local hs = check()",
            "assert(type(hs) == 'table', 'the check returned ' .. type(hs))",
            "io.write(tostring(hs.status), '\\0', tostring(hs.message))",
        ]
    )
    p = subprocess.run([lua, "-"], input=harness.encode(), capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"lua failed: {p.stderr.decode(errors='replace').strip()}")
    status, _, message = p.stdout.decode("utf-8").partition("\0")
    return status, message


def cases() -> list[tuple[str, str, dict, str]]:
    """(name, health.lua, test entry, input path) for every check's tests."""
    out = []
    for test_file in sorted(glob.glob(os.path.join(HERE, "*", "*", "health_test.yaml"))):
        folder = os.path.dirname(test_file)
        script = os.path.join(folder, "health.lua")
        kind = os.path.relpath(folder, HERE)
        for t in load(test_file)["tests"]:
            out.append((f"{kind}: {t['inputPath']}", script, t, os.path.join(folder, t["inputPath"])))
    return out


def check_layout() -> list[str]:
    """Problems with the layout itself: a check without tests, a sample no
    test uses, an expected status Argo CD does not know."""
    problems = []
    folders = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(HERE, "*", "*", "health.lua"))})
    if len(folders) < 2:
        problems.append(f"expected the LoadTest and ScheduledLoadTest checks, found {folders}")
    for folder in folders:
        test_file = os.path.join(folder, "health_test.yaml")
        if not os.path.exists(test_file):
            problems.append(f"{folder}: no health_test.yaml")
            continue
        tests = load(test_file)["tests"]
        used = {os.path.normpath(os.path.join(folder, t["inputPath"])) for t in tests}
        for sample in glob.glob(os.path.join(folder, "testdata", "*.yaml")):
            if os.path.normpath(sample) not in used:
                problems.append(f"{sample}: no test uses it")
        for t in tests:
            if t["healthStatus"]["status"] not in STATUSES:
                problems.append(f"{folder}: {t['inputPath']}: {t['healthStatus']['status']!r} is not an Argo CD health status")
    return problems


def main() -> int:
    args = sys.argv[1:]
    verbose = "-v" in args
    only = args[args.index("-k") + 1] if "-k" in args else None
    lua = find_lua()
    passed = failed = 0
    for problem in check_layout():
        print(f"FAIL layout: {problem}")
        failed += 1
    for name, script, t, path in cases():
        if only and only not in name:
            continue
        want = (t["healthStatus"]["status"], t["healthStatus"].get("message", ""))
        try:
            got = run_check(lua, script, load(path))
            assert got == want, f"got {got!r}, want {want!r}"
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            print(f"FAIL {name}: {e}")
            failed += 1
            continue
        passed += 1
        print(f"ok   {name}" + (f" -> {got[0]}: {got[1]}" if verbose else ""))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
