#!/bin/bash
# The guest verbs library built with AddressSanitizer and UBSan (build/asan), preloaded
# behind libasan into plain programs: tests/guest/memory (arena off: ASan owns the
# allocator) and a perftest client with the ibv_wr_* and the old post API, against a
# native server. Any sanitizer report fails the run.
# timeout: 300
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
lib=$VBUS_TOP/build/asan/lib/libvbus-verbs.so
asan=$(gcc -print-file-name=libasan.so 2>/dev/null)
[ -f "$lib" ] || { echo "no ASan build of the guest library (make SAN=address,undefined)"; exit 77; }
[ -f "$asan" ] || { echo "libasan not found (gcc's runtime)"; exit 77; }
prog=$VBUS_TOP/build/default/tests/guest/memory
vd_start t vrdma0 || exit 1
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0
# env inside vbus-run: libasan must come first in LD_PRELOAD.
pre=("$VD_BIN/vbus-run" --bus t -- env "LD_PRELOAD=$asan $lib")
if VBUS_ARENA=0 "${pre[@]}" "$prog" >"$tmp/m" 2>&1 && ! grep -q "Sanitizer" "$tmp/m"; then
	echo "ok   tests/guest/memory under the ASan+UBSan library"
else
	echo "FAIL tests/guest/memory under the ASan+UBSan library"; tail -n 40 "$tmp/m"; fail=1
fi
PT_CLIENT_WRAP=("${pre[@]}") PT_CLIENT_DEV=vrdma0 PT_SERVER_WRAP=() PT_SERVER_DEV=$VBUS_RXE
for args in "ib_write_lat -n 300" "ib_write_bw -n 300 --use_old_post_send" "ib_send_lat -n 300"; do
	# shellcheck disable=SC2086
	set -- $args
	if pt_run "$1" "$tmp/o" "${@:2}" >"$tmp/log" 2>&1 &&
	   ! grep -qs "Sanitizer" "$tmp/o" "$tmp/log"; then
		echo "ok   $args, client under the ASan+UBSan library"
	else
		echo "FAIL $args"; tail -n 30 "$tmp/log" "$tmp/o" 2>/dev/null; fail=1
	fi
done
exit $fail
