# tests/lib/failures.sh: run tests/guest/failures.c natively on $VBUS_RXE and as a guest on
# the vbusd of tests/lib/vbusd.sh, print both, and compare their "outcome:" lines, and their
# "outcome-except-kernel:" lines too unless VD_BACKEND=kernel (a known difference of the
# kernel backend, docs/verbs.md: printed, not compared).
#   fl_native MODE / fl_guest MODE   run one side (bounded), output in FL_OUT/native|guest
#   fl_compare                       print both outputs; 0 if their outcome lines match
#   fl_both MODE                     both sides and the comparison; 0 if all went well
#   fl_need                          a soft-RoCE device (else skip) and the program (else fail)
FL_PROG=${VBUS_BUILD:-${VBUS_TOP:?}/build/default}/tests/guest/failures
FL_OUT=$(mktemp -d)
. "$(dirname "${BASH_SOURCE[0]}")/time.sh"	# each side has 60 s, times VBUS_TIME_SCALE

# The native side does not depend on the backend: within one suite (VBUS_SUITE_DIR, set by
# tests/run in the test VM) it runs once per mode, and the next backend compares with it.
fl_native() {
	local c=${VBUS_SUITE_DIR:+$VBUS_SUITE_DIR/native-failures-$1} rc
	if [ -n "$c" ] && [ -s "$c" ]; then
		cp "$c" "$FL_OUT/native" && echo "info native $1: this suite's run of it (one per suite)"
		return
	fi
	timeout -k 2 "$(vt_secs 60)" "$FL_PROG" "$1" "$VBUS_RXE" >"$FL_OUT/native" 2>&1; rc=$?
	[ $rc = 0 ] && [ -n "$c" ] && cp "$FL_OUT/native" "$c"
	return $rc
}
fl_guest() { timeout -k 2 "$(vt_secs 60)" "${VD_RUN[@]}" "$FL_PROG" "$1" "$VD_DEV" >"$FL_OUT/guest" 2>&1; }

fl_compare() {
	local pat='^outcome\(-except-kernel\)\?:'
	[ "${VD_BACKEND:-}" != kernel ] || pat='^outcome:'
	sed 's/^/native| /' "$FL_OUT/native"
	sed 's/^/guest | /' "$FL_OUT/guest"
	if diff <(grep "$pat" "$FL_OUT/native") <(grep "$pat" "$FL_OUT/guest") >/dev/null; then
		echo "ok   the guest's outcome is the native one ($(grep -c "$pat" "$FL_OUT/guest") lines)"
		return 0
	fi
	echo "FAIL the guest's outcome differs from native:"
	diff <(grep "$pat" "$FL_OUT/native") <(grep "$pat" "$FL_OUT/guest") | sed 's/^/  /'
	return 1
}

fl_both() {
	local nrc grc same
	fl_native "$1"; nrc=$?
	fl_guest "$1"; grc=$?
	fl_compare; same=$?
	rm -rf "$FL_OUT"
	[ $nrc = 0 ] || { echo "FAIL: native run exit $nrc"; return 1; }
	[ $grc = 0 ] || { echo "FAIL: guest run exit $grc"; return 1; }
	return $same
}

fl_need() {
	pt_need_device	# bench/lib/perftest.sh
	[ -x "$FL_PROG" ] || { echo "FAIL: $FL_PROG not built"; exit 1; }
}
