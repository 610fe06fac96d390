#!/bin/bash
# bench/lib/perftest-parse turns perftest's latency and bandwidth tables into JSON with the
# right value under each name, and rejects output that holds no result.
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
p=$top/bench/lib/perftest-parse
got=$("$p" "$top/tests/unit/data/perftest-lat-bw.txt") || { echo "FAIL: parser failed"; exit 1; }
want='{"test":"RDMA_Write Latency Test","bytes":2,"iterations":1000,"t_min_us":8.89,"t_max_us":194.04,"t_typical_us":9.25,"t_avg_us":9.94,"t_stdev_us":5.69,"p99_us":32.95,"p999_us":194.04}
{"test":"RDMA_Write BW Test","bytes":65536,"iterations":2000,"bw_peak_MBps":67.44,"bw_avg_MBps":66.62,"msg_rate_Mpps":0.001066}'
if [ "$got" != "$want" ]; then
	echo "FAIL: parsed output differs"; diff <(echo "$want") <(echo "$got"); exit 1
fi
if echo " Couldn't connect to 10.99.0.1:18515" | "$p" >/dev/null; then
	echo "FAIL: parser accepted output without a result row"; exit 1
fi
echo "ok"
