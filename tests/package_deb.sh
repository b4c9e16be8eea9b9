#!/usr/bin/env bash
# tests/package_deb.sh (ctest package_deb, label install): builds the .deb
# with cpack, checks its control fields and file list, unpacks it, and builds
# and runs a consumer against the unpacked tree through pkg-config.
# usage: package_deb.sh <build dir> <C compiler> <cpack> <version>
set -euo pipefail
bin=$1 cc=$2 cpack=$3 version=$4
command -v dpkg-deb >/dev/null || { echo "skipped: no dpkg-deb"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libcsp-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== cpack -G DEB"
(cd "$tmp" && "$cpack" -G DEB --config "$bin/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log"; echo "FAIL: cpack"; exit 1; }
deb=$(find "$tmp/out" -maxdepth 1 -name 'libcsp_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "FAIL: no libcsp_*.deb made"; ls -l "$tmp/out"; exit 1; }
echo "ok: $(basename "$deb")"

echo "== control"
for f in Package:libcsp "Version:$version" Section:libdevel; do
  k=${f%%:*} v=${f#*:}
  got=$(dpkg-deb -f "$deb" "$k")
  [ "$got" = "$v" ] || { echo "FAIL: $k is '$got', want '$v'"; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q libc6 || { echo "FAIL: Depends lacks libc6"; exit 1; }

echo "== contents"
dpkg-deb -c "$deb" | awk '{ print $6 }' >"$tmp/files"
for f in ./usr/include/csp.h ./usr/include/csp/runtime.h ./usr/include/csp/chan.h \
         /libcsp.a /libcsp.so /libcsp.pc /libcspConfig.cmake; do
  grep -q -- "$f" "$tmp/files" || { echo "FAIL: $f not in the package"; cat "$tmp/files"; exit 1; }
done
if grep -Ev '^\./usr(/|$)|^\./$' "$tmp/files" | grep -q .; then
  echo "FAIL: files outside /usr:"; grep -Ev '^\./usr(/|$)|^\./$' "$tmp/files"; exit 1
fi

echo "== a consumer of the unpacked package (pkg-config)"
dpkg-deb -x "$deb" "$tmp/root"
pc=$(find "$tmp/root" -name libcsp.pc | head -n 1)
grep -q '^prefix=/usr$' "$pc" || { echo "FAIL: libcsp.pc prefix is not /usr:"; cat "$pc"; exit 1; }
printf '%s\n' \
  '#include <csp.h>' \
  '#include <stdio.h>' \
  'static csp_wg_t wg = CSP_WG_INIT;' \
  'static int v;' \
  'static void task(void *arg) { (void)arg; v = 42; csp_wg_done(&wg); }' \
  'static void main_task(void *arg) {' \
  '    (void)arg;' \
  '    csp_wg_add(&wg, 1);' \
  '    csp_go(task, NULL);' \
  '    csp_wg_wait(&wg);' \
  '    printf("consumer: %d\n", v);' \
  '}' \
  'int main(void) { return csp_run(main_task, NULL, NULL); }' >"$tmp/main.c"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
"$cc" -o "$tmp/consumer" "$tmp/main.c" $(pkg-config --define-prefix --cflags --libs libcsp)
out=$(LD_LIBRARY_PATH=$(pkg-config --define-prefix --variable=libdir libcsp) "$tmp/consumer")
[ "$out" = "consumer: 42" ] || { echo "FAIL: consumer printed '$out'"; exit 1; }
echo "ok: $out"
echo "package_deb: all ok"
