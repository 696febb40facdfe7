"""Per-put costs from `perf stat --per-thread` (scripts/bench-syscalls.sh): context switches,
futex, sendmsg/writev/write, recvmsg/read and fdatasync calls of each member's threads, divided
by the puts acknowledged meanwhile."""
import json
import re
import sys

# "  nexting_thread-24133        7785      sched:sched_switch"; "<not counted>" lines count 0.
_LINE = re.compile(r"^\s*(?P<comm>.+)-(?P<tid>\d+)\s+(?P<count>[\d,]+|<not counted>|<not supported>)"
                   r"\s+(?P<event>\S+)")


def parse_perf_per_thread(text):
    """{(thread name, tid): {event: count}} from perf stat --per-thread output."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = m.group("count")
        n = int(count.replace(",", "")) if count[0].isdigit() else 0
        event = m.group("event").split(":")[-1].replace("sys_enter_", "")
        out.setdefault((m.group("comm").strip(), int(m.group("tid"))), {})[event] = n
    return out


def per_put(counts, member_of_tid, puts):
    """{member: {"threads": {name: {event: per put}}, "total": {event: per put}}} for the
    threads whose tid maps to a member (member_of_tid: {tid: member name})."""
    if puts <= 0:
        raise ValueError("no acknowledged puts to divide by")
    out = {}
    for (name, tid), events in counts.items():
        member = member_of_tid.get(tid)
        if member is None:
            continue
        m = out.setdefault(member, {"threads": {}, "total": {}})
        thread = m["threads"].setdefault(name, {})
        for event, n in events.items():
            thread[event] = thread.get(event, 0) + n / puts
            m["total"][event] = m["total"].get(event, 0) + n / puts
    for m in out.values():
        for table in [m["total"]] + list(m["threads"].values()):
            for event in table:
                table[event] = round(table[event], 3)
    return out


def main(argv):
    """main(perf_output, tid_map_file ("tid member" lines), puts) -> prints JSON."""
    with open(argv[1]) as f:
        counts = parse_perf_per_thread(f.read())
    member_of_tid = {}
    with open(argv[2]) as f:
        for line in f:
            tid, member = line.split()
            member_of_tid[int(tid)] = member
    print(json.dumps(per_put(counts, member_of_tid, int(argv[3])), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
