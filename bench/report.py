#!/usr/bin/env python3
"""Runs corio's benchmark suite and renders its report.

    report.py [--quick] --bin-dir BUILD/bench --out DIR

Runs bench_modes, bench_micro and bench_echo, keeps Google Benchmark's JSON
(DIR/modes.json, DIR/micro.json, DIR/echo.json) and console output (DIR/modes.log, ...),
runs wrk against the HTTP servers (DIR/http.json, DIR/http-corio.log, ...), records the
machine's load over the run (DIR/run.json), and writes DIR/report.md (the headline, the
machine's load and whether the figures can be trusted, tables: every execution mode
against sequential, the micro-benchmarks against their floor and peer, echo and HTTP
against their peers, and the targets) and one chart per headline workload
(DIR/<workload>.svg: speedup over sequential against threads, one line per execution
mode). Every figure comes from this one run.

While it runs it prints one line per benchmark; it ends with the headline table, the
missed targets, the machine's load and the paths of the report and charts. A binary that
fails ends the run with the end of its log and a non-zero exit status.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time

# When the figures are not to be trusted; bench/README.md gives the reasons for each bound.
EFFICIENCY_TOLERANCE = 0.10  # a speedup past the ideal by more than this is noise, not a result
STEAL_LIMIT = 0.05  # share of the CPU time the hypervisor gave to other machines, in a phase
OTHERS_LIMIT = 0.10  # share of the CPU time other processes of this machine took, in a phase
BUSY_AT_START_LIMIT = 0.25  # share of the CPUs other processes kept busy in the second before the run

DEBUG_NOTE = ("note: Debian's libbenchmark reports itself as a DEBUG build (its warning is in the logs); "
              "that is the library's own build, not corio's benchmarks")


# ---- formatting ---------------------------------------------------------------------


def fmt_time(s):
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e9:.1f} ns"


def fmt_short(s):
    """A time in three significant digits, for the terminal."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            v = s / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return f"{s * 1e9:.3g} ns"


def fmt_speedup(x):
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def fmt_ratio(r):
    return "—" if r is None or math.isnan(r) else f"{r:.2f}×"


def fmt_duration(s):
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_load(load):
    return " ".join(f"{v:.2f}" for v in load) if load else "?"


def seconds(row):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[row.get("time_unit", "ns")]
    return row["real_time"] * scale


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


# ---- running the binaries -----------------------------------------------------------

_noted = set()


def note_once(text):
    if text not in _noted:
        _noted.add(text)
        print(text, flush=True)


def exit_reason(rc):
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def fail(what, log_path, reason):
    """Ends the report on a failure, with the end of the log that shows it: nothing is skipped."""
    try:
        with open(log_path, errors="replace") as f:
            tail = f.readlines()[-40:]
    except OSError:
        tail = []
    if tail:
        print(f"\n--- the last {len(tail)} lines of {log_path} ---", file=sys.stderr)
        sys.stderr.write("".join(tail))
        print("---", file=sys.stderr)
    sys.exit(f"report.py: {what} failed: {reason} (whole output: {log_path})")


def display_name(name):
    """A benchmark's name without Google Benchmark's settings (iterations:1, repeats:3, ...)."""
    return "/".join(p for p in name.split("/")
                    if not re.match(r"(iterations|repeats|min_time|threads):|(manual|real)_time$", p))


def reported_name(line, names):
    """The listed benchmark a console line reports (its first word, less an aggregate's suffix)."""
    words = line.split(maxsplit=1)
    if not words:
        return None
    word = words[0]
    if word in names:
        return word
    for suffix in ("_mean", "_median", "_stddev", "_cv"):
        if word.endswith(suffix) and word[: -len(suffix)] in names:
            return word[: -len(suffix)]
    return None


def run_bench(label, cmd, out_dir):
    """Runs one benchmark binary, its console output into DIR/<label>.log and one progress line
    per benchmark here; returns its JSON. A failure ends the report with the log's tail."""
    log_path = os.path.join(out_dir, label + ".log")
    out_json = os.path.join(out_dir, label + ".json")
    binary = os.path.basename(cmd[0])
    if not os.access(cmd[0], os.X_OK):
        sys.exit(f"report.py: {cmd[0]} is missing or not executable (cmake --build BUILD --target {binary})")
    listing = subprocess.run(cmd + ["--benchmark_list_tests=true"], capture_output=True, text=True,
                             errors="replace")
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(cmd)} --benchmark_list_tests=true\n{listing.stdout}{listing.stderr}")
    if listing.returncode != 0:
        fail(binary, log_path, f"{exit_reason(listing.returncode)} while listing its benchmarks")
    names = [line.strip() for line in listing.stdout.splitlines() if line.strip()]
    if not names:
        fail(binary, log_path, "it lists no benchmarks")
    total, width = len(names), len(str(len(names)))
    print(f"{label}: {total} benchmarks; output in {log_path}", flush=True)

    # Without interleaving the benchmarks run in the listed order, so each line can name the
    # one that starts; interleaved, the order is random and a line names the one that ended.
    ordered = "--benchmark_enable_random_interleaving=true" not in cmd
    done = []
    start = time.monotonic()

    def progress(name, finished):
        left = ""
        if done:
            per = (time.monotonic() - start) / len(done)
            left = f"(est. {fmt_duration(per * (total - len(done)))} left)"
        what = display_name(name) + (" done" if finished else "")
        n = len(done) if finished else len(done) + 1
        print(f"[{n:>{width}}/{total}] {label}: {what:<50} {left}".rstrip(), flush=True)

    full = cmd + ["--benchmark_out=" + out_json, "--benchmark_out_format=json"]
    with open(log_path, "a") as log:
        log.write(f"$ {shlex.join(full)}\n")
        log.flush()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        name_set, seen = set(names), set()
        if ordered:
            progress(names[0], False)
        for line in proc.stdout:
            log.write(line)
            if "Library was built as DEBUG" in line:
                note_once(DEBUG_NOTE)
            name = reported_name(line, name_set)
            if name is None or name in seen:
                continue
            seen.add(name)
            done.append(name)
            if not ordered:
                progress(name, True)
                continue
            following = next((n for n in names if n not in seen), None)
            if following:
                progress(following, False)
        rc = proc.wait()
    if rc != 0:
        fail(binary, log_path, exit_reason(rc))
    try:
        with open(out_json) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail(binary, log_path, f"its JSON {out_json} cannot be read ({e})")
    errors = [b for b in data.get("benchmarks", []) if b.get("error_occurred")]
    if errors:
        fail(binary, log_path, "; ".join(f"{display_name(b['name'])}: {b.get('error_message', '?')}"
                                         for b in errors[:5]))
    measured = {b.get("run_name", b["name"]) for b in data.get("benchmarks", [])}
    missing = [n for n in names if n not in measured]
    if missing:
        fail(binary, log_path, f"no result for {len(missing)} of its benchmarks (first: {missing[0]})")
    print(f"{label}: {total} benchmarks in {fmt_duration(time.monotonic() - start)}", flush=True)
    return data


def wrk(name, server_cmd, seconds, out_dir, connections=50):
    """Starts a server (it prints 'listening on port N'), runs wrk against /, returns the figures.
    The server's and wrk's output go to DIR/http-<name>.log; a failure of either ends the report."""
    log_path = os.path.join(out_dir, f"http-{name}.log")
    server = os.path.basename(server_cmd[0])
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(pin + server_cmd)}\n")
        log.flush()
        proc = subprocess.Popen(pin + server_cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = None
            deadline = time.monotonic() + 10
            while port is None:
                with open(log_path, errors="replace") as f:
                    m = re.search(r"listening on port (\d+)", f.read())
                if m:
                    port = m.group(1)
                elif proc.poll() is not None:
                    fail(server, log_path, f"{exit_reason(proc.returncode)} before it listened")
                elif time.monotonic() > deadline:
                    fail(server, log_path, "no 'listening on port' within 10 s of its start")
                else:
                    time.sleep(0.05)
            client_pin = ["taskset", "-c", "1"] if pin else []
            cmd = client_pin + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"]
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                fail("wrk", log_path, f"it did not finish within {seconds + 60} s")
            log.write(res.stdout + res.stderr)
            log.flush()
            if res.returncode != 0:
                fail("wrk", log_path, exit_reason(res.returncode))
            rate = re.search(r"Requests/sec:\s+([\d.]+)", res.stdout)
            lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", res.stdout)
            if not rate or not lat:
                fail("wrk", log_path, "its output has no Requests/sec or Latency line")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            fail(server, log_path, "it did not exit within 10 s of SIGINT")
    if rc != 0:
        fail(server, log_path, f"{exit_reason(rc)} after SIGINT")
    scale = {"us": 1, "ms": 1e3, "s": 1e6}[lat.group(2)]
    errors = "Socket errors" in res.stdout or "Non-2xx" in res.stdout
    return {"rate": float(rate.group(1)), "latency_us": float(lat.group(1)) * scale, "errors": errors}


def cmake_build_type(bin_dir):
    """CMAKE_BUILD_TYPE of the build the binaries come from (None: not a CMake build tree)."""
    d = os.path.abspath(bin_dir)
    for _ in range(3):
        cache = os.path.join(d, "CMakeCache.txt")
        if os.path.exists(cache):
            with open(cache, errors="replace") as f:
                m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", f.read(), re.M)
            return m.group(1).strip() if m else ""
        d = os.path.dirname(d)
    return None


# ---- the machine's load ---------------------------------------------------------------


def read_loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_cpu():
    """(busy, steal, total) CPU seconds of every CPU since boot, from /proc/stat (None off Linux).
    busy is user + nice + system: irq and softirq time is not charged to processes, so leaving
    it out keeps busy comparable with what getrusage says of ours."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    v += [0] * (8 - len(v))
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = v
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system) / hz, steal / hz, sum(v) / hz


def own_cpu():
    """CPU seconds of this script and of its children that have ended (every benchmark and server)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def others_share(before, after, own_before, own_after):
    """(share of the CPU time other processes took, share the hypervisor stole) between samples."""
    total = after[2] - before[2]
    if total <= 0:
        return 0.0, 0.0
    others = (after[0] - before[0]) - (own_after - own_before)
    return max(0.0, others / total), (after[1] - before[1]) / total


class load_meter:
    """The machine's load over the run: the load average, what other processes of this machine
    took, and what the hypervisor stole (other machines), per phase."""

    def __init__(self):
        self.threads = os.cpu_count() or 1
        self.load_start = read_loadavg()
        self.load_end = None
        self.phases = []
        # The load average still counts the build that just ended; a short sample of the
        # CPUs says whether something else is running now.
        self.busy_at_start = None
        before, own = machine_cpu(), own_cpu()
        time.sleep(1.0)
        after = machine_cpu()
        if before and after:
            self.busy_at_start = others_share(before, after, own, own_cpu())[0]

    @contextlib.contextmanager
    def phase(self, name):
        t0, before, own = time.monotonic(), machine_cpu(), own_cpu()
        yield
        p = {"name": name, "wall_s": time.monotonic() - t0}
        after = machine_cpu()
        if before and after:
            p["others"], p["steal"] = others_share(before, after, own, own_cpu())
        self.phases.append(p)

    def finish(self):
        self.load_end = read_loadavg()

    def to_json(self):
        return {"threads": self.threads, "load_start": self.load_start, "load_end": self.load_end,
                "busy_at_start": self.busy_at_start, "phases": self.phases}


def whole_run(load):
    """The phases together: wall time, and the shares weighted by each phase's time."""
    phases = [p for p in load.get("phases", []) if "others" in p]
    wall = sum(p["wall_s"] for p in load.get("phases", []))
    if not phases or wall <= 0:
        return {"wall_s": wall}
    w = sum(p["wall_s"] for p in phases)
    return {"wall_s": wall, "others": sum(p["others"] * p["wall_s"] for p in phases) / w,
            "steal": sum(p["steal"] * p["wall_s"] for p in phases) / w}


def load_line(load):
    """One line: the machine and what else ran on it."""
    run = whole_run(load)
    parts = [f"{load.get('threads', '?')} hardware threads",
             f"load average {fmt_load(load.get('load_start'))} at start, {fmt_load(load.get('load_end'))} at end"]
    if "steal" in run:
        parts.append(f"steal {run['steal']:.1%}")
        parts.append(f"other processes {run['others']:.0%} of the CPU time")
    if run.get("wall_s"):
        parts.append(f"{fmt_duration(run['wall_s'])} of benchmarks")
    return "; ".join(parts)


def load_section(load):
    if not load:
        return ["Not recorded (rendered from JSON of a run that predates it).", ""]
    out = ["| phase | wall time | other processes' CPU | steal |", "|---|---:|---:|---:|"]
    rows = list(load.get("phases", [])) + [dict(whole_run(load), name="whole run")]
    for p in rows:
        others = f"{p['others']:.0%}" if "others" in p else "—"
        steal = f"{p['steal']:.1%}" if "steal" in p else "—"
        out.append(f"| {p['name']} | {fmt_duration(p.get('wall_s', 0))} | {others} | {steal} |")
    busy = load.get("busy_at_start")
    out += ["", f"{load.get('threads', '?')} hardware threads. Load average (1, 5, 15 min): "
            f"{fmt_load(load.get('load_start'))} at the start, {fmt_load(load.get('load_end'))} at the end"
            + (f"; other processes kept {busy:.0%} of the CPUs busy in the second before the start" if busy is not None
               else "") + ". *Other processes' CPU*: the machine's busy time (from /proc/stat) less this run's "
            "own processes', as a share of all the CPUs' time; *steal*: the time the hypervisor gave to other "
            "machines.", ""]
    return out


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
        # io_db's event loop rows say how it used its connections: K=1/pipelined, K=16...
        variant = "/".join(parts[mode_at + 1:]) if mode == "event_loop" and len(parts) > mode_at + 1 else None
        configs.setdefault(config, []).append(
            dict(
                mode=mode,
                variant=variant,
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
    if e.get("variant"):
        return f"{e['mode']}/{e['variant']}"
    return e["mode"]


def best_loop(entries):
    """The event loop's row; io_db has several (one pipelined connection, K connections): the fastest."""
    loops = [e for e in entries if e["mode"] == "event_loop"]
    return min(loops, key=lambda e: e["time"]) if loops else None


def sequential(entries):
    return next(e for e in entries if e["mode"] == "sequential")


def efficiency(e, entries):
    """Speedup over sequential / the mode's ideal speedup on this machine."""
    seq = sequential(entries)
    return (seq["time"] / e["time"]) / (e["seq_ideal"] / e["ideal"])


def past_ideal(e, entries):
    """Why a mode's efficiency is past the ideal: None when it is not (within the tolerance);
    'noise' when the mode itself ran faster than its ideal time, which no run can; 'slow
    baseline' when it did not, but the sequential run took longer than its own ideal (each
    blocking wait overshoots its time), which lifts every speedup over it."""
    if efficiency(e, entries) <= 1 + EFFICIENCY_TOLERANCE:
        return None
    return "noise" if e["time"] * (1 + EFFICIENCY_TOLERANCE) < e["ideal"] else "slow baseline"


def mode_table(entries):
    seq = sequential(entries)
    lines = [
        "| mode | wall time | speedup | ideal speedup | efficiency |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in entries:
        speedup = seq["time"] / e["time"]
        ideal = e["seq_ideal"] / e["ideal"]
        eff = speedup / ideal
        note = f" (×{e['extrapolated']:.3g} rounds)" if e["extrapolated"] > 1.0001 else ""
        why = past_ideal(e, entries)
        lines.append(f"| {mode_label(e)} | {fmt_time(e['time'])}{note} | {speedup:,.1f}× | {ideal:,.1f}× | "
                     f"{eff:.0%}{f' ({why})' if why else ''} |")
    return "\n".join(lines)


def gp_str(s):
    """A gnuplot single-quoted string (a quote inside is doubled)."""
    return "'" + s.replace("'", "''") + "'"


# The chart's geometry, fixed so that the event loop's label can be placed by computation:
# the plot area spans these screen fractions of a 860 × 480 canvas, the key sits right of it.
CHART_W, CHART_H = 860, 480
PLOT_L, PLOT_R, PLOT_B, PLOT_T = 0.11, 0.73, 0.12, 0.88
CHAR_W, CHAR_H = 7.2, 17.0  # pixels, sans 12

COLOURS = {"sequential": "#7f7f7f", "thread_pool": "#1f77b4", "event_loop": "#d62728",
           "event_loop+pool": "#2ca02c", "ideal": "#555555"}


def label_spot(text, value, span, others, vertical, to_frac):
    """Where the event loop's label reads clearly: beside its flat line (drawn across span), at
    the left, middle or right, above or below, wherever no other line (nor the vertical one)
    crosses the text. Graph fractions of the label's left end and vertical middle."""
    w = len(text) * CHAR_W / ((PLOT_R - PLOT_L) * CHART_W)
    h = CHAR_H / ((PLOT_T - PLOT_B) * CHART_H)
    y = to_frac(None, value)[1]
    left, right = to_frac(span[0], value)[0] + 0.02, to_frac(span[1], value)[0] - 0.02
    vx = to_frac(vertical, value)[0]
    lines = [[to_frac(x, v) for x, v in pts] for pts in others]

    def crosses(x0, y0):
        if x0 - 0.01 <= vx <= x0 + w + 0.01:
            return True
        for pts in lines:
            for (ax, ay), (bx, by) in zip(pts, pts[1:]):
                for i in range(21):
                    px = x0 + w * i / 20
                    if min(ax, bx) <= px <= max(ax, bx):
                        py = ay if bx == ax else ay + (by - ay) * (px - ax) / (bx - ax)
                        if y0 - 0.01 <= py <= y0 + h + 0.01:
                            return True
            for px, py in pts:  # the points' markers
                if x0 - 0.01 <= px <= x0 + w + 0.01 and y0 - 0.02 <= py <= y0 + h + 0.02:
                    return True
        return False

    for x0 in (left, (left + right - w) / 2, right - w):  # clear of the line's end points
        for y0 in (y + 0.012, y - 0.012 - h):
            if 0 <= y0 and y0 + h <= 1 and 0 <= x0 and x0 + w <= 1 and not crosses(x0, y0):
                return x0, y0 + h / 2
    return left, y + 0.012 + h / 2  # above, at the left: the y range keeps headroom for it


def loop_against_pool(entries):
    """'31× faster than' / '2.0× slower than' the best thread pool, and that pool; (None, None)."""
    loop = best_loop(entries)
    pools = [e for e in entries if e["mode"] == "thread_pool"]
    if not loop or not pools:
        return None, None
    best = min(pools, key=lambda e: e["time"])
    r = best["time"] / loop["time"]
    text = f"{fmt_speedup(r)} faster than" if r >= 1 else f"{fmt_speedup(1 / r)} slower than"
    return text, best


def chart(config, entries, path, hw):
    """Speedup over sequential against threads, one line per mode, the ideal pool dashed, the
    hardware threads marked and the event loop's figure written beside its line (gnuplot, SVG)."""
    if shutil.which("gnuplot") is None:
        return False
    seq = sequential(entries)
    data_dir = os.path.join(os.path.dirname(path), "chart-data")
    os.makedirs(data_dir, exist_ok=True)
    base = os.path.splitext(os.path.basename(path))[0]
    threads = sorted({e["threads"] for e in entries})
    series = {}
    variants = {}  # io_db's other event loop rows, each drawn flat in the loop's colour, dashed
    loop = best_loop(entries)
    for e in entries:
        if e["mode"] == "event_loop" and e is not loop:
            variants[mode_label(e)] = [(threads[0], seq["time"] / e["time"]), (threads[-1], seq["time"] / e["time"])]
            continue
        series.setdefault(e["mode"], []).append((e["threads"], seq["time"] / e["time"]))
    # Single-thread modes are drawn flat across the thread range.
    for flat in ("sequential", "event_loop"):
        if flat in series:
            v = series[flat][0][1]
            series[flat] = [(threads[0], v), (threads[-1], v)]
    # The ideal of a pool on this machine: T for waiting work, capped at the hardware threads
    # for CPU work (the benchmark computes it per row).
    ideal = sorted((e["threads"], e["seq_ideal"] / e["ideal"]) for e in entries if e["mode"] == "thread_pool")

    values = [v for pts in list(series.values()) + list(variants.values()) + [ideal] for _, v in pts]
    x_lo, x_hi = threads[0] / 1.3, max(threads[-1], hw) * 1.3
    y_lo, y_hi = min(values) / 1.6, max(values) * 3.5  # headroom above the top line for its label
    y_base = 10 if y_hi / y_lo > 200 else 2

    def to_frac(x, y):
        fx = None if x is None else math.log(x / x_lo) / math.log(x_hi / x_lo)
        return fx, math.log(y / y_lo) / math.log(y_hi / y_lo)

    plots = []
    for mode in MODE_ORDER + ["ideal"]:
        pts = ideal if mode == "ideal" else series.get(mode)
        if not pts:
            continue
        dat = os.path.join(data_dir, f"{base}.{mode.replace('+', '_')}.dat")
        with open(dat, "w") as f:
            for t, s in sorted(pts):
                f.write(f"{t} {s}\n")
        if mode == "ideal":
            style = f"with lines dt 2 lw 1.5 lc rgb '{COLOURS[mode]}' title 'ideal thread_pool'"
        else:
            style = f"with linespoints pt 7 ps 0.6 lw {3 if mode == 'event_loop' else 2} " \
                    f"lc rgb '{COLOURS[mode]}' title {gp_str(mode)}"
        key_title = mode_label(loop) if mode == "event_loop" and loop and loop.get("variant") else mode
        if key_title != mode:
            style = style.replace(f"title {gp_str(mode)}", f"title {gp_str(key_title)}")
        plots.append(f"{gp_str(dat)} using 1:2 {style}")
    for i, (name, pts) in enumerate(sorted(variants.items())):
        dat = os.path.join(data_dir, f"{base}.variant{i}.dat")
        with open(dat, "w") as f:
            for t, v in pts:
                f.write(f"{t} {v}\n")
        plots.append(f"{gp_str(dat)} using 1:2 with lines dt {3 + i} lw 2 lc rgb '{COLOURS['event_loop']}' "
                     f"title {gp_str(name)}")

    # The hardware threads as a vertical line with its own key entry: a label beside it would
    # cross the pool's line.
    dat = os.path.join(data_dir, f"{base}.hardware_threads.dat")
    with open(dat, "w") as f:
        f.write(f"{hw} {y_lo * 1.001}\n{hw} {y_hi / 1.001}\n")
    plots.insert(0, f"{gp_str(dat)} using 1:2 with lines dt 4 lw 2 lc rgb '#9467bd' title '{hw} hardware threads'")

    title = f"{config}: speedup over sequential"
    labels = []
    if "event_loop" in series:
        v = series["event_loop"][0][1]
        text = f"event loop {fmt_speedup(v)}"
        others = [pts for mode, pts in series.items() if mode != "event_loop"] + list(variants.values()) + [ideal]
        lx, ly = label_spot(text, v, (threads[0], threads[-1]), others, hw, to_frac)
        labels.append(f"set label {gp_str(text)} at graph {lx:.3f}, graph {ly:.3f} left front "
                      f"font 'sans,13' tc rgb '{COLOURS['event_loop']}'")
        against, best = loop_against_pool(entries)
        if against:
            title += f"\\nthe event loop is {against} the best thread pool ({best['threads']} threads)"
    script = f"""
set terminal svg size {CHART_W},{CHART_H} dynamic noenhanced font 'sans,12' background rgb 'white'
set output {gp_str(path)}
set title "{title}"
set xlabel 'threads (pool size)'
set ylabel 'speedup over sequential'
set lmargin at screen {PLOT_L}
set rmargin at screen {PLOT_R}
set bmargin at screen {PLOT_B}
set tmargin at screen {PLOT_T}
set logscale x 2
set logscale y {y_base}
set xrange [{x_lo}:{x_hi}]
set yrange [{y_lo}:{y_hi}]
set xtics ({', '.join(str(t) for t in sorted(set(threads) | {hw}))})
set format y '%g×'
set grid
set key at screen {PLOT_R + 0.02}, screen {PLOT_T} left top Left reverse samplen 3
{chr(10).join(labels)}
plot {', '.join(plots)}
"""
    res = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if res.returncode != 0:
        sys.exit(f"report.py: gnuplot failed on {path} ({exit_reason(res.returncode)}):\n{res.stderr}")
    return True


# ---- the headline -------------------------------------------------------------------


def headline_configs(quick):
    """The README's table: the headline workloads (io_db where a server was at hand), in its order."""
    return ["io_wait/n=10000/w=10ms", "io_socket/n=1000/w=10ms", "io_db/n=1000/w=10ms",
            "cpu/n=1000/c=100us" if quick else "cpu/n=10000/c=100us", "mixed/n=1000/w=10ms/c=100us",
            "simul_chess/n=24"]


def describe(config, short=False):
    """'io_wait: 10,000 jobs each waiting 10 ms' (the README's words), or a terser form."""
    kind, *params = config.split("/")
    p = dict(x.split("=", 1) for x in params if "=" in x)

    def d(key):
        m = re.fullmatch(r"(\d+)(ms|us|s)", p.get(key, ""))
        return f"{m.group(1)} {'µs' if m.group(2) == 'us' else m.group(2)}" if m else p.get(key, "?")

    n = f"{int(p['n']):,}" if p.get("n", "").isdigit() else "?"
    words = {
        "io_wait": (f"{n} jobs each waiting {d('w')}", f"{n} × wait {d('w')}"),
        "io_socket": (f"{n} requests to a server answering after {d('w')}", f"{n} × request {d('w')}"),
        "io_db": (f"{n} PostgreSQL queries each taking {d('w')} on the server", f"{n} × query {d('w')}"),
        "cpu": (f"{n} jobs of {d('c')} hashing", f"{n} × {d('c')} hashing"),
        "mixed": (f"{n} × (wait {d('w')}, then {d('c')} CPU)", f"{n} × ({d('w')} + {d('c')} CPU)"),
        "simul_chess": (f"{p.get('n', '?')} boards, scaled", f"{p.get('n', '?')} boards, scaled"),
    }.get(kind)
    return f"{kind}: {words[1 if short else 0]}" if words else config


def headline_row(entries, hw):
    """The README's cells for one workload: each (entry, speedup) or None, and the fastest."""
    seq = sequential(entries)
    pools = [e for e in entries if e["mode"] == "thread_pool"]
    loop = best_loop(entries)
    lps = [e for e in entries if e["mode"] == "event_loop+pool"]
    lp = next((e for e in lps if e["threads"] == hw), min(lps, key=lambda e: e["time"]) if lps else None)
    best = min(pools, key=lambda e: e["time"]) if pools else None
    cells = {"sequential": seq, "pool": best, "loop": loop, "loop+pool": lp}
    present = [e for e in cells.values() if e]
    return cells, min(present, key=lambda e: e["time"])


def headline_md(configs, quick, hw):
    out = [f"| workload | sequential | best thread pool | event_loop | event_loop+pool/{hw} |",
           "|---|---:|---:|---:|---:|"]
    for config in headline_configs(quick):
        if config not in configs:
            out.append(f"| {describe(config)} | not measured | | | |")
            continue
        entries = configs[config]
        cells, fastest = headline_row(entries, hw)
        seq = cells["sequential"]
        row = [describe(config), fmt_time(seq["time"])]
        for key in ("pool", "loop", "loop+pool"):
            e = cells[key]
            if not e:
                row.append("—")
                continue
            threads = f" ({e['threads']} threads)" if key == "pool" else ""
            if key == "loop" and e.get("variant"):
                threads = f" ({e['variant']})"
            text = f"{fmt_time(e['time'])}{threads}: {fmt_speedup(seq['time'] / e['time'])}"
            why = past_ideal(e, entries)
            if why:
                text += f" ({why})"
            row.append(f"**{text}**" if e is fastest else text)
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def headline_text(configs, quick, hw):
    """The headline table for the terminal: aligned plain-text columns."""
    rows = [["workload", "sequential", "best thread pool", "event_loop", "event_loop vs pool",
             f"event_loop+pool/{hw}"]]
    for config in headline_configs(quick):
        if config not in configs:
            rows.append([describe(config, short=True), "not measured", "", "", "", ""])
            continue
        entries = configs[config]
        cells, fastest = headline_row(entries, hw)
        seq = cells["sequential"]
        row = [describe(config, short=True), fmt_short(seq["time"]) + (" *" if seq is fastest else "")]
        for key in ("pool", "loop", "loop+pool"):
            e = cells[key]
            if e:
                threads = f" ({e['threads']})" if key == "pool" else ""
                if key == "loop" and e.get("variant"):
                    threads = f" ({e['variant']})"
                text = f"{fmt_short(e['time'])}{threads}: {fmt_speedup(seq['time'] / e['time'])}"
                if past_ideal(e, entries):
                    text += " (!)"
                row.append(text + (" *" if e is fastest else ""))
            else:
                row.append("—")
            if key == "loop":
                against, _ = loop_against_pool(entries)
                row.append(against.replace(" than", "") if against else "—")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1])] + [c.ljust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
    lines.append("cells: time: speedup over sequential; (T) the best pool's threads; * the fastest; "
                 "(!) past the ideal, see below")
    return lines


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
    # Spawned tasks (their future's state, their place among the loop's tasks): the figure
    # the 128 B target is checked against. RSS beside the heap figure, page faults included.
    row = rows.get("sleeps_1s_spawned/corio/1000000/iterations:1/manual_time")
    f["sleeps_spawned"] = (seconds(row) / 1e6, row.get("bytes_per_task"), row.get("rss_per_task")) if row else None
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
        peer = f"Asio steady_timer {fmt_time(sl['asio'][0])}, {sl['asio'][1] or 0:.0f} B" if "asio" in sl else ""
        rows.append(("1,000,000 × sleep(100 ms): overhead per task", sl["corio"][0],
                     f"{sl['corio'][1] or 0:.0f} B per task (gather)", peer))
    if f.get("sleeps_spawned"):
        per, size, rss = f["sleeps_spawned"]
        rows.append(("1,000,000 × spawn(sleep(1 s)): overhead per task", per,
                     f"{size or 0:.0f} B per task, RSS {rss or 0:.0f} B", ""))
    rows.append(("cross-thread round trip (promise)", ct["corio"], f"raw eventfd ping-pong {fmt_time(ct['floor_eventfd'])}", ""))
    rows.append(("to_thread round trip", tt["corio"], "", f"std::thread pool + std::future {fmt_time(tt['std_future'])}"))
    out = ["| operation | corio | floor | peer |", "|---|---:|---|---|"]
    for name, v, floor, peer in rows:
        out.append(f"| {name} | {fmt_time(v)} | {floor} | {peer} |")
    return "\n".join(out)


# ---- echo and HTTP -------------------------------------------------------------------

ECHO_SERVERS = ["corio_io_uring", "raw_io_uring", "corio_epoll", "raw_epoll", "asio", "blocking_threads"]


def echo_figures(rows):
    """(size, conns) -> server -> {rate, p50, p99, cpu}."""
    out = {}
    for name, row in rows.items():
        m = re.match(r"echo/(\d+)B/conns=(\d+)/([^/]+)", name)
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        out.setdefault(key, {})[m.group(3)] = {
            "rate": row.get("msgs_per_s"), "p50": row.get("p50_us"), "p99": row.get("p99_us"),
            "cpu": row.get("server_cpu_us_per_msg")}
    return out


def echo_table(echo):
    # The known servers in their order, then any other peer the run measured.
    seen = {s for by in echo.values() for s in by}
    servers = [s for s in ECHO_SERVERS if s in seen] + sorted(seen - set(ECHO_SERVERS))
    if not servers:
        return "Not measured."
    out = ["| message, connections | " + " | ".join(servers) + " |", "|---|" + "---:|" * len(servers)]
    for (size, conns), by in sorted(echo.items()):
        cells = []
        for srv in servers:
            e = by.get(srv)
            if not e or e["rate"] is None:
                cells.append("—")
                continue
            cell = f"{e['rate'] / 1000:.1f} k/s"
            if e["p50"] is not None:
                cell += f", p50 {e['p50']:.0f} µs"
            if e["cpu"] is not None:
                cell += f", {e['cpu']:.2f} µs CPU"
            cells.append(cell)
        out.append(f"| {size} B, {conns} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def http_table(http):
    out = ["| server | requests/s | mean latency | errors |", "|---|---:|---:|---|"]
    for name, h in http.items():
        out.append(f"| {name} | {h['rate']:,.0f} | {h['latency_us']:.0f} µs | {'yes' if h['errors'] else 'none'} |")
    return "\n".join(out)


# ---- targets ------------------------------------------------------------------------


def at_most(v, bound):
    """v <= bound; None when v was not measured."""
    return None if v is None or math.isnan(v) else v <= bound


def at_least(v, bound):
    return None if v is None or math.isnan(v) else v >= bound


def targets(f, configs, echo=None, http=None):
    """[(target, measured, met)], met None when a figure it needs was not measured."""
    out = []

    def row(name, measured, ok):
        out.append((name, measured, ok))

    ta = f["task_await"]
    r = ratio(ta["corio"], ta["floor"])
    row("task create+await ≤ 1.2× the hand-written floor", fmt_ratio(r), at_most(r, 1.2))
    r = ratio(ta["corio"], ta["asio"])
    row("task create+await no slower than Asio", f"{fmt_ratio(r)} Asio", at_most(r, 1.0))
    y = f["yield"]["corio"]
    row("yield ≤ 10 ns", fmt_time(y), at_most(y, 10e-9))
    for n, v in f["gather"].items():
        row(f"gather ≤ 30 ns per child (N={n:,})", fmt_time(v), at_most(v, 30e-9))
    r = ratio(f["spawn"]["asio"], f["spawn"]["corio"])
    row("spawn+await ≥ 5× faster than Asio co_spawn", fmt_ratio(r), at_least(r, 5))
    if "corio" in f["sleeps"]:
        per, size = f["sleeps"]["corio"]
        row("1,000,000 sleeps: ≤ 200 ns overhead per task", fmt_time(per), at_most(per, 200e-9))
    if f.get("sleeps_spawned"):
        _, size, rss = f["sleeps_spawned"]
        shown = f"{size:.0f} B (RSS {rss:.0f} B)" if size and rss else "—"
        row("1,000,000 spawned sleeps: ≤ 128 B per task", shown, at_most(size, 128))
    r = ratio(f["cross_thread"]["corio"], f["cross_thread"]["floor_eventfd"])
    row("cross-thread round trip ≤ 1.1× raw eventfd", fmt_ratio(r), at_most(r, 1.1))

    io = configs.get("io_wait/n=10000/w=10ms")
    if io:
        seq = sequential(io)
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
        seq = sequential(entries)
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
                    f"{r:.2f}× (server CPU per message {fmt_ratio(c)})", r >= bound)
        for ours in ("corio_io_uring", "corio_epoll"):
            if rate(ours) and rate("asio"):
                r = rate(ours) / rate("asio")
                c = cpu("asio") / cpu(ours) if cpu(ours) and cpu("asio") else float("nan")
                row(f"{where}: {ours} ≥ 1.3× Asio (throughput)", f"{r:.2f}× (Asio uses {fmt_ratio(c)} the server CPU)",
                    r >= 1.3)
        if conns == 1 and (by.get("blocking_threads") or {}).get("p50"):
            floor = by["blocking_threads"]["p50"]
            for ours in ("corio_io_uring", "corio_epoll"):
                if (by.get(ours) or {}).get("p50"):
                    r = by[ours]["p50"] / floor
                    row(f"{where}: {ours} p50 ≤ 1.15× the blocking-socket floor",
                        f"{r:.2f}× ({by[ours]['p50']:.1f} µs vs {floor:.1f} µs)", r <= 1.15)
    if http and "corio" in http and "asio" in http:
        r = http["corio"]["rate"] / http["asio"]["rate"]
        row("HTTP hello under wrk: corio ≥ Asio", f"{r:.2f}×", r >= 1.0)
    return out


def targets_md(rows):
    out = ["| target | measured | |", "|---|---|---|"]
    for name, measured, ok in rows:
        out.append(f"| {name} | {measured} | {'not measured' if ok is None else 'met' if ok else '**missed**'} |")
    return "\n".join(out)


def targets_text(rows, limit=8):
    """The targets for the terminal: the count, then each missed one (at most limit)."""
    met = sum(1 for r in rows if r[2])
    missed = [r for r in rows if r[2] is False]
    unmeasured = sum(1 for r in rows if r[2] is None)
    head = f"targets: {met} of {len(rows)} met" + (f", {unmeasured} not measured" if unmeasured else "")
    if not missed:
        return [head]
    lines = [head + f"; missed ({len(missed)}):"]
    width = max(len(r[0]) for r in missed[:limit])
    lines += [f"  {name:<{width}}  {measured}" for name, measured, _ in missed[:limit]]
    if len(missed) > limit:
        lines.append(f"  ... and {len(missed) - limit} more (report.md lists every target)")
    return lines


# ---- noise ---------------------------------------------------------------------------


def unreliable(load, configs, build_type):
    """(causes, caveats): why the figures cannot be trusted, one cause each (empty when nothing
    passes the bounds), and the speedups a slow sequential run lifts past the ideal."""
    causes, caveats = [], []
    if build_type is not None and build_type.lower() in ("", "debug"):
        causes.append(f"the benchmarks were built without optimisation (CMAKE_BUILD_TYPE={build_type or 'empty'})")
    busy = load.get("busy_at_start")
    if busy is not None and busy > BUSY_AT_START_LIMIT:
        causes.append(f"other processes kept {busy:.0%} of the CPUs busy just before the start "
                      f"(over {BUSY_AT_START_LIMIT:.0%})")
    for p in load.get("phases", []):
        if p.get("others", 0) > OTHERS_LIMIT:
            causes.append(f"other processes took {p['others']:.0%} of the CPU time during {p['name']} "
                          f"(over {OTHERS_LIMIT:.0%})")
        if p.get("steal", 0) > STEAL_LIMIT:
            causes.append(f"the hypervisor stole {p['steal']:.0%} of the CPU time during {p['name']} "
                          f"(over {STEAL_LIMIT:.0%})")
    noisy = []
    for config, entries in sorted(configs.items()):
        lifted = []
        for e in entries:
            why = past_ideal(e, entries)
            if why == "noise":
                noisy.append((efficiency(e, entries), config, mode_label(e)))
            elif why:
                lifted.append(f"{mode_label(e)} {efficiency(e, entries):.0%}")
        if lifted:
            seq = sequential(entries)
            caveats.append(f"{config}: the sequential run took {seq['time'] / seq['ideal']:.2f}× its ideal time "
                           f"(each blocking wait overshoots), so speedups over it read high ({', '.join(lifted)} "
                           "of the ideal)")
    if noisy:
        eff, config, label = max(noisy)
        causes.append(f"{len(noisy)} mode{'s' if len(noisy) > 1 else ''} beat {'their' if len(noisy) > 1 else 'its'} "
                      f"ideal time by over {EFFICIENCY_TOLERANCE:.0%}, which only noise can do (highest efficiency: "
                      f"{config} {label} {eff:.0%})")
    return causes, caveats


# ---- main ---------------------------------------------------------------------------


def machine(context):
    return (
        f"{context.get('cpu_model', '?')}, {context.get('num_cpus', '?')} hardware threads, "
        f"Linux {platform.release()}, {context.get('compiler', '?')}, "
        f"corio backend {context.get('corio_backend', '?')}, {context.get('mode', '?')} mode, "
        f"{context.get('date', '')}"
    )


def read_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the short run (a few minutes on 2 cores)")
    ap.add_argument("--bin-dir", required=True, help="where bench_modes and bench_micro are")
    ap.add_argument("--out", required=True, help="where to write the JSON, logs, report.md and the charts")
    ap.add_argument("--render-only", action="store_true", help="render from the JSON already in --out")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    bin_dir = os.path.abspath(args.bin_dir)

    modes_cmd = [os.path.join(bin_dir, "bench_modes")] + (["--quick"] if args.quick else [])
    micro_cmd = [os.path.join(bin_dir, "bench_micro"), "--benchmark_repetitions=3",
                 "--benchmark_report_aggregates_only=true",
                 "--benchmark_min_time=" + ("0.1" if args.quick else "0.5")]
    # Interleaved repetitions spread the VM's drift over every server alike.
    echo_cmd = [os.path.join(bin_dir, "bench_echo"), "--benchmark_enable_random_interleaving=true"] + (
        ["--quick"] if args.quick else [])
    http_servers = {"corio": [os.path.normpath(os.path.join(bin_dir, "..", "examples", "http_server")), "--port", "0"],
                    "asio": [os.path.join(bin_dir, "bench_http_asio"), "0"]}
    if args.render_only:
        modes = read_json(os.path.join(out, "modes.json"), None)
        micro = read_json(os.path.join(out, "micro.json"), None)
        if modes is None or micro is None:
            sys.exit(f"report.py: --render-only needs modes.json and micro.json in {out}")
        echo_data = read_json(os.path.join(out, "echo.json"), {"benchmarks": []})
        http = read_json(os.path.join(out, "http.json"), {})
        run_info = read_json(os.path.join(out, "run.json"), {})
        args.quick = modes["context"].get("mode") == "quick"
    else:
        build_type = cmake_build_type(bin_dir)
        if build_type is not None and build_type.lower() in ("", "debug"):
            print(f"warning: the benchmarks in {bin_dir} are not an optimised build "
                  f"(CMAKE_BUILD_TYPE={build_type or 'empty'}); the figures will say little", flush=True)
        meter = load_meter()
        with meter.phase("modes"):
            modes = run_bench("modes", modes_cmd, out)
        with meter.phase("micro"):
            micro = run_bench("micro", micro_cmd, out)
        with meter.phase("echo"):
            echo_data = run_bench("echo", echo_cmd, out)
        http, skipped = {}, []
        with meter.phase("http"):
            todo = [(n, c) for n, c in http_servers.items() if os.path.exists(c[0])]
            skipped = [f"{n}: {c[0]} is not built" for n, c in http_servers.items() if not os.path.exists(c[0])]
            if shutil.which("wrk") is None:
                skipped = ["every server: wrk is not installed (apt-get install wrk)"]
                todo = []
            secs = 2 if args.quick else 5
            for i, (name, cmd) in enumerate(todo, 1):
                print(f"[{i}/{len(todo)}] http: wrk -t1 -c50 -d{secs}s against {os.path.basename(cmd[0])}"
                      f"   (est. {fmt_duration((secs + 1) * (len(todo) - i + 1))} left)", flush=True)
                http[name] = wrk(name, cmd, secs, out)
                time.sleep(0.5)
            for s in skipped:
                print(f"http: skipped {s}", flush=True)
        meter.finish()
        run_info = {"load": meter.to_json(), "build_type": build_type, "http_skipped": skipped}
        with open(os.path.join(out, "http.json"), "w") as f:
            json.dump(http, f, indent=1)
        with open(os.path.join(out, "run.json"), "w") as f:
            json.dump(run_info, f, indent=1)

    load = run_info.get("load", {})
    build_type = run_info.get("build_type")
    hw = int(modes["context"].get("num_cpus") or load.get("threads") or os.cpu_count() or 1)
    configs = parse_mode_rows(medians(modes))
    figures = micro_figures(medians(micro))
    echo = echo_figures(medians(echo_data))
    target_rows = targets(figures, configs, echo, http)
    causes, caveats = unreliable(load, configs, build_type)

    headline = headline_configs(args.quick)
    lib = modes["context"].get("library_build_type")
    built = f"; the benchmarks: CMAKE_BUILD_TYPE={build_type}" if build_type else ""
    md = ["# corio benchmark report", "", f"Measured on: {machine(modes['context'])}.", ""]
    if lib:
        md += [f"Google Benchmark library: {lib} build (Debian's package reports itself so){built}.", ""]
    if causes:
        md += ["**Figures unreliable:** " + "; ".join(causes) + ".", ""]
    elif load:
        md += ["No noise past the bounds (no mode beat its ideal time by over "
               f"{EFFICIENCY_TOLERANCE:.0%}, steal ≤ {STEAL_LIMIT:.0%} and other processes ≤ {OTHERS_LIMIT:.0%} "
               "of the CPU time in every phase; bench/README.md).", ""]
    if caveats:
        md += ["**Speedups over a slow baseline:** " + "; ".join(caveats) + ".", ""]
    if causes or caveats:
        md += [f"An efficiency over {1 + EFFICIENCY_TOLERANCE:.0%} is marked *(noise)* where the mode itself "
               "beat its ideal time, *(slow baseline)* where the sequential run was slow.", ""]
    md += ["Medians of the repetitions; every figure from this one run. *Speedup* is over the sequential "
           "run of the same workload; *ideal speedup* is what the mode could reach on this machine "
           "(waits overlap perfectly, CPU work spreads over at most the hardware threads); "
           "*efficiency* is speedup / ideal. Blocking runs that would exceed the time budget ran a whole "
           "number of rounds and were scaled to all rounds (marked ×rounds).", ""]
    md += ["## Headline", "", "Time and speedup over sequential; the fastest in bold.", "",
           headline_md(configs, args.quick, hw), ""]
    db_skipped = modes["context"].get("io_db_skipped")
    if db_skipped:
        md += [f"io_db was not measured: {db_skipped}.", ""]
    elif any(c.startswith("io_db/") for c in configs):
        md += ["io_db: K=k is the event loop over k connections (a corio::pg pool); K=1/pipelined one "
               "connection in pipeline mode, where the server still runs the queries one after another, so "
               "it was run for the time budget and scaled (×rounds). The thread pools hold one connection "
               "per thread. The server is the one CORIO_PG_DSN names, or one bench_modes starts.", ""]
    md += ["## Machine load", ""] + load_section(load)
    md += ["## Targets", "", targets_md(target_rows), ""]
    md += ["## Execution modes", ""]
    order = [c for c in headline if c in configs] + sorted(c for c in configs if c not in headline)
    charts = []
    for config in order:
        md += [f"### {config}", "", mode_table(configs[config]), ""]
        if config in headline:
            svg = config.split("/")[0] + ".svg"
            if chart(config, configs[config], os.path.join(out, svg), hw):
                md += [f"![{config}]({svg})", ""]
                charts.append(os.path.join(out, svg))
    md += ["## Echo", "", "The same load client (one wave: every connection sends one message and waits for "
           "its echo) against each server; client and server on different cores. Each cell: echoes per "
           "second, median round trip, and the server's CPU time per echoed message (the process's CPU "
           "time minus the client thread's). With two cores the client saturates its own core at 50+ "
           "connections, so throughput there is bounded by the client and the server CPU column is "
           "the sharper comparison.", "", echo_table(echo), ""]
    md += ["## HTTP hello under wrk", ""]
    if http:
        md += ["`wrk -t1 -c50` against examples/http_server (header limits, idle and header timeouts on every "
               "read) and an Asio coroutine server that answers the same (without limits or timeouts); server "
               "on core 0, wrk on core 1.", "", http_table(http), ""]
    for s in run_info.get("http_skipped", []):
        md += [f"Not measured for {s}.", ""]
    md += ["## Micro-benchmarks", "", micro_table(figures), ""]
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(md))

    mode = "quick" if args.quick else "full"
    summary = ["", f"corio benchmarks ({mode} run): {machine(modes['context'])}", ""]
    summary += headline_text(configs, args.quick, hw) + [""]
    if modes["context"].get("io_db_skipped"):
        summary += [f"io_db not measured: {modes['context']['io_db_skipped']}", ""]
    summary += targets_text(target_rows) + [""]
    summary.append("load: " + load_line(load) if load else "load: not recorded (run.json is missing)")
    summary += ["figures unreliable: " + c for c in causes]
    if not causes:
        summary.append("figures reliable: no noise past the bounds (bench/README.md)" if load else
                       "figures: no mode beat its ideal; the machine's load was not recorded")
    summary += ["slow baseline: " + c for c in caveats]
    for name, h in http.items():
        if h.get("errors"):
            summary.append(f"http: wrk saw socket errors or non-2xx answers from {name} (http-{name}.log)")
    summary.append(f"report: {path}")
    summary.append("charts: " + (" ".join(charts) if charts else "none (gnuplot is not installed)"))
    logs = [os.path.join(out, n) for n in sorted(os.listdir(out)) if n.endswith(".log")]
    if logs:
        summary.append("logs:   " + " ".join(logs))
    print("\n".join(summary), flush=True)


if __name__ == "__main__":
    main()
