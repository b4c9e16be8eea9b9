#!/usr/bin/env bash
# Runs a program and compares its standard output with an expected file.
#
# usage: compare_output.sh [--sorted] [--timeout SECONDS] [--emulator "CMD ARGS"]
#                          PROGRAM EXPECTED_FILE
#
# Every line of EXPECTED_FILE must match the whole corresponding output line.
# Two tokens may stand anywhere in an expected line:
#   {{NUM}}  any number: 42, -7, 3.25, 1,000,000, 1.5e-06 (a unit after it,
#            as in "{{NUM}} ms", is literal text)
#   {{ANY}}  any text, also none
# Everything else is literal. --sorted ignores line order (for programs whose
# tasks print in a nondeterministic order): each output line is paired with one
# expected line, trying exact lines first, then lines with {{NUM}}, then lines
# with {{ANY}}. The program must exit 0 within the timeout (default 60 s); its
# stderr is passed through, not compared. POSIX tools only (mawk is enough).
set -euo pipefail

sorted=0 limit=60 emulator=""
while [ $# -gt 0 ]; do
  case $1 in
    --sorted)   sorted=1; shift ;;
    --timeout)  limit=$2; shift 2 ;;
    --emulator) emulator=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "compare_output.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "usage: compare_output.sh [--sorted] [--timeout S] [--emulator CMD] PROGRAM EXPECTED" >&2
  exit 2
fi
prog=$1 expected=$2
[ -f "$expected" ] || { echo "compare_output.sh: no expected file $expected" >&2; exit 2; }

actual=$(mktemp "${TMPDIR:-/tmp}/csp-output.XXXXXX")
trap 'rm -f "$actual"' EXIT

rc=0
# shellcheck disable=SC2086  # the emulator is a command line on purpose
timeout --kill-after=5 "$limit" $emulator "$prog" </dev/null >"$actual" || rc=$?

show() {  # the expected and the actual output, for a failure report
  echo "---- expected ($expected)"; head -n 200 "$expected"
  echo "---- actual"; head -n 200 "$actual"
  echo "----"
}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "FAIL: $prog timed out after ${limit}s"; show; exit 1
elif [ "$rc" -ne 0 ]; then
  echo "FAIL: $prog exited with status $rc"; show; exit 1
fi

if awk -v sorted="$sorted" '
  # ERE for one literal character string.
  function esc(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c == "\\") out = out "\\\\"
      else if (c == "^") out = out "\\^"
      else if (index(".[]|()*+?{}$/", c)) out = out "[" c "]"
      else out = out c
    }
    return out
  }
  # Anchored ERE for one expected line with {{NUM}} / {{ANY}} tokens.
  function topat(line,    out, pn, pa) {
    out = "^"
    for (;;) {
      pn = index(line, "{{NUM}}"); pa = index(line, "{{ANY}}")
      if (pn == 0 && pa == 0) break
      if (pa == 0 || (pn > 0 && pn < pa)) {
        out = out esc(substr(line, 1, pn - 1)) NUM; line = substr(line, pn + 7)
      } else {
        out = out esc(substr(line, 1, pa - 1)) ".*"; line = substr(line, pa + 7)
      }
    }
    return out esc(line) "$"
  }
  function matches(s, k) {
    return kind[k] == 0 ? s == want[k] : s ~ pat[k]
  }
  BEGIN {
    NUM = "[-+]?([0-9]+(,[0-9][0-9][0-9])*([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?"
  }
  FILENAME == ARGV[1] {   # the expected file
    ne++; want[ne] = $0; pat[ne] = topat($0)
    kind[ne] = index($0, "{{ANY}}") ? 2 : (index($0, "{{NUM}}") ? 1 : 0)
    next
  }
  { na++; act[na] = $0 }
  END {
    bad = 0
    if (!sorted) {
      for (i = 1; i <= na || i <= ne; i++) {
        if (i > ne) { printf "line %d: unexpected extra output: %s\n", i, act[i]; bad = 1; break }
        if (i > na) { printf "line %d: output ended; expected: %s\n", i, want[i]; bad = 1; break }
        if (!matches(act[i], i)) {
          printf "line %d differs\n  expected: %s\n  actual:   %s\n", i, want[i], act[i]
          bad = 1; break
        }
      }
    } else {
      for (i = 1; i <= na; i++) {
        found = 0
        for (pass = 0; pass <= 2 && !found; pass++)
          for (k = 1; k <= ne && !found; k++)
            if (!used[k] && kind[k] == pass && matches(act[i], k)) { used[k] = 1; found = 1 }
        if (!found) { printf "output line %d matches no expected line: %s\n", i, act[i]; bad = 1 }
      }
      for (k = 1; k <= ne; k++)
        if (!used[k]) { printf "expected line %d never printed: %s\n", k, want[k]; bad = 1 }
    }
    exit bad
  }' "$expected" "$actual"; then
  echo "ok: output of $(basename "$prog") matches $(basename "$expected")$([ "$sorted" = 1 ] && echo ' (sorted)')"
else
  echo "FAIL: output of $prog does not match $expected"; show; exit 1
fi
