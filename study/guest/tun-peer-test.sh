#!/bin/sh
# Host-side check of tun-peer.c: builds it and runs it in throwaway network
# namespaces (`unshare -n`, so needs root and a kernel with TUN), for IPv6
# and IPv4, a few sizes, and each -f fault, which must fail.
#
# Usage: study/guest/tun-peer-test.sh [CC]   (CC defaults to gcc)
set -u
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${1:-gcc} -static -Os -Wall -Wextra -Werror -pthread -o "$tmp/tun-peer" "$here/tun-peer.c" || exit 1

failed=0
check() { # check WANT ARGS...: WANT is 0 (must succeed) or fail
	want=$1
	shift
	unshare -n "$tmp/tun-peer" "$@" >"$tmp/out" 2>&1
	rc=$?
	if { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" = fail ] && [ $rc -eq 1 ]; }; then
		echo "ok   ($rc) tun-peer $*: $(tail -n 1 "$tmp/out")"
	else
		echo "FAIL ($rc) tun-peer $*:"
		cat "$tmp/out"
		failed=1
	fi
}

for fam in "" -4; do
	for n in 1 1000 100000; do
		check 0 $fam -n "$n"
	done
	check 0 $fam -n 1000 -c 50
	check 0 $fam -t 2 -f noack
	for f in nosynack rst nofin; do
		check fail $fam -t 2 -f "$f"
	done
done
"$tmp/tun-peer" -n 0 2>/dev/null
[ $? -eq 2 ] && echo "ok   (2) bad argument" || { echo "FAIL bad argument"; failed=1; }
exit $failed
