# Percentiles of the lhist histograms bpftrace prints as it ends
# (benches/latency_path.bt, benches/latency_read.bt), in µs: their buckets
# are 100 ns wide, and a percentile is the lower edge of its bucket. Then
# latency_path.bt's slow messages (over 60 µs), by kind:
#
#   cold        the publisher's own send() took 15 µs or more (3 to 4 at
#               the median): the CPU was slow from the start, and the
#               broker's part on it too
#   subscriber  the subscriber was woken on another CPU than the broker's
#               send and ran 15 µs or more after it
#   head        the broker's part from its wake to the delivery's send
#               took 25 µs or more
#   wake        the broker's thread ran 25 µs or more after the send
#   other       none of those
#
#   python3 benches/bt_percentiles.py /tmp/read.txt
import collections
import re
import sys


def histograms(path):
    found, current = {}, None
    for line in open(path):
        name = re.match(r"@(\w+)\[(\w+)\]:", line)
        if name:
            current = found.setdefault((name.group(1), name.group(2)), [])
            continue
        if line.startswith("@"):
            # A map of other keys (@tosubc[tern, 1]) or a scalar: its
            # buckets are not the last histogram's.
            current = None
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


def kind(slow):
    if slow["pubsend"] >= 15:
        return "cold"
    if slow["scpu"] != slow["bcpu"] and slow["tosub"] >= 15:
        return "subscriber"
    if slow["head"] >= 25:
        return "head"
    if slow["towake"] >= 25:
        return "wake"
    return "other"


def slow_kinds(path):
    kinds = collections.defaultdict(collections.Counter)
    for line in open(path):
        if line.startswith("slow "):
            fields = dict(f.split("=") for f in line.split()[1:])
            slow = {k: int(v) for k, v in fields.items()}
            kinds[{1: "tern", 2: "mosquitto"}[slow["b"]]][kind(slow)] += 1
    return kinds


hists = histograms(sys.argv[1])
for (part, broker), buckets in sorted(hists.items()):
    if not buckets:
        continue
    cuts = " ".join(f"p{int(q * 100)}={percentile(buckets, q)}" for q in (0.25, 0.5, 0.75, 0.9))
    print(f"{part:8} {broker:10} n={sum(n for _, n in buckets):7} {cuts}")
for broker, counts in sorted(slow_kinds(sys.argv[1]).items()):
    messages = sum(n for _, n in hists.get(("e2e", broker), []))
    each = " ".join(f"{k}={counts[k]}" for k in ("cold", "subscriber", "head", "wake", "other"))
    print(f"over 60 µs {broker:10} {sum(counts.values())} of {messages}: {each}")
