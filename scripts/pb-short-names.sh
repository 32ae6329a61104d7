#!/bin/sh
# pb-short-names.sh IN OUT: short names for the enum values of a protobuf-c header, so that code
# writes PB_RUN_KIND_FULL instead of PANEL__V1__RUN_KIND__RUN_KIND_FULL (the value's own name
# in the proto, which proto style already prefixes with its enum's name). Run by the Makefile.
set -eu
in=$1
out=$2
tmp=$out.tmp
{
    printf '/* Generated from %s by scripts/pb-short-names.sh: do not edit. */\n' "${in##*/}"
    printf '#ifndef PANEL_PB_SHORT_NAMES_H\n#define PANEL_PB_SHORT_NAMES_H\n'
    printf '#include "%s"\n' "${in##*/}"
    sed -n -E 's/^[[:space:]]*(PANEL__V1__[A-Z0-9]+(_[A-Z0-9]+)*__([A-Z0-9_]+)) = .*/#define PB_\3 \1/p' "$in"
    printf '#endif\n'
} >"$tmp"
# Two values may not share a short name (one would silently stand for the other).
dups=$(sed -n 's/^#define \(PB_[A-Z0-9_]*\) .*/\1/p' "$tmp" | sort | uniq -d)
if [ -n "$dups" ]; then
    rm -f "$tmp"
    echo "pb-short-names.sh: short names used twice: $dups" >&2
    exit 1
fi
mv "$tmp" "$out"
