#!/bin/bash
# The kernel log check of the device tests (tests/lib/klog.sh), without a VM: a file stands
# for the kernel log (KL_DMESG, KL_KMSG). A test during which the kernel logs a WARNING
# fails although it exits 0, and its log shows the trace; a clean one passes; a report
# from before a test's mark is not blamed on it; each kind of report is recognised, and
# ordinary lines are not; without a mark (no /dev/kmsg) the line count does. Then the same
# through tests/run --inside (where the device tests run) with fake device tests.
# timeout: 60
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export KL_KMSG=$tmp/kmsg KL_DMESG="cat $tmp/kmsg"
: >"$KL_KMSG"
. "$top/tests/lib/klog.sh"
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
kernel() { local l; for l in "$@"; do printf '[ %10.6f] %s\n' "$SECONDS" "$l"; done >>"$KL_KMSG"; }

kl_init && ok "the fake kernel log reads" || bad "kl_init on a readable log"

kl_begin device/clean
kernel "rdma_rxe: loaded" "infiniband rxe0: set active" "ib_write_lat[412]: segfault at 0 ip 0" \
	"traps: ib_write_lat[9732] general protection fault ip:7f7448882472 sp:7ffcdefb9520 error:0 in librdmacm.so.1.3.44.0[7f744887c000+15000]"
kl_check "$tmp/clean.log" && [ ! -s "$tmp/clean.log" ] &&
	ok "a clean kernel log passes (rxe messages, a program's segfault and general protection fault lines)" ||
	bad "a clean kernel log was reported: $(cat "$tmp/clean.log")"

kl_begin device/warn
kernel "rdma_rxe: qp#17 state -> ERR" \
	"------------[ cut here ]------------" \
	"WARNING: CPU: 1 PID: 812 at drivers/infiniband/sw/rxe/rxe_comp.c:670 rxe_completer+0x3e1/0x5a0 [rdma_rxe]" \
	"Modules linked in: rdma_rxe ib_uverbs veth" \
	"RIP: 0010:rxe_completer+0x3e1/0x5a0 [rdma_rxe]" \
	"Call Trace:" " <TASK>" " rxe_do_task+0x9a/0x100 [rdma_rxe]" " </TASK>" \
	"---[ end trace 0000000000000000 ]---"
: >"$tmp/warn.log"
if kl_check "$tmp/warn.log"; then
	bad "a WARNING in the kernel log passed"
elif grep -q '^  kernel| .*WARNING: CPU: 1 PID: 812' "$tmp/warn.log" &&
	grep -q '^  kernel| .*Call Trace:' "$tmp/warn.log" && grep -q 'rxe_do_task' "$tmp/warn.log" &&
	! grep -q 'qp#17' "$tmp/warn.log"; then
	ok "a WARNING fails the test; its log shows the trace from the first bad line on"
else
	bad "the WARNING's trace is not in the test's log:"; sed 's/^/  | /' "$tmp/warn.log"
fi

kl_begin device/after
kernel "rdma_rxe: loaded"
kl_check "$tmp/after.log" && ok "the next test is not blamed for the earlier WARNING" ||
	bad "the next test was blamed: $(cat "$tmp/after.log")"

n=0
while IFS= read -r line; do
	kl_begin device/kind
	kernel "$line"
	if kl_check "$tmp/kind.log"; then bad "not recognised: '$line'"; else n=$((n + 1)); fi
done <<'EOF'
BUG: unable to handle page fault for address: ffffffffc0a1b2c3
BUG: KASAN: use-after-free in rxe_qp_do_cleanup+0x1c/0x40 [rdma_rxe]
Oops: 0000 [#1] PREEMPT SMP NOPTI
kernel BUG at mm/slub.c:4318!
general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]
WARNING: possible circular locking dependency detected
WARNING: possible recursive locking detected
refcount_t: underflow; use-after-free.
UBSAN: shift-out-of-bounds in drivers/infiniband/core/verbs.c:123:4
list_add corruption. next->prev should be prev (ffff888003e4a0a8)
watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [vbusd:305]
rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
INFO: task rdma:1234 blocked for more than 120 seconds.
Kernel panic - not syncing: Fatal exception
EOF
[ $n = 14 ] && ok "all $n kinds of report are recognised"

KL_KMSG=$tmp/no/such/dir/kmsg	# the mark cannot be written: the line count stands in
kl_begin device/nomark
KL_KMSG=$tmp/kmsg
kl_check "$tmp/nomark1.log" || bad "without a mark, old reports were blamed"
KL_KMSG=$tmp/no/such/dir/kmsg
kl_begin device/nomark
KL_KMSG=$tmp/kmsg
kernel "WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 foo+0x1/0x2"
kl_check "$tmp/nomark2.log" && bad "without a mark, a new WARNING passed" ||
	ok "without a mark (no /dev/kmsg) the line count finds the new WARNING only"

# Through tests/run --inside, as in the VM: fake device tests that all exit 0 (or 77).
mkdir -p "$tmp/dev" "$tmp/out"
printf '#!/bin/bash\necho fine\nexit 0\n' >"$tmp/dev/klog-fake-clean.sh"
cat >"$tmp/dev/klog-fake-warn.sh" <<'EOF'
#!/bin/bash
echo "the test itself passes"
printf '[ 9.9] WARNING: CPU: 0 PID: 77 at drivers/infiniband/core/device.c:1234 ib_foo+0x12/0x40\n[ 9.9] Call Trace:\n[ 9.9]  ib_foo+0x12/0x40\n' >>"$KL_KMSG"
exit 0
EOF
cat >"$tmp/dev/klog-fake-skip.sh" <<'EOF'
#!/bin/bash
printf '[ 9.9] BUG: KASAN: slab-out-of-bounds in rxe_bar+0x1/0x2\n' >>"$KL_KMSG"
echo "skipped: nothing to do"
exit 77
EOF
VBUS_TEST_DEVICE_DIR=$tmp/dev "$top/tests/run" --inside "$tmp/out" -k klog-fake >"$tmp/run.out" 2>&1
sed 's/^/  run| /' "$tmp/run.out"
res=$(sort "$tmp/out/results" 2>/dev/null | cut -d' ' -f1,2 | tr '\n' ' ')
if [ "$res" = "FAIL device/klog-fake-skip FAIL device/klog-fake-warn PASS device/klog-fake-clean " ]; then
	ok "tests/run --inside: the clean test passes; the one with a WARNING (exit 0) and the" \
		"skipped one with a KASAN report fail"
else
	bad "tests/run --inside results: '$res'"
fi
grep -q 'FAIL  device/klog-fake-warn (exit 0, and the kernel logged' "$tmp/run.out" &&
	grep -q 'kernel| .*WARNING: CPU: 0 PID: 77' "$tmp/out/logs/device_klog-fake-warn.log" &&
	grep -q 'kernel| .*Call Trace:' "$tmp/out/logs/device_klog-fake-warn.log" &&
	ok "its FAIL line says why and its log has the trace" || bad "no reason or trace shown"
exit $fail
