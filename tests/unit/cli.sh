#!/bin/bash
# The command lines: --help everywhere, a one-line error and a non-zero exit on bad input,
# vbusctl with no daemon to talk to, a config file with a bad line.
# variants: default asan
b=${VBUS_BUILD:-build/default}/bin
. "$(dirname "$0")/../lib/time.sh"	# time limits scale with the machine
fail=0
expect() { # WANT_RC WHAT CMD...: run CMD, compare its exit status
	local want=$1 what=$2 out rc
	shift 2
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$want" ]; then echo "FAIL $what: exit $rc, wanted $want: $out"; fail=1
	else echo "ok   $what (exit $rc)"; fi
	last=$out
}
expect 0 "vbusd --help" "$b/vbusd" --help
grep -q -- '--run-dir' <<<"$last" || { echo "FAIL: vbusd --help lacks --run-dir"; fail=1; }
expect 2 "vbusd with a bad option" "$b/vbusd" --bogus
expect 0 "vbusctl --help" "$b/vbusctl" --help
expect 0 "vbusctl bus add --help" "$b/vbusctl" bus add --help
expect 2 "vbusctl with a bad option" "$b/vbusctl" --bogus
expect 2 "vbusctl with no command" "$b/vbusctl"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect 1 "vbusctl with no vbusd" "$b/vbusctl" --run-dir "$tmp" bus show
[ "$(wc -l <<<"$last")" = 1 ] && grep -q "cannot reach vbusd" <<<"$last" ||
	{ echo "FAIL: not a one-line error: $last"; fail=1; }
printf 'bus add ok\n# a comment\ndev add e0 class echo bus nosuch\n' >"$tmp/conf"
expect 1 "vbusd with a bad config line" timeout "$(vt_secs 10)" "$b/vbusd" --run-dir "$tmp" -c "$tmp/conf"
grep -q "conf:3: no bus 'nosuch'" <<<"$last" || { echo "FAIL: no line number: $last"; fail=1; }
[ ! -e "$tmp/ctl.sock" ] && [ ! -e "$tmp/bus/ok.sock" ] || { echo "FAIL: a failed start left sockets"; fail=1; }
printf 'bus add t1 allow all max-guests 2\ndev add e0 class echo bus t1\n' >"$tmp/conf"
"$b/vbusd" --run-dir "$tmp" -c "$tmp/conf" 2>"$tmp/log" &
pid=$!
vt_until 5 test -S "$tmp/ctl.sock"
out=$("$b/vbusctl" --run-dir "$tmp" -j dev show)
grep -q '"name":"e0","class":"echo"' <<<"$out" && echo "ok   config file applied: $out" ||
	{ echo "FAIL: config not applied: $out"; fail=1; }
kill -TERM $pid; wait $pid
[ $? = 0 ] && echo "ok   SIGTERM: exit 0" || { echo "FAIL: vbusd did not exit 0 on SIGTERM"; fail=1; }
[ ! -e "$tmp/ctl.sock" ] && [ ! -e "$tmp/bus/t1.sock" ] && echo "ok   sockets removed" ||
	{ echo "FAIL: sockets left behind"; fail=1; }
exit $fail
