# tests/lib/klog.sh: a device test that makes the kernel complain fails, even if it exited 0
# (bash; sourced by tests/run where the device tests run: the test VM, or a host with rxe).
#   kl_init             0 if the kernel log can be read here (else the check is off: 1)
#   kl_begin NAME       marks the kernel log before a test: a line written to KL_KMSG, or
#                       where that cannot be written, the number of lines so far
#   kl_check LOG        the kernel log since the mark: when a line matches KL_PATTERN,
#                       appends the report (the matching lines and what follows them, up
#                       to KL_MAX_LINES) to LOG and returns 1; else 0
#   kl_match            (filter) NUMBER:LINE of each line of stdin that matches KL_PATTERN,
#                       except marks and a program's own crash line (KL_USER)
# KL_DMESG (default "dmesg") is the command that prints the kernel log, KL_KMSG (default
# /dev/kmsg) where the mark is written; tests/unit/klog.sh points both at a file.
: "${KL_DMESG:=dmesg}" "${KL_KMSG:=/dev/kmsg}" "${KL_MAX_LINES:=80}"
# Oopses and BUG()s, WARN()s, lockdep, sanitizers, refcount and list corruption, lock-ups,
# stalls and hung tasks. (A program's own "segfault at" line is not here, and neither is its
# "traps: PROG[PID] general protection fault ip:..." line (KL_USER): a program's crash is
# its test's exit status to report. perftest 4.5 crashes so on a REJECTED retry, natively too.)
KL_PATTERN='BUG:|WARNING:|Oops|kernel BUG|general protection fault|Call Trace|RIP: |Kernel panic'
KL_PATTERN+='|possible circular locking|possible recursive locking|inconsistent lock state'
KL_PATTERN+='|lockdep|suspicious RCU usage|refcount_t:|KASAN|UBSAN|KFENCE|kmemleak'
KL_PATTERN+='|list_(add|del) corruption|soft lockup|hard LOCKUP|rcu.*detected stall'
KL_PATTERN+='|blocked for more than|hung_task'
KL_USER='traps: [^ ]+\[[0-9]+\] general protection fault ip:'
KL_MARK= KL_START=0 KL_N=0

kl_log() { $KL_DMESG 2>/dev/null; }

kl_init() { $KL_DMESG >/dev/null 2>&1; }

kl_begin() {
	KL_N=$((KL_N + 1))
	KL_MARK="vbus-test: start $1 [$$.$KL_N]"
	{ echo "$KL_MARK" >"$KL_KMSG"; } 2>/dev/null || { KL_MARK=; KL_START=$(kl_log | wc -l); }
}

kl_match() {
	grep -nE -- "$KL_PATTERN" | grep -v '^[0-9]*:.\{0,20\}vbus-test: start ' | grep -vE -- "$KL_USER"
}

# The kernel log since the mark (all of it if the mark has left the ring buffer).
kl_since() {
	local all n
	all=$(kl_log)
	if [ -n "$KL_MARK" ]; then
		n=$(grep -nF -- "$KL_MARK" <<<"$all" | tail -n1 | cut -d: -f1)
	else
		n=$KL_START
		[ "$(wc -l <<<"$all")" -ge "$n" ] || n=0
	fi
	tail -n +$(( ${n:-0} + 1 )) <<<"$all"
}

kl_check() {
	local log=$1 since bad first
	since=$(kl_since)
	bad=$(kl_match <<<"$since")
	[ -z "$bad" ] && return 0
	first=${bad%%:*}
	{
		echo "--- FAIL: the kernel log during this test has $(wc -l <<<"$bad") line(s) of" \
			"a kernel warning, oops or report (tests/lib/klog.sh):"
		tail -n +"$first" <<<"$since" | head -n "$KL_MAX_LINES" | sed 's/^/  kernel| /'
	} >>"$log"
	return 1
}
