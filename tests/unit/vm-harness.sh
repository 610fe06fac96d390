#!/bin/bash
# The soft-RoCE harness itself: --help, bad input, the kernel module's vermagic check,
# VBUS_VM=never without rxe (skip, 77),
# a boot that cannot finish in time (125 with console lines, never a hang). Boots the VM
# once, cut short.
# timeout: 240
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
run=$top/tests/vm/run
. "$top/tests/lib/time.sh"	# limits scale; --boot-timeout 1 and --timeout 20 are checked, not limits
fail=0
expect() { # WANT_RC GOT_RC WHAT
	if [ "$1" = "$2" ]; then echo "ok   $3 (exit $2)"; else echo "FAIL $3: exit $2, wanted $1"; fail=1; fi
}
"$run" --help | grep -q 'VBUS_VM' ; expect 0 $? "--help documents VBUS_VM"
"$run" --bogus -- true 2>/dev/null; expect 2 $? "unknown option refused"
"$run" --vm sometimes -- true 2>/dev/null; expect 2 $? "bad --vm value refused"

# The module check of guest-main (tests/vm/kmod-load.sh), with uname -r answering as the
# VM's kernel: a module of another vermagic, a file without one, and no file are refused or
# absent with the reason, and nothing is inserted (insmod is a shim that fails the test).
km=$(mktemp -d)
mkdir "$km/bin" "$km/sys"
printf '#!/bin/sh
echo 6.1.0-57-amd64
' >"$km/bin/uname"
printf '#!/bin/sh
echo "insmod $*" >>%s/insmod.log
exit 1
' "$km" >"$km/bin/insmod"
chmod +x "$km/bin/uname" "$km/bin/insmod"
echo 'int vbus_fake;' | gcc -x c -c -o "$km/plain.o" - &&
	printf 'vermagic=6.1.0-99-other SMP preempt mod_unload modversions \0license=GPL\0' >"$km/mi" &&
	objcopy --add-section .modinfo="$km/mi" "$km/plain.o" "$km/other.ko" ||
	{ echo "FAIL: cannot make the test's module files"; fail=1; }
kmod() { # KO: VBUS_KMOD and the reason, as guest-main would say them
	(PATH=$km/bin:$PATH KMOD_SYSFS=$km/sys; . "$top/tests/vm/kmod-load.sh"; kmod_load "$1"
	 echo "$VBUS_KMOD: $VBUS_KMOD_REASON")
}
got=$(kmod "$km/other.ko")
grep -q '^refused: .*built for 6.1.0-99-other, this kernel is 6.1.0-57-amd64' <<<"$got" &&
	echo "ok   a module of another vermagic is refused: $got" ||
	{ echo "FAIL another vermagic: $got"; fail=1; }
got=$(kmod "$km/plain.o")
grep -q '^refused: .*has no vermagic' <<<"$got" && echo "ok   a file without a vermagic is refused: $got" ||
	{ echo "FAIL no vermagic: $got"; fail=1; }
got=$(kmod "$km/none.ko")
grep -q '^absent: no .*none.ko' <<<"$got" && echo "ok   no file: $got" || { echo "FAIL no file: $got"; fail=1; }
[ ! -e "$km/insmod.log" ] || { echo "FAIL: insmod was called: $(cat "$km/insmod.log")"; fail=1; }
rm -rf "$km"

if [ -d /sys/module/rdma_rxe ] || modprobe -n -q rdma_rxe 2>/dev/null; then
	echo "this kernel has rdma_rxe: the VM-only checks do not apply"
	exit 77
fi
err=$(VBUS_VM=never "$run" -- true 2>&1); rc=$?
expect 77 $rc "VBUS_VM=never without rxe skips"
grep -q 'SKIP:.*rdma_rxe' <<<"$err" || { echo "FAIL: no reason given: $err"; fail=1; }

command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64: cannot check the VM paths"; exit 77; }
start=$(date +%s)
# A one-second boot needs no turn on the machine's VM lock (its timing is what is checked).
lockf=$(mktemp)
err=$(VBUS_VM_LOCK=$lockf "$run" --vm always --boot-timeout 1 -- true 2>&1); rc=$?
rm -f "$lockf"
expect 125 $rc "a boot past --boot-timeout fails"
grep -q 'no ACTIVE rxe0 within 1 s' <<<"$err" && grep -q 'last console lines' <<<"$err" ||
	{ echo "FAIL: no clear error with console lines: $err"; fail=1; }
# Silent at half the boot timeout (QEMU has not printed within 0.5 s): booted once more,
# and said; the second boot times out as the first would have.
grep -q 'no console output .*booting once more' <<<"$err" ||
	{ echo "FAIL: a VM silent at half the boot timeout was not booted once more: $err"; fail=1; }
[ "$(grep -c 'booting once more' <<<"$err")" = 1 ] ||
	{ echo "FAIL: booted more than once more: $err"; fail=1; }
[ $(( $(date +%s) - start )) -lt "$(vt_secs 30)" ] || { echo "FAIL: the failed boot took too long"; fail=1; }
# A command's exit status and --timeout (124) are checked on the same script (tests/vm/run
# execs softroce/vbus-softroce) by tests/unit/softroce.sh, as installed; native-devinfo
# checks the VM's device.
exit $fail
