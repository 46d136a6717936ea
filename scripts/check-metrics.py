#!/usr/bin/python3
"""Check a Prometheus text exposition (format 0.0.4) on stdin: it must
parse with prometheus_client's parser, and beyond what that parser lets
through, every sample must belong to a family declared by # HELP and
# TYPE before it, metric and label names must be valid, counters must end
in _total, no series may appear twice, and every value must be a number.
Exit 1 with the first problem on stderr."""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
SUFFIXES = ("_sum", "_count", "_bucket")


def family_of(name, types):
    if name in types:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return None


def check(text):
    types, helps, seen = {}, set(), set()
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if not NAME.match(name) or name in types:
                return f"line {n}: bad or repeated TYPE {name}"
            if kind == "counter" and not name.endswith("_total"):
                return f"line {n}: counter {name} does not end in _total"
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([^{ ]+)(\{(.*)\})? (\S+)$", line)
        if not m:
            return f"line {n}: not a sample: {line}"
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        fam = family_of(name, types)
        if not NAME.match(name) or fam is None or fam not in helps:
            return f"line {n}: {name} has no HELP and TYPE before it"
        if LABEL.sub("", labels).replace(",", "").strip():
            return f"line {n}: bad labels {labels}"
        float(value)
        if (name, labels) in seen:
            return f"line {n}: series repeated: {name}{{{labels}}}"
        seen.add((name, labels))
    list(text_string_to_metric_families(text))
    return None


if __name__ == "__main__":
    problem = check(sys.stdin.read())
    if problem:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
