#!/usr/bin/env python3
"""Rewrites the configuration section of README.md from the binaries' own tables
(scripts/config-table.sh). `make docs` runs it; tests/e2e/test_docs.py fails when the README
and the code disagree."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"


def generated():
    return subprocess.run(["sh", "scripts/config-table.sh"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


def main():
    path = os.path.join(ROOT, "README.md")
    text = open(path, encoding="utf-8").read()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:a] + "\n" + generated().strip() + "\n" + text[b:]
    if "--check" in sys.argv:
        return 0 if new == text else 1
    open(path, "w", encoding="utf-8").write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
