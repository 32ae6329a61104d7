"""docs/reliability.md's "Promise → test" list stays in step with the tests: every named test
exists in the named file (tests/e2e/*.py, or tests/unit/**.c when named unit/...), and every
promise names at least one test."""
import ast
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "reliability.md")


def promise_lines():
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"^## Promise → test\n(.*?)^## ", text, re.S | re.M)
    if not m:
        raise AssertionError("docs/reliability.md has no '## Promise → test' section")
    return [line for line in m.group(1).splitlines() if line.startswith("- ")]


def defined_tests(path):
    if path.endswith(".c"):  # a cmocka test: a static void function
        return set(re.findall(r"^static void (\w+)\(void \*\*state\)",
                              open(path, encoding="utf-8").read(), re.M))
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")}


class ReliabilityMap(unittest.TestCase):
    def test_every_promise_names_tests_that_exist(self):
        lines = promise_lines()
        self.assertGreaterEqual(len(lines), 10, "the list is there")
        names = {}
        for line in lines:
            promise, sep, tests = line[2:].partition(" → ")
            self.assertTrue(sep and promise.strip(), f"'promise → tests': {line}")
            refs = re.findall(r"`([\w./-]+\.(?:py|c))::(\w+)`", tests)
            self.assertTrue(refs, f"no test named for: {promise}")
            for f, name in refs:
                path = os.path.join(ROOT, "tests", f if f.startswith("unit/") else "e2e/" + f)
                self.assertTrue(os.path.isfile(path), f"{f} (for: {promise})")
                if path not in names:
                    names[path] = defined_tests(path)
                self.assertIn(name, names[path], f"{f}::{name} (for: {promise})")
            # nothing else in backquotes that looks like a reference but is not one
            self.assertEqual(len(re.findall(r"::", tests)), len(refs), line)


if __name__ == "__main__":
    unittest.main()
