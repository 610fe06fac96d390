#!/bin/bash
# Build every libFuzzer target in the tree (*/fuzz/fuzz-*.c, extra sources named on a
# `fuzz-sources:` line) into build/fuzz/ with clang, and run each for
# ${VBUS_FUZZ_SECONDS:-10} seconds, starting from tests/fuzz-corpus/TARGET/ (crash
# regressions and seeds are kept there). Any crash, leak or sanitizer report fails, and so
# does one input that runs past 10 s (times VBUS_TIME_SCALE, tests/lib/time.sh).
# timeout: 300
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/lib/time.sh"
secs=${VBUS_FUZZ_SECONDS:-10}
command -v clang >/dev/null || { echo "clang is not installed (make deps)"; exit 77; }
out=$top/build/fuzz
mkdir -p "$out"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$out/probe.c"
clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null ||
	{ echo "clang has no libFuzzer runtime (libclang-rt-14-dev; make deps)"; exit 77; }
fail=0
for src in "$top"/*/fuzz/fuzz-*.c "$top"/*/*/fuzz/fuzz-*.c; do
	[ -f "$src" ] || continue
	name=$(basename "$src" .c)
	extra=$(sed -n 's|.*fuzz-sources:\(.*\)\*/.*|\1|p' "$src" | head -n1)
	srcs=()
	# each word is a path under the top; globs allowed (verbs-host/vrdma/[a-z]*.c)
	for f in $extra; do for g in "$top"/$f; do srcs+=("$g"); done; done
	if ! clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -I"$top/include" -I"$top/connector" \
		-I"$top/verbs-host" "$src" "${srcs[@]}" -o "$out/$name" -libverbs -pthread \
		2>"$out/$name.build.log"; then
		echo "FAIL: $name does not build"; cat "$out/$name.build.log"; fail=1; continue
	fi
	corpus=$top/tests/fuzz-corpus/$name
	work=$out/$name.corpus
	rm -rf "$work"; mkdir -p "$work"
	cp "$corpus"/* "$work"/ 2>/dev/null
	if "$out/$name" -max_total_time="$secs" -timeout="$(vt_secs 10)" -rss_limit_mb=1024 \
		-artifact_prefix="$out/$name-" "$work" >"$out/$name.log" 2>&1; then
		echo "ok   $name: $(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$out/$name.log") runs in $secs s, no crash"
	else
		echo "FAIL: $name found a crash (copy the artifact into $corpus to keep it):"
		ls "$out/$name-"* 2>/dev/null
		tail -n 40 "$out/$name.log"
		fail=1
	fi
done
exit $fail
