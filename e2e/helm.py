#!/usr/bin/env python3
"""The project's one way to run Helm: a thin CLI over helm-python-sdk.

There is no helm binary in any registry these machines reach; the PyPI package
helm-python-sdk embeds the Helm v4 library instead. Tests call this script, so the
SDK's API is touched in one place only.

    python3 e2e/helm.py lint      CHART [-f VALUES] [--set K=V] [--strict]
    python3 e2e/helm.py render    CHART [-f VALUES] [--set K=V] [--name R] [-n NS]
    python3 e2e/helm.py install   CHART RELEASE [-f VALUES] [--set K=V] [-n NS] [--create-namespace] [--wait] [--timeout S]
    python3 e2e/helm.py upgrade   CHART RELEASE [...same as install...]
    python3 e2e/helm.py uninstall RELEASE [-n NS] [--wait] [--timeout S]
    python3 e2e/helm.py test      RELEASE [-n NS] [--timeout S] [--logs]
    python3 e2e/helm.py list      [-n NS]

Cluster commands use --kubeconfig, else $KUBECONFIG, else ~/.kube/config.
Exit status: 0 ok, 1 lint errors or a Helm failure, 2 usage/setup problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

SDK_PIN = "helm-python-sdk==0.2.2"

try:
    import helm_python
except ImportError:  # say how to fix it, instead of a traceback
    sys.stderr.write(f"helm.py: the Helm SDK is missing; install it with: python3 -m pip install '{SDK_PIN}'\n")
    sys.exit(2)

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge like Helm does for -f/--set: nested maps merge, everything else overrides."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def user_values(args: argparse.Namespace) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    for path in args.values or []:
        with open(path, encoding="utf-8") as f:
            values = deep_merge(values, helm_python.values_from_yaml(f.read()) or {})
    for expr in args.set or []:
        values = deep_merge(values, helm_python.parse_set_string(expr))
    return values or None


def config(args: argparse.Namespace) -> "helm_python.Config":
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    return helm_python.Config(kubeconfig_path=kubeconfig, namespace=args.namespace)


def cmd_lint(args: argparse.Namespace) -> int:
    report = helm_python.lint(args.chart, user_values(args), strict=args.strict or None, namespace=args.namespace)
    worst = 0
    for msg in report.get("messages") or []:
        sev = int(msg.get("severity", 0))
        worst = max(worst, sev)
        print(f"[{SEVERITY.get(sev, sev)}] {msg.get('path', '')}: {msg.get('error', '')}")
    errors = report.get("errors") or []
    for err in errors:
        print(f"[ERROR] {err}")
    failed = bool(errors) or worst >= 3 or (args.strict and worst >= 2)
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    chart = helm_python.Chart.load(args.chart)
    manifests = chart.render(user_values(args), name=args.name, namespace=args.namespace, is_install=True)
    # One YAML stream, in a stable order, like `helm template`.
    for path in sorted(manifests):
        body = manifests[path].strip()
        # NOTES.txt is text for humans, not a manifest: `helm template` leaves it out too.
        if body and not path.endswith("NOTES.txt"):
            print(f"---\n# Source: {path}\n{body}")
    return 0


def release_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "namespace": args.namespace,
        "timeout": args.timeout,
        # "watcher" waits until every resource is ready (Helm v4's kstatus watcher).
        "wait": "watcher" if args.wait else None,
    }


def cmd_install(args: argparse.Namespace) -> int:
    rel = config(args).install(
        args.chart, args.release, user_values(args), create_namespace=args.create_namespace, **release_opts(args)
    )
    print(f"installed {args.release}: {summary(rel)}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    rel = config(args).upgrade(args.chart, args.release, user_values(args), **release_opts(args))
    print(f"upgraded {args.release}: {summary(rel)}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    cfg = config(args)
    cfg.uninstall(args.release, timeout=args.timeout, wait="watcher" if args.wait else None,
                  ignore_not_found=args.ignore_not_found)
    print(f"uninstalled {args.release}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """`helm test`: runs the release's test hooks; a failing one fails this (status 1)."""
    try:
        out = config(args).test(args.release, timeout=args.timeout, logs=args.logs)
    except helm_python.HelmError as e:
        print(f"helm.py test: {args.release} failed: {e}", file=sys.stderr)
        return 1
    if args.logs and isinstance(out, dict) and out.get("logs"):
        print(out["logs"])
    rel = out.get("release") if isinstance(out, dict) else out
    print(f"tested {args.release}: {summary(rel)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print(json.dumps(config(args).list(), indent=2, default=str))
    return 0


def summary(rel: Any) -> str:
    if isinstance(rel, dict):  # {"name", "namespace", "revision", "status", "chart_name", ...}
        return f"revision {rel.get('revision', '?')}, status {rel.get('status', '?')}, chart {rel.get('chart_name', '?')}-{rel.get('chart_version', '?')}"
    return str(rel)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="e2e/helm.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser, values: bool = True) -> None:
        sp.add_argument("-n", "--namespace", default=None)
        sp.add_argument("--kubeconfig", default=None)
        if values:
            sp.add_argument("-f", "--values", action="append", help="values YAML file (repeatable)")
            sp.add_argument("--set", action="append", help="K=V[,K=V] like helm --set (repeatable)")

    sp = sub.add_parser("lint", help="lint a chart directory")
    sp.add_argument("chart")
    sp.add_argument("--strict", action="store_true", help="warnings fail too")
    common(sp)
    sp.set_defaults(func=cmd_lint)

    sp = sub.add_parser("render", aliases=["template"], help="render templates offline")
    sp.add_argument("chart")
    sp.add_argument("--name", default="release-name")
    common(sp)
    sp.set_defaults(func=cmd_render)

    for name, func in (("install", cmd_install), ("upgrade", cmd_upgrade)):
        sp = sub.add_parser(name, help=f"{name} a release")
        sp.add_argument("chart")
        sp.add_argument("release")
        sp.add_argument("--wait", action="store_true", help="wait until the resources are ready")
        sp.add_argument("--timeout", type=int, default=300, help="seconds (default 300)")
        if name == "install":
            sp.add_argument("--create-namespace", action="store_true")
        common(sp)
        sp.set_defaults(func=func)

    sp = sub.add_parser("uninstall", help="remove a release")
    sp.add_argument("release")
    sp.add_argument("--wait", action="store_true")
    sp.add_argument("--timeout", type=int, default=300)
    sp.add_argument("--ignore-not-found", action="store_true")
    common(sp, values=False)
    sp.set_defaults(func=cmd_uninstall)

    sp = sub.add_parser("test", help="run a release's test hooks (helm test)")
    sp.add_argument("release")
    sp.add_argument("--timeout", type=int, default=300, help="seconds (default 300)")
    sp.add_argument("--logs", action="store_true", help="print the test pods' logs")
    common(sp, values=False)
    sp.set_defaults(func=cmd_test)

    sp = sub.add_parser("list", help="list releases")
    common(sp, values=False)
    sp.set_defaults(func=cmd_list)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except helm_python.HelmError as e:
        print(f"helm.py {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
