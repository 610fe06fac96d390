#!/bin/bash
# `make bench QUICK=1` end to end (bench/run --quick, one soft-RoCE boot): results.json is
# well-formed JSON with its env fields, every perftest case has a row on every path (native,
# guest, guest-guest), the control path has native and guest rows, the scaling rows are
# there, and the report and plots exist. The numbers are not judged. Its limit (3.5 minutes
# here) is multiplied by VBUS_TIME_SCALE like every other, and bench/run's VM and perftest
# limits scale with the same factor (tests/lib/time.sh); what it checks does not change.
# timeout: 900
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v jq >/dev/null || { echo "jq missing (make deps installs it)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$top/bench/run" --quick --out "$out" >"$out/log" 2>&1
rc=$?
[ $rc = 77 ] && { tail -n1 "$out/log"; exit 77; }
[ $rc = 0 ] || { echo "FAIL: bench/run --quick exited $rc"; tail -n 30 "$out/log"; exit 1; }
j=$out/results.json
fail=0
jq -e . "$j" >/dev/null || { echo "FAIL: results.json is not JSON"; exit 1; }
for k in kernel cpu vm rdma_core perftest git_rev date; do
	[ -n "$(jq -r ".env.$k // empty" "$j")" ] || { echo "FAIL: env.$k missing"; fail=1; }
done
for c in ib_write_lat ib_send_lat ib_read_lat ib_write_bw ib_send_bw; do
	for p in native guest guest-guest; do
		n=$(jq "[.results[] | select(.case == \"$c\" and .path == \"$p\")] | length" "$j")
		[ "$n" -ge 1 ] || { echo "FAIL: no $c row on path $p"; fail=1; }
	done
done
for p in native guest; do
	n=$(jq "[.results[] | select(.case == \"qp_bringup\" and .path == \"$p\")] | length" "$j")
	[ "$n" -ge 1 ] || { echo "FAIL: no qp_bringup row on path $p"; fail=1; }
done
n=$(jq '[.results[] | select(.case == "scale_ib_write_bw" or .case == "scale_ib_write_lat")] | length' "$j")
[ "$n" -ge 6 ] || { echo "FAIL: $n scaling rows, wanted 6 (1, 2, 4 guests x 2 cases)"; fail=1; }
for f in report.md latency.png bandwidth.png cdf.png scaling.png; do
	[ -s "$out/$f" ] || { echo "FAIL: $f missing"; fail=1; }
done
errs=$(jq '[.results[] | select(.error == true)] | length' "$j")
echo "$(jq '.results | length' "$j") rows, $errs of them failed runs (reported, not judged)"
[ $fail = 0 ] && echo "ok   results.json, report and plots complete"
exit $fail
