# Percentiles of the lhist histograms bpftrace prints as it ends
# (benches/latency_path.bt, benches/latency_read.bt), in µs: their buckets
# are 100 ns wide, and a percentile is the lower edge of its bucket.
#
#   python3 benches/bt_percentiles.py /tmp/read.txt
import re
import sys


def histograms(path):
    found, current = {}, None
    for line in open(path):
        name = re.match(r"@(\w+)\[(\w+)\]:", line)
        if name:
            current = found.setdefault((name.group(1), name.group(2)), [])
            continue
        bucket = re.match(r"\[(\d+), (?:\d+|\.\.\.)\)\s+(\d+)", line)
        if bucket and current is not None:
            current.append((int(bucket.group(1)), int(bucket.group(2))))
    return found


def percentile(buckets, q):
    total, seen = sum(n for _, n in buckets), 0
    for low, n in buckets:
        seen += n
        if seen >= q * total:
            return low / 10


for (part, broker), buckets in sorted(histograms(sys.argv[1]).items()):
    cuts = " ".join(f"p{int(q * 100)}={percentile(buckets, q)}" for q in (0.25, 0.5, 0.75, 0.9))
    print(f"{part:8} {broker:10} n={sum(n for _, n in buckets):7} {cuts}")
