#!/usr/bin/env python3
"""Counts what each echo server spends per message, with figures that do not swing
with the machine's load: user-space instructions (callgrind) and syscalls (the kernel's
syscall tracepoints, through perf stat).

    count.py --bin-dir BUILD/bench [--out counts.json] [--conns 50] [--size 128]
             [--servers corio_io_uring,raw_epoll,...] [--no-callgrind] [--no-syscalls]

Each server runs in a process of its own (`bench_echo --serve=NAME`, or the Tokio
peer's binary) under the counter, and the load client (`bench_echo --client=...`) in
another. Every figure is a difference of two runs, a short one and a long one, divided
by the messages the long one added: the server's start, its first connections and its
end cancel out, and what remains is the cost of one echoed message in the steady state.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def start_server(cmd):
    srv = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = srv.stdout.readline().strip()
    if not line.isdigit():
        srv.kill()
        srv.wait()
        sys.exit(f"count.py: {' '.join(cmd)} did not print its port (got {line!r})")
    return srv, int(line)


def run_client(bench_echo, port, conns, size, waves):
    out = subprocess.run([bench_echo, f"--client={port}", str(conns), str(size), str(waves)], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip())


def stop_server(srv, what):
    srv.stdin.close()
    if srv.wait(timeout=120) != 0:
        sys.exit(f"count.py: the server under {what} failed ({srv.returncode})")


def callgrind_ir(server_cmd, bench_echo, conns, size, waves, tmp):
    out = os.path.join(tmp, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}"] + server_cmd
    srv, port = start_server(cmd)
    run_client(bench_echo, port, conns, size, waves)
    stop_server(srv, "callgrind")
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    sys.exit("count.py: no totals in callgrind's output")


SYSCALLS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_epoll_wait",
            "syscalls:sys_enter_epoll_pwait2", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sendto",
            "syscalls:sys_enter_read", "syscalls:sys_enter_write"]


def syscall_counts(server_cmd, bench_echo, conns, size, waves, tmp):
    out = os.path.join(tmp, "perf.csv")
    cmd = ["perf", "stat", "-x,", "-o", out] + [a for e in SYSCALLS for a in ("-e", e)] + server_cmd
    srv, port = start_server(cmd)
    run_client(bench_echo, port, conns, size, waves)
    stop_server(srv, "perf stat")
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2] in SYSCALLS:
                counts[parts[2]] = int(parts[0]) if parts[0].isdigit() else 0
    return counts


def per_message(measure, short, long, msgs):
    a, b = measure(short), measure(long)
    if isinstance(a, dict):
        return {k: (b[k] - a[k]) / msgs for k in b}
    return (b - a) / msgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--out")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--servers", help="comma-separated; default: all of bench_echo's, and the Tokio peer if built")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-syscalls", action="store_true")
    args = ap.parse_args()

    bench_echo = os.path.join(args.bin_dir, "bench_echo")
    names = subprocess.run([bench_echo, "--servers"], check=True, capture_output=True, text=True).stdout.split()
    commands = {n: [bench_echo, f"--serve={n}"] for n in names if n not in ("blocking_threads", "tokio_current_thread")}
    tokio = os.path.join(args.bin_dir, "corio_bench_tokio_echo")
    if os.path.exists(tokio):
        commands["tokio_current_thread"] = [tokio]
    if args.servers:
        wanted = args.servers.split(",")
        missing = [n for n in wanted if n not in commands]
        if missing:
            sys.exit(f"count.py: no server {missing} (have {sorted(commands)})")
        commands = {n: commands[n] for n in wanted}
    if not args.no_callgrind and shutil.which("valgrind") is None:
        sys.exit("count.py: valgrind not found (Debian: apt-get install valgrind), or pass --no-callgrind")
    if not args.no_syscalls and shutil.which("perf") is None:
        sys.exit("count.py: perf not found (Debian: apt-get install linux-perf), or pass --no-syscalls")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in commands.items():
            row = {"server": name, "conns": args.conns, "size": args.size}
            if not args.no_callgrind:
                # Under callgrind everything runs about 50x slower: fewer waves.
                short, long = 20, 220
                ir = per_message(lambda w: callgrind_ir(cmd, bench_echo, args.conns, args.size, w, tmp), short, long,
                                 (long - short) * args.conns)
                row["instr_per_msg"] = round(ir, 1)
            if not args.no_syscalls:
                short, long = 200, 2200
                sc = per_message(lambda w: syscall_counts(cmd, bench_echo, args.conns, args.size, w, tmp), short,
                                 long, (long - short) * args.conns)
                row["syscalls_per_msg"] = round(sc["raw_syscalls:sys_enter"], 3)
                row["enters_per_msg"] = round(sc["syscalls:sys_enter_io_uring_enter"], 3)
                row["epoll_waits_per_msg"] = round(
                    sc["syscalls:sys_enter_epoll_wait"] + sc["syscalls:sys_enter_epoll_pwait2"], 3)
                row["recv_send_per_msg"] = round(
                    sum(sc[k] for k in SYSCALLS[4:]), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"echo_counts": rows}, f, indent=1)
    print(f"\n{'server':<22}{'instr/msg':>11}{'syscalls/msg':>14}{'enters/msg':>12}{'epoll_waits':>13}"
          f"{'recv+send':>11}")
    for r in rows:
        print(f"{r['server']:<22}{r.get('instr_per_msg', float('nan')):>11.0f}"
              f"{r.get('syscalls_per_msg', float('nan')):>14.3f}{r.get('enters_per_msg', float('nan')):>12.3f}"
              f"{r.get('epoll_waits_per_msg', float('nan')):>13.3f}{r.get('recv_send_per_msg', float('nan')):>11.3f}")


if __name__ == "__main__":
    main()
