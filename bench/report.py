#!/usr/bin/env python3
"""Runs corio's benchmark suite and renders its report.

    report.py [--quick] --bin-dir BUILD/bench --out DIR

Runs bench_modes, bench_micro and bench_echo, keeps Google Benchmark's JSON
(DIR/modes.json, DIR/micro.json, DIR/echo.json), runs wrk against the HTTP servers
(DIR/http.json), and writes DIR/report.md (tables: every execution mode against
sequential, the micro-benchmarks against their floor and peer, echo and HTTP against
their peers, and the targets) and one chart per workload (DIR/<workload>.svg: speedup
over sequential against threads, one line per execution mode). Every figure comes from
this one run.
"""

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time


def run(cmd, out_json):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd + ["--benchmark_out=" + out_json, "--benchmark_out_format=json"], check=True)
    with open(out_json) as f:
        return json.load(f)


def medians(data):
    """run_name -> the median aggregate row (or the single row when there is no aggregate)."""
    rows = {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                rows[name] = b
        else:
            rows.setdefault(name, b)
    return rows


def seconds(row):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[row.get("time_unit", "ns")]
    return row["real_time"] * scale


def fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e9:.1f} ns"


# ---- execution modes ----------------------------------------------------------------

MODE_ORDER = ["sequential", "thread_pool", "event_loop", "event_loop+pool"]


def parse_mode_rows(rows):
    """{config: [entry]} with entry = dict(mode, threads, time, ideal, seq_ideal, extrapolated)."""
    configs = {}
    for name, row in rows.items():
        parts = [p for p in name.split("/") if not p.startswith(("iterations:", "repeats:", "manual_time"))]
        mode_at = next(i for i, p in enumerate(parts) if p in MODE_ORDER)
        config = "/".join(parts[:mode_at])
        mode = parts[mode_at]
        threads = int(parts[mode_at + 1][2:]) if len(parts) > mode_at + 1 else 1
        configs.setdefault(config, []).append(
            dict(
                mode=mode,
                threads=threads,
                time=seconds(row),
                ideal=row["ideal_s"],
                seq_ideal=row["seq_ideal_s"],
                extrapolated=row.get("extrapolated", 1.0),
            )
        )
    for entries in configs.values():
        entries.sort(key=lambda e: (MODE_ORDER.index(e["mode"]), e["threads"]))
    return configs


def mode_label(e):
    if e["mode"] in ("thread_pool", "event_loop+pool"):
        return f"{e['mode']}/{e['threads']}"
    return e["mode"]


def mode_table(entries):
    seq = next(e for e in entries if e["mode"] == "sequential")
    lines = [
        "| mode | wall time | speedup | ideal speedup | efficiency |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in entries:
        speedup = seq["time"] / e["time"]
        ideal = e["seq_ideal"] / e["ideal"]
        note = f" (×{e['extrapolated']:.3g} rounds)" if e["extrapolated"] > 1.0001 else ""
        lines.append(
            f"| {mode_label(e)} | {fmt_time(e['time'])}{note} | {speedup:,.1f}× | {ideal:,.1f}× | {speedup / ideal:.0%} |"
        )
    return "\n".join(lines)


def chart(config, entries, path):
    """Speedup over sequential against threads, one line per mode (gnuplot, SVG)."""
    if shutil.which("gnuplot") is None:
        return False
    seq = next(e for e in entries if e["mode"] == "sequential")
    data_dir = os.path.join(os.path.dirname(path), "chart-data")
    os.makedirs(data_dir, exist_ok=True)
    base = os.path.splitext(os.path.basename(path))[0]
    threads = sorted({e["threads"] for e in entries})
    series = {}
    for e in entries:
        series.setdefault(e["mode"], []).append((e["threads"], seq["time"] / e["time"]))
    # Single-thread modes are drawn flat across the thread range.
    for flat in ("sequential", "event_loop"):
        if flat in series:
            v = series[flat][0][1]
            series[flat] = [(threads[0], v), (threads[-1], v)]
    plots = []
    for mode in MODE_ORDER:
        if mode not in series:
            continue
        dat = os.path.join(data_dir, f"{base}.{mode.replace('+', '_')}.dat")
        with open(dat, "w") as f:
            for t, s in sorted(series[mode]):
                f.write(f"{t} {s}\n")
        plots.append(f"'{dat}' using 1:2 with linespoints lw 2 title '{mode}'")
    script = f"""
set terminal svg size 720,440 dynamic noenhanced font 'sans,12' background rgb 'white'
set output '{path}'
set title '{config}: speedup over sequential'
set xlabel 'threads (pool size)'
set ylabel 'speedup over sequential'
set logscale xy 2
set grid
set key outside right
plot {', '.join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


# ---- micro-benchmarks ---------------------------------------------------------------


def micro_figures(rows):
    def t(name):
        row = rows.get(name)
        return seconds(row) if row else None

    f = {}
    f["task_await"] = {k: t(f"task_await/{k}") for k in ("function_call", "floor", "corio", "asio")}
    f["yield"] = {k: (t(f"yield/{k}") or 0) / 2 or None for k in ("floor", "corio", "asio")}  # per switch
    f["gather"] = {}
    for n in (10, 1000, 100000):
        v = t(f"gather/corio/{n}")
        f["gather"][n] = v / n if v else None
    f["spawn"] = {k: t(f"spawn/{k}") for k in ("corio", "asio")}
    f["timer"] = {"fire": t("timer_fire/corio"), "cancel": t("timer_cancel/corio")}
    f["sleeps"] = {}
    for k in ("corio", "asio"):
        name = f"sleeps_100ms/{k}/1000000/iterations:1/manual_time"
        row = rows.get(name)
        if row:
            f["sleeps"][k] = (seconds(row) / 1e6, row.get("bytes_per_task"))
    f["cross_thread"] = {k: t(f"cross_thread/{k}/real_time") for k in ("floor_eventfd", "corio")}
    f["to_thread"] = {k: t(f"to_thread/{k}/real_time") for k in ("std_future", "corio")}
    return f


def ratio(a, b):
    return a / b if a and b else float("nan")


def micro_table(f):
    ta, y, sp, sl, ct, tt = f["task_await"], f["yield"], f["spawn"], f["sleeps"], f["cross_thread"], f["to_thread"]
    rows = [
        ("task create + await + destroy", ta["corio"], f"floor (minimal coroutine) {fmt_time(ta['floor'])}, "
         f"function call {fmt_time(ta['function_call'])}", f"Asio awaitable {fmt_time(ta['asio'])}"),
        ("yield, per task switch", y["corio"], f"raw symmetric transfer {fmt_time(y['floor'])}",
         f"Asio post {fmt_time(y['asio'])}"),
    ]
    for n, v in f["gather"].items():
        rows.append((f"gather fan-out, per child, N={n:,}", v, "", ""))
    rows.append(("spawn + await", sp["corio"], "", f"Asio co_spawn {fmt_time(sp['asio'])}"))
    rows.append(("timer arm + fire (due at once)", f["timer"]["fire"], "", ""))
    rows.append(("timer arm + cancel", f["timer"]["cancel"], "", ""))
    if "corio" in sl:
        peer = f"Asio steady_timer {fmt_time(sl['asio'][0])}, {sl['asio'][1]:.0f} B" if "asio" in sl else ""
        rows.append(("1,000,000 × sleep(100 ms): overhead per task", sl["corio"][0],
                     f"{sl['corio'][1]:.0f} B per task", peer))
    rows.append(("cross-thread round trip (promise)", ct["corio"], f"raw eventfd ping-pong {fmt_time(ct['floor_eventfd'])}", ""))
    rows.append(("to_thread round trip", tt["corio"], "", f"std::thread pool + std::future {fmt_time(tt['std_future'])}"))
    out = ["| operation | corio | floor | peer |", "|---|---:|---|---|"]
    for name, v, floor, peer in rows:
        out.append(f"| {name} | {fmt_time(v) if v else '—'} | {floor} | {peer} |")
    return "\n".join(out)


# ---- echo and HTTP -------------------------------------------------------------------

ECHO_SERVERS = ["corio_io_uring", "raw_io_uring", "corio_epoll", "raw_epoll", "asio", "blocking_threads"]


def echo_figures(rows):
    """(size, conns) -> server -> {rate, p50, p99, cpu}."""
    out = {}
    for name, row in rows.items():
        m = re.match(r"echo/(\d+)B/conns=(\d+)/([a-z_]+)", name)
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        out.setdefault(key, {})[m.group(3)] = {
            "rate": row.get("msgs_per_s"), "p50": row.get("p50_us"), "p99": row.get("p99_us"),
            "cpu": row.get("server_cpu_us_per_msg")}
    return out


def echo_table(echo):
    servers = [s for s in ECHO_SERVERS if any(s in v for v in echo.values())]
    out = ["| message, connections | " + " | ".join(servers) + " |", "|---|" + "---:|" * len(servers)]
    for (size, conns), by in sorted(echo.items()):
        cells = []
        for srv in servers:
            e = by.get(srv)
            cells.append(f"{e['rate'] / 1000:.1f} k/s, p50 {e['p50']:.0f} µs, {e['cpu']:.2f} µs CPU" if e else "—")
        out.append(f"| {size} B, {conns} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wrk(server_cmd, seconds, connections=50):
    """Starts a server (prints 'listening on port N'), runs wrk against /, returns the figures."""
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    proc = subprocess.Popen(pin + server_cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = None
        line = proc.stdout.readline()
        m = re.search(r"listening on port (\d+)", line)
        if m:
            port = m.group(1)
        if not port:
            raise RuntimeError(f"{server_cmd[0]} did not start: {line!r}")
        client_pin = ["taskset", "-c", "1"] if pin else []
        cmd = client_pin + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"]
        print("+", " ".join(cmd), flush=True)
        text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", text)
        scale = {"us": 1, "ms": 1e3, "s": 1e6}[lat.group(2)]
        errors = "Socket errors" in text or "Non-2xx" in text
        return {"rate": rate, "latency_us": float(lat.group(1)) * scale, "errors": errors}
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def http_table(http):
    out = ["| server | requests/s | mean latency | errors |", "|---|---:|---:|---|"]
    for name, h in http.items():
        out.append(f"| {name} | {h['rate']:,.0f} | {h['latency_us']:.0f} µs | {'yes' if h['errors'] else 'none'} |")
    return "\n".join(out)


# ---- targets ------------------------------------------------------------------------


def targets(f, configs, echo=None, http=None):
    out = ["| target | measured | |", "|---|---|---|"]

    def row(name, measured, ok):
        out.append(f"| {name} | {measured} | {'met' if ok else '**missed**'} |")

    ta = f["task_await"]
    r = ratio(ta["corio"], ta["floor"])
    row("task create+await ≤ 1.2× the hand-written floor", f"{r:.2f}×", r <= 1.2)
    r = ratio(ta["corio"], ta["asio"])
    row("task create+await no slower than Asio", f"{r:.2f}× Asio", r <= 1.0)
    row("yield ≤ 10 ns", fmt_time(f["yield"]["corio"]), f["yield"]["corio"] <= 10e-9)
    for n, v in f["gather"].items():
        row(f"gather ≤ 30 ns per child (N={n:,})", fmt_time(v), v <= 30e-9)
    r = ratio(f["spawn"]["asio"], f["spawn"]["corio"])
    row("spawn+await ≥ 5× faster than Asio co_spawn", f"{r:.2f}×", r >= 5)
    if "corio" in f["sleeps"]:
        per, size = f["sleeps"]["corio"]
        row("1,000,000 sleeps: ≤ 200 ns overhead per task", fmt_time(per), per <= 200e-9)
        row("1,000,000 sleeps: ≤ 128 B per task", f"{size:.0f} B", size <= 128)
    r = ratio(f["cross_thread"]["corio"], f["cross_thread"]["floor_eventfd"])
    row("cross-thread round trip ≤ 1.1× raw eventfd", f"{r:.2f}×", r <= 1.1)

    io = configs.get("io_wait/n=10000/w=10ms")
    if io:
        seq = next(e for e in io if e["mode"] == "sequential")
        loop = next(e for e in io if e["mode"] == "event_loop")
        pools = [e for e in io if e["mode"] == "thread_pool"]
        r = loop["time"] / 0.010
        row("io_wait N=10,000 W=10 ms: event loop within 2× of W", f"{r:.2f}× W ({fmt_time(loop['time'])})", r <= 2)
        r = seq["time"] / loop["time"]
        row("io_wait N=10,000 W=10 ms: ≥ 100× faster than sequential", f"{r:,.0f}×", r >= 100)
        best = min(pools, key=lambda e: e["time"])
        row("io_wait N=10,000 W=10 ms: ahead of every pool size",
            f"best pool: {mode_label(best)} {fmt_time(best['time'])}", loop["time"] < best["time"])
    for config, entries in sorted(configs.items()):
        if not config.startswith("cpu/"):
            continue
        seq = next(e for e in entries if e["mode"] == "sequential")
        loop = next(e for e in entries if e["mode"] == "event_loop")
        r = loop["time"] / seq["time"]
        row(f"{config}: event_loop within 1.05× of sequential", f"{r:.3f}×", r <= 1.05)
        for lp in (e for e in entries if e["mode"] == "event_loop+pool"):
            pool = next(e for e in entries if e["mode"] == "thread_pool" and e["threads"] == lp["threads"])
            r = lp["time"] / pool["time"]
            row(f"{config}: event_loop+pool/{lp['threads']} within 1.1× of thread_pool/{lp['threads']}",
                f"{r:.3f}×", r <= 1.1)
    for (size, conns), by in sorted((echo or {}).items()):
        def rate(s):
            return (by.get(s) or {}).get("rate")
        def cpu(s):
            return (by.get(s) or {}).get("cpu")
        where = f"echo {size} B × {conns}"
        for ours, peer, bound in (("corio_io_uring", "raw_io_uring", 0.95), ("corio_epoll", "raw_epoll", 0.95)):
            if rate(ours) and rate(peer):
                r = rate(ours) / rate(peer)
                c = cpu(ours) / cpu(peer) if cpu(ours) and cpu(peer) else float("nan")
                row(f"{where}: {ours} ≥ {bound}× {peer} (throughput)",
                    f"{r:.2f}× (server CPU per message {c:.2f}×)", r >= bound)
        for ours in ("corio_io_uring", "corio_epoll"):
            if rate(ours) and rate("asio"):
                r = rate(ours) / rate("asio")
                c = cpu("asio") / cpu(ours) if cpu(ours) and cpu("asio") else float("nan")
                row(f"{where}: {ours} ≥ 1.3× Asio (throughput)", f"{r:.2f}× (Asio uses {c:.2f}× the server CPU)",
                    r >= 1.3)
        if conns == 1 and by.get("blocking_threads"):
            floor = by["blocking_threads"]["p50"]
            for ours in ("corio_io_uring", "corio_epoll"):
                if by.get(ours):
                    r = by[ours]["p50"] / floor
                    row(f"{where}: {ours} p50 ≤ 1.15× the blocking-socket floor",
                        f"{r:.2f}× ({by[ours]['p50']:.1f} µs vs {floor:.1f} µs)", r <= 1.15)
    if http and "corio" in http and "asio" in http:
        r = http["corio"]["rate"] / http["asio"]["rate"]
        row("HTTP hello under wrk: corio ≥ Asio", f"{r:.2f}×", r >= 1.0)
    return "\n".join(out)


# ---- main ---------------------------------------------------------------------------


def machine(context):
    return (
        f"{context.get('cpu_model', '?')}, {context.get('num_cpus', '?')} hardware threads, "
        f"Linux {platform.release()}, {context.get('compiler', '?')}, "
        f"corio backend {context.get('corio_backend', '?')}, {context.get('mode', '?')} mode, "
        f"{context.get('date', '')}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the short run (under 3 minutes on 2 cores)")
    ap.add_argument("--bin-dir", required=True, help="where bench_modes and bench_micro are")
    ap.add_argument("--out", required=True, help="where to write the JSON, report.md and the charts")
    ap.add_argument("--render-only", action="store_true", help="render from the JSON already in --out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    modes_cmd = [os.path.join(args.bin_dir, "bench_modes")] + (["--quick"] if args.quick else [])
    micro_cmd = [os.path.join(args.bin_dir, "bench_micro"), "--benchmark_repetitions=3",
                 "--benchmark_report_aggregates_only=true",
                 "--benchmark_min_time=" + ("0.1" if args.quick else "0.5")]
    # Interleaved repetitions spread the VM's drift over every server alike.
    echo_cmd = [os.path.join(args.bin_dir, "bench_echo"), "--benchmark_enable_random_interleaving=true"] + (
        ["--quick"] if args.quick else [])
    http_servers = {"corio": [os.path.join(args.bin_dir, "..", "examples", "http_server"), "--port", "0"],
                    "asio": [os.path.join(args.bin_dir, "bench_http_asio"), "0"]}
    if args.render_only:
        with open(os.path.join(args.out, "modes.json")) as f:
            modes = json.load(f)
        with open(os.path.join(args.out, "micro.json")) as f:
            micro = json.load(f)
        echo_json = os.path.join(args.out, "echo.json")
        echo_data = json.load(open(echo_json)) if os.path.exists(echo_json) else {"benchmarks": []}
        http_json = os.path.join(args.out, "http.json")
        http = json.load(open(http_json)) if os.path.exists(http_json) else {}
        args.quick = modes["context"].get("mode") == "quick"
    else:
        modes = run(modes_cmd, os.path.join(args.out, "modes.json"))
        micro = run(micro_cmd, os.path.join(args.out, "micro.json"))
        echo_data = run(echo_cmd, os.path.join(args.out, "echo.json"))
        http = {}
        if shutil.which("wrk"):
            for name, cmd in http_servers.items():
                if os.path.exists(cmd[0]):
                    http[name] = wrk(cmd, 2 if args.quick else 5)
                    time.sleep(0.5)
        with open(os.path.join(args.out, "http.json"), "w") as f:
            json.dump(http, f, indent=1)

    configs = parse_mode_rows(medians(modes))
    figures = micro_figures(medians(micro))
    echo = echo_figures(medians(echo_data))

    headline = ["io_wait/n=10000/w=10ms", "cpu/n=1000/c=100us" if args.quick else "cpu/n=10000/c=100us",
                "mixed/n=1000/w=10ms/c=100us", "simul_chess/n=24"]
    md = ["# corio benchmark report", "", f"Measured on: {machine(modes['context'])}.", "",
          "Medians of the repetitions; every figure from this one run. *Speedup* is over the sequential "
          "run of the same workload; *ideal speedup* is what the mode could reach on this machine "
          "(waits overlap perfectly, CPU work spreads over at most the hardware threads); "
          "*efficiency* is speedup / ideal. Blocking runs that would exceed the time budget ran a whole "
          "number of rounds and were scaled to all rounds (marked ×rounds).", ""]
    md += ["## Targets", "", targets(figures, configs, echo, http), ""]
    md += ["## Execution modes", ""]
    order = [c for c in headline if c in configs] + sorted(c for c in configs if c not in headline)
    for config in order:
        md += [f"### {config}", "", mode_table(configs[config]), ""]
        if config in headline:
            svg = config.split("/")[0] + ".svg"
            if chart(config, configs[config], os.path.join(args.out, svg)):
                md += [f"![{config}]({svg})", ""]
    md += ["## Echo", "", "The same load client (one wave: every connection sends one message and waits for "
           "its echo) against each server; client and server on different cores. Each cell: echoes per "
           "second, median round trip, and the server's CPU time per echoed message (the process's CPU "
           "time minus the client thread's). With two cores the client saturates its own core at 50+ "
           "connections, so throughput there is bounded by the client and the server CPU column is "
           "the sharper comparison.", "", echo_table(echo), ""]
    if http:
        md += ["## HTTP hello under wrk", "", "`wrk -t1 -c50` against examples/http_server (header limits, "
               "idle and header timeouts on every read) and an Asio coroutine server that answers the same "
               "(without limits or timeouts); server on core 0, wrk on core 1.", "", http_table(http), ""]
    md += ["## Micro-benchmarks", "", micro_table(figures), ""]
    path = os.path.join(args.out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    print(f"\nreport: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
