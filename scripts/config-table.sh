#!/bin/sh
# Prints the README's configuration table from the binaries' own tables (--config-markdown),
# so the documentation is generated from the code. tests/e2e/test_docs.py checks that the
# README contains exactly these rows.
set -eu
BUILD=${PANEL_BUILD:-build}
for svc in api auth google-sync azure-sync merger emulator; do
    bin="$BUILD/bin/panel-$svc"
    [ -x "$bin" ] || { echo "missing $bin: run make" >&2; exit 1; }
    printf '\n#### panel-%s\n\n| Variable | Type | Default | Meaning |\n|---|---|---|---|\n' "$svc"
    "$bin" --config-markdown
done
printf '\n#### panelctl\n\n| Variable | Type | Default | Meaning |\n|---|---|---|---|\n'
"$BUILD/bin/panelctl" --config-markdown
printf '\n#### Every service\n\n| Variable | Type | Default | Meaning |\n|---|---|---|---|\n'
"$BUILD/bin/panel-api" --config-markdown-common
