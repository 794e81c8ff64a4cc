#!/usr/bin/env python3
"""Runs the Argo CD health checks in docs/argocd/health against their upstream-layout tests.

For each health/<Kind>/health_test.yaml (Argo CD's format: tests[].healthStatus{status,
message} and inputPath), the fixture YAML is turned into a Lua table literal, and
run_tests.lua evaluates health/servicedb.io_<Kind>.lua on it in a sandbox like Argo CD's.
Also checks that argocd-cm.yaml carries each script exactly as the .lua file holds it, so the
snippet users paste never drifts from what was tested.

Usage: python3 docs/argocd/run_tests.py [--lua lua5.1]
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
HEALTH = os.path.join(HERE, "health")
KINDS = ["ServiceDatabase", "Tenant", "DatabaseServer"]
CM_KEY = "resource.customizations.health.servicedb.io_{}"


def lua_literal(value):
    """A Lua expression for a YAML value, as Argo CD hands JSON to gopher-lua."""
    if isinstance(value, dict):
        items = [
            "[{}] = {}".format(lua_literal(str(k)), lua_literal(v))
            for k, v in value.items()
            if v is not None  # JSON null is nil: the key is absent for Lua
        ]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        value = value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        escaped = "".join(
            c if c.isprintable() and c not in '\\"' else "\\{:03d}".format(ord(c))
            for c in value
        )
        return '"' + escaped + '"'
    raise TypeError("cannot express {!r} in Lua".format(value))


def collect_cases():
    cases, problems = [], []
    for kind in KINDS:
        script = os.path.join(HEALTH, "servicedb.io_{}.lua".format(kind))
        test_file = os.path.join(HEALTH, kind, "health_test.yaml")
        if not os.path.isfile(script):
            problems.append("missing {}".format(script))
            continue
        with open(test_file) as f:
            tests = (yaml.safe_load(f) or {}).get("tests") or []
        if not tests:
            problems.append("{} has no tests".format(test_file))
        for test in tests:
            want = test["healthStatus"]
            fixture = os.path.join(HEALTH, kind, test["inputPath"])
            with open(fixture) as f:
                obj = yaml.safe_load(f)
            if obj.get("kind") != kind:
                problems.append("{}: kind is {!r}, not {}".format(fixture, obj.get("kind"), kind))
            cases.append(
                "{{name = {}, script = {}, obj = {}, status = {}, message = {}}}".format(
                    lua_literal("{}/{}".format(kind, test["inputPath"])),
                    lua_literal(script),
                    lua_literal(obj),
                    lua_literal(want["status"]),
                    lua_literal(want.get("message", "")),
                )
            )
    return cases, problems


def check_snippet():
    path = os.path.join(HERE, "argocd-cm.yaml")
    with open(path) as f:
        data = (yaml.safe_load(f) or {}).get("data") or {}
    problems = []
    for kind in KINDS:
        with open(os.path.join(HEALTH, "servicedb.io_{}.lua".format(kind))) as f:
            script = f.read()
        key = CM_KEY.format(kind)
        if key not in data:
            problems.append("{}: no key {}".format(path, key))
        elif data[key] != script:
            problems.append(
                "{}: {} differs from health/servicedb.io_{}.lua; paste the file again".format(path, key, kind)
            )
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lua", default="lua5.1")
    args = parser.parse_args()
    cases, problems = collect_cases()
    problems += check_snippet()
    for p in problems:
        print("FAILED  " + p)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("return {\n" + ",\n".join(cases) + "\n}\n")
        cases_file = f.name
    try:
        rc = subprocess.call([args.lua, os.path.join(HERE, "run_tests.lua"), cases_file])
    finally:
        os.unlink(cases_file)
    if problems:
        print("argocd-cm snippet / layout: {} problem(s)".format(len(problems)))
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
