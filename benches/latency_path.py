#!/usr/bin/env python3
"""Where a message's latency goes, broker by broker, from the kernel's own
clock: the load bench's latency scenarios run under `perf record` of
syscall and scheduler tracepoints (every CPU), and each message's path is
cut where it crosses a syscall or a thread:

  publisher send     the publisher's send() of the PUBLISH (the kernel's
                     loopback path, and waking the broker)
  to broker          from that send's return to the broker's epoll_wait
                     returning (the publisher's own work until it sleeps,
                     if the broker was woken on its CPU, and the switch)
  broker: own code   from then to the delivery's send(), outside syscalls
  broker: syscalls   the syscalls in that time (the reads of the PUBLISH)
  broker: syscalls n how many there were
  broker: off cpu    the time the broker's thread was switched out in it
  broker: send       the delivery's send() (loopback, waking the subscriber)
  to subscriber      its return to the subscriber's read returning

`broker all` is the four broker parts in time, `total` the whole path, and
`send to wait` the time from any send of the broker to its next
epoll_wait when nothing preempted it (on one CPU, the subscriber's wait
for it). Timed e2e latency on a shared 2-core machine moves by more between
runs than the brokers differ by; these parts say which of it is the
broker's. Every traced syscall costs more than it would untraced, so a
path of more syscalls reads longer than it is.

Needs perf (Debian's linux-perf) with tracepoints readable (root, or
perf_event_paranoid -1), mosquitto, and the bench built:

    cargo build --release && cargo bench --bench load --no-run
    python3 benches/latency_path.py [--rounds 3] [--qos 0,1] [--keep DIR]
"""

import argparse
import bisect
import collections
import glob
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

EVENTS = [
    "syscalls:sys_enter_sendto", "syscalls:sys_exit_sendto",
    "syscalls:sys_enter_write", "syscalls:sys_exit_write",
    "syscalls:sys_enter_writev", "syscalls:sys_exit_writev",
    "syscalls:sys_enter_read", "syscalls:sys_exit_read",
    "syscalls:sys_enter_recvmsg", "syscalls:sys_exit_recvmsg",
    "syscalls:sys_enter_recvfrom", "syscalls:sys_exit_recvfrom",
    "syscalls:sys_enter_epoll_wait", "syscalls:sys_exit_epoll_wait",
    "syscalls:sys_enter_epoll_pwait", "syscalls:sys_exit_epoll_pwait",
    "sched:sched_switch",
]
SENDS = ("sendto", "write", "writev")
READS = ("read", "recvmsg", "recvfrom")
PARTS = ["publisher send", "to broker", "broker: own code", "broker: syscalls",
         "broker: off cpu", "broker: send", "to subscriber"]
BROKER_PARTS = slice(2, 6)
LINE = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
    r"(?P<time>[\d.]+):\s+(?P<event>\S+):\s*(?P<rest>.*)$")


def bench_binary():
    found = [p for p in glob.glob("target/release/deps/load-*") if not p.endswith(".d")]
    if not found:
        sys.exit("no bench binary: run `cargo bench --bench load --no-run` first")
    return max(found, key=os.path.getmtime)


def record(out, rounds, qos):
    scenarios = [f"latency-2000hz-qos{q}" for q in qos]
    bench = [bench_binary(), "--bench", "--quick", "--rounds", str(rounds),
             "--brokers", "mosquitto", *scenarios]
    # perf's own writes of what it records are traced too, and each makes
    # more to write: every event is filtered by perf's pid, which the shell
    # knows before it becomes perf (`exec`).
    own_pid = '"common_pid != $$"'
    words = [shlex.quote(w) for w in ["perf", "record", "-q", "-a", "-o", out]]
    for event in EVENTS:
        words += ["-e", shlex.quote(event), "--filter", own_pid]
    words += ["--"] + [shlex.quote(w) for w in bench]
    done = subprocess.run(["sh", "-c", "exec " + " ".join(words)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"perf record failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def events(data):
    script = subprocess.run(
        ["perf", "script", "--ns", "-i", data, "-F", "comm,pid,tid,cpu,time,event,trace"],
        capture_output=True, text=True, check=True)
    for line in script.stdout.splitlines():
        m = LINE.match(line)
        if m:
            yield (float(m["time"]) * 1e6, int(m["pid"]), int(m["tid"]), int(m["cpu"]),
                   m["event"].split(":", 1)[1], m["rest"], m["comm"])


def syscall(event, names):
    """'enter'/'exit' if `event` is one of the syscalls `names`, else None."""
    for edge in ("enter", "exit"):
        for name in names:
            if event == f"sys_{edge}_{name}":
                return edge
    return None


def analyse(evs):
    """Per broker process: its name and the parts of each message's path."""
    names = {}
    for _, pid, tid, _, _, _, comm in evs:
        if pid == tid:
            names[pid] = comm
    load = next(pid for pid, comm in names.items() if comm.startswith("load"))
    by_thread = collections.defaultdict(list)
    for ev in evs:
        by_thread[ev[2]].append(ev)
    publisher = by_thread[load]
    reads = sorted(ev for ev in evs
                   if ev[1] == load and syscall(ev[4], READS) == "exit"
                   and not ev[5].startswith("0xf"))
    brokers = collections.defaultdict(list)
    for tid, thread in by_thread.items():
        pid = thread[0][1]
        if pid != load and names.get(pid, "").split("/")[0] in ("tern", "mosquitto"):
            brokers[pid].extend(thread)
    found = {}
    for pid, bevs in brokers.items():
        bevs.sort()
        times = [ev[0] for ev in bevs]
        start, end = times[0], times[-1]
        # The subscriber's reads in this broker's run: those of the
        # generator's thread that read the most PUBLISH-sized chunks (the
        # publisher's ack reader reads 4 bytes at a time).
        during = [ev for ev in reads if start < ev[0] < end]
        sizes = collections.Counter(ev[2] for ev in during if int(ev[5], 16) > 8)
        if not sizes:
            continue
        subscriber = sizes.most_common(1)[0][0]
        sub_times = [ev[0] for ev in during if ev[2] == subscriber]
        paths, tails = [], []
        for i, ev in enumerate(publisher):
            if not (start < ev[0] < end) or syscall(ev[4], SENDS) != "enter":
                continue
            sent = next((e for e in publisher[i + 1:i + 4] if syscall(e[4], SENDS) == "exit"), None)
            path = follow(bevs, bisect.bisect_right(times, ev[0]))
            if sent is None or path is None:
                continue
            woke, broker_parts, syscalls = path
            send_out = woke + sum(broker_parts)
            k = bisect.bisect_right(sub_times, send_out)
            if k == len(sub_times) or sub_times[k] - ev[0] > 5000:
                continue
            paths.append([sent[0] - ev[0], woke - sent[0], *broker_parts,
                          sub_times[k] - send_out, syscalls])
        for i, ev in enumerate(bevs):
            if syscall(ev[4], SENDS) != "exit":
                continue
            # From a send to the broker's next wait, if nothing preempted it.
            for nxt in bevs[i + 1:i + 8]:
                if nxt[4] == "sched_switch":
                    break
                if syscall(nxt[4], ("epoll_wait", "epoll_pwait")) == "enter":
                    tails.append(nxt[0] - ev[0])
                    break
        found[pid] = (names[pid], paths, tails)
    return found


def follow(bevs, k):
    """From index `k` on, one thread of the broker: its wake, then its time
    in its own code, in syscalls and off the CPU until its first send to
    another socket than the one it read (the delivery, not an ack), and
    that send's time. None if the thread did not get that far."""
    woke = thread = read_fd = entered = switched_out = None
    own = in_syscalls = off_cpu = 0.0
    syscalls = 0
    last = delivery = None
    for ev in bevs[k:k + 80]:
        t, event = ev[0], ev[4]
        if woke is None:
            if syscall(event, ("epoll_wait", "epoll_pwait")) == "exit":
                woke = last = t
                thread = ev[2]
            continue
        if ev[2] != thread:
            continue
        if switched_out is not None:
            # Back on a CPU by its next event (the switch in is the other
            # task's event).
            off_cpu += t - switched_out
            switched_out, last = None, t
        if entered is not None:
            # A switch inside a syscall is the syscall's time.
            if event.startswith("sys_exit"):
                if delivery:
                    return woke, (own, in_syscalls, off_cpu, t - entered), syscalls
                in_syscalls += t - entered
                syscalls += 1
                entered, last = None, t
            continue
        own += t - last
        last = t
        if event == "sched_switch":
            switched_out = t
        elif event.startswith("sys_enter"):
            fd = fd_of(ev[5])
            if read_fd is None and syscall(event, READS) == "enter":
                read_fd = fd
            delivery = read_fd is not None and syscall(event, SENDS) == "enter" and fd != read_fd
            entered = t
    return None


def fd_of(rest):
    m = re.match(r"fd: (0x[0-9a-f]+)", rest)
    return int(m.group(1), 16) if m else None


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--qos", default="0,1")
    parser.add_argument("--keep", help="a folder to keep perf's recordings in")
    args = parser.parse_args()
    qos = [int(q) for q in args.qos.split(",")]
    rows = collections.defaultdict(lambda: collections.defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        for q in qos:
            data = os.path.join(tmp, f"qos{q}.data")
            out = record(data, args.rounds, [q])
            # The bench's own e2e rows, timed under the same tracing.
            for line in out.splitlines():
                if re.match(r"latency-\S+\s+(e2e|puback) p(50|99) ", line):
                    print(line)
            for pid, (name, paths, tails) in sorted(analyse(list(events(data))).items()):
                broker = "tern" if name.startswith(("tern", "tokio")) else name
                rows[q][broker].append((paths, tails))
    for q in qos:
        print(f"\nlatency-2000hz-qos{q}: medians over each round's messages, µs; "
              "then the median of the rounds")
        brokers = sorted(rows[q])
        print(f"{'part':<26}" + "".join(f"{b:>22}" for b in brokers) + "   tern/mosq")
        medians = {}
        labels = PARTS + ["broker: syscalls n", "broker all", "total", "send to wait"]
        for label in labels:
            cells = []
            for b in brokers:
                per_round = []
                for paths, tails in rows[q][b]:
                    if label == "send to wait":
                        per_round.append(median(tails))
                        continue
                    per_round.append(median([part_of(label, p) for p in paths]))
                medians[(label, b)] = median(per_round)
                cells.append(" ".join(f"{v:5.1f}" for v in per_round) + f" |{median(per_round):5.1f}")
            ratio = ""
            if ("tern" in brokers) and ("mosquitto" in brokers):
                tern, mosquitto = medians[(label, "tern")], medians[(label, "mosquitto")]
                ratio = f"{tern / mosquitto:9.2f}" if mosquitto else ""
            print(f"{label:<26}" + "".join(f"{c:>22}" for c in cells) + ratio)
        counts = {b: sum(len(p) for p, _ in rows[q][b]) for b in brokers}
        print(f"messages followed: {counts}")


def part_of(label, path):
    if label in PARTS:
        return path[PARTS.index(label)]
    if label == "broker: syscalls n":
        return path[len(PARTS)]
    if label == "broker all":
        return sum(path[BROKER_PARTS])
    return sum(path[:len(PARTS)])


if __name__ == "__main__":
    main()
