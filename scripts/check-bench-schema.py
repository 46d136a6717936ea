#!/usr/bin/python3
"""Check gpup bench files against the JSON schemas in docs/:
check-bench-schema.py scenario|report FILE...  (exit 1 naming the first
file that does not match, and where)."""
import json
import os
import sys

import jsonschema

SCHEMAS = {"scenario": "bench-scenario.schema.json", "report": "bench-report.schema.json"}


def main(argv):
    if len(argv) < 3 or argv[1] not in SCHEMAS:
        print(__doc__, file=sys.stderr)
        return 2
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
    with open(os.path.join(here, SCHEMAS[argv[1]])) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for path in argv[2:]:
        with open(path) as f:
            doc = json.load(f)
        for err in check.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path) or "(top)"
            print(f"{path}: {where}: {err.message}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
