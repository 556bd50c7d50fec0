// The comparison the suite exists for: one workload, four ways to run it.
//
//   sequential          one thread, blocking calls
//   thread_pool/T       T threads running the blocking version (T up to 256 for waiting)
//   event_loop          one thread, one corio loop, coroutines + gather
//   event_loop+pool/T   the loop, with the CPU part sent to a pool of T through run_in
//
// Workloads: io_wait (wait W), io_socket (a request over loopback TCP to a server that
// answers after W: connect, send, receive), io_db (a query to a real PostgreSQL server that
// takes W there: SELECT pg_sleep(W), $1; built where libpq is found), cpu (C us of
// hashing), mixed (wait W, then C us: a web request), simul_chess (the exhibition from
// examples/). Each row reports the wall time
// (manual time, one run per repetition), and counters the report turns into speedups:
// ideal_s (the mode's ideal time on this machine), seq_ideal_s, and extrapolated (1, or
// the factor a blocking run was scaled by: see run_blocking).
//
// Usage: bench_modes [--quick] [Google Benchmark flags]

#include <benchmark/benchmark.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <corio/corio.hpp>

#if CORIO_BENCH_POSTGRES
#include <latch>

#include <corio/postgres.hpp>
#endif

#include "common.hpp"

namespace {

using bench::steady;
using std::chrono::duration;

bool quick = false;

struct workload {
    std::string kind;  // io_wait, io_socket, cpu, mixed
    long n;
    double w_us;
    double c_us;
};

std::chrono::microseconds usec(double us) { return std::chrono::microseconds(static_cast<long>(us)); }

// The io_socket workload's server: a corio loop of its own on a background thread, for
// the whole process. A request is 4 bytes (the delay in µs); the answer is 1 byte after it.
class delay_server {
public:
    static const corio::net::endpoint& endpoint() {
        static delay_server* s = new delay_server;  // never destroyed: its thread runs until exit
        return s->ep_;
    }

private:
    delay_server() {
        std::promise<corio::net::endpoint> started;
        auto ep = started.get_future();
        std::thread([&started] {
            corio::run([&]() -> corio::task<> {
                auto l = corio::net::tcp_listener::bind(corio::net::endpoint::loopback(0), {.backlog = 4096});
                started.set_value(l.local_endpoint());
                co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
                    for (;;) g.spawn(answer(co_await l.accept()));
                });
            });
        }).detach();
        ep_ = ep.get();
    }
    static corio::task<> answer(corio::net::tcp_stream s) {
        std::uint32_t delay_us = 0;
        try {
            co_await s.read_exact(corio::mutable_buffer(&delay_us, sizeof delay_us));
            co_await corio::sleep(std::chrono::microseconds(delay_us));
            co_await s.write_all(std::string_view("k"));
        } catch (const std::system_error&) {
        }
    }
    corio::net::endpoint ep_;
};

void blocking_request(const workload& w) {
    const auto& ep = delay_server::endpoint();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto delay = static_cast<std::uint32_t>(w.w_us);
    char reply = 0;
    if (::connect(fd, ep.data(), ep.size()) < 0 || ::send(fd, &delay, sizeof delay, MSG_NOSIGNAL) != sizeof delay ||
        ::recv(fd, &reply, 1, MSG_WAITALL) != 1)
        throw std::system_error(errno, std::system_category(), "io_socket: blocking request");
    ::close(fd);
}

corio::task<> async_request(const workload& w) {
    auto s = co_await corio::net::tcp_stream::connect(delay_server::endpoint());
    const auto delay = static_cast<std::uint32_t>(w.w_us);
    co_await s.write_all(corio::const_buffer(&delay, sizeof delay));
    char reply = 0;
    co_await s.read_exact(corio::mutable_buffer(&reply, 1));
}

#if CORIO_BENCH_POSTGRES
// ---- io_db: the server is the one CORIO_PG_DSN names, else a throw-away one this process
// starts (tests/postgres/server.sh: initdb into /tmp, a Unix socket there) and stops at exit.

std::string db_sql() { return "SELECT pg_sleep($1::float8), $2::int"; }

// Why io_db cannot run here ("" when it can): neither a server given nor one to start.
std::string db_unavailable() {
    const char* env = std::getenv("CORIO_PG_DSN");
    if (env != nullptr && *env != '\0') return "";
    const std::string check = std::string("bash '") + CORIO_BENCH_PG_SCRIPT + "' check >/dev/null";
    if (std::system(check.c_str()) != 0)
        return "no PostgreSQL server to start (Debian: apt-get install postgresql) and no CORIO_PG_DSN";
    return "";
}

std::string db_dir() { return "/tmp/corio-pg-bench-" + std::to_string(::getpid()); }

void db_stop() {
    const std::string stop = std::string("bash '") + CORIO_BENCH_PG_SCRIPT + "' stop '" + db_dir() + "' >/dev/null";
    if (std::system(stop.c_str()) != 0) std::fprintf(stderr, "bench_modes: stopping the io_db server failed\n");
}

// The connection string, starting the server at the first call.
const std::string& db_dsn() {
    static const std::string dsn = [] {
        if (const char* env = std::getenv("CORIO_PG_DSN"); env != nullptr && *env != '\0') return std::string(env);
        const std::string start =
            std::string("bash '") + CORIO_BENCH_PG_SCRIPT + "' start '" + db_dir() + "' 55433 >/dev/null";
        if (std::system(start.c_str()) != 0) throw std::runtime_error("io_db: the PostgreSQL server did not start");
        std::atexit(db_stop);
        return "host=" + db_dir() + " port=55433 dbname=postgres user=postgres";
    }();
    return dsn;
}

struct pgconn_deleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};

// Each thread's own blocking connection (a pool thread's closes when the thread ends).
PGconn* thread_db() {
    thread_local std::unique_ptr<PGconn, pgconn_deleter> conn;
    if (!conn) {
        conn.reset(PQconnectdb(db_dsn().c_str()));
        if (PQstatus(conn.get()) != CONNECTION_OK)
            throw std::runtime_error(std::string("io_db: connect: ") + PQerrorMessage(conn.get()));
    }
    return conn.get();
}

std::string db_wait_s(const workload& w) { return std::to_string(w.w_us * 1e-6); }

void blocking_db_request(const workload& w) {
    const std::string wait = db_wait_s(w);
    const char* values[] = {wait.c_str(), "1"};
    PGresult* r = PQexecParams(thread_db(), db_sql().c_str(), 2, nullptr, values, nullptr, nullptr, 0);
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    const std::string why = ok ? "" : PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error("io_db: blocking request: " + why);
}

// Every pool thread opens its connection before the clock starts: each takes one job and
// holds it until all have theirs.
void warm_db(bench::blocking_pool* pool, unsigned t) {
    if (pool == nullptr) {
        thread_db();
        return;
    }
    std::latch all(t);
    const std::function<void(long)> open = [&](long) {
        thread_db();
        all.arrive_and_wait();
    };
    pool->run(t, open);
}
#endif

void blocking_job(const workload& w) {
    if (w.kind == "io_socket") return blocking_request(w);
#if CORIO_BENCH_POSTGRES
    if (w.kind == "io_db") return blocking_db_request(w);
#endif
    if (w.w_us > 0) std::this_thread::sleep_for(usec(w.w_us));
    if (w.c_us > 0) bench::cpu_work(w.c_us);
}

corio::task<> async_job(const workload& w) {
    if (w.kind == "io_socket") {
        co_await async_request(w);
        co_return;
    }
    if (w.w_us > 0) co_await corio::sleep(usec(w.w_us));
    if (w.c_us > 0) bench::cpu_work(w.c_us);
}

corio::task<> async_pool_job(const workload& w, corio::thread_pool& pool) {
    if (w.w_us > 0) co_await corio::sleep(usec(w.w_us));
    if (w.c_us > 0) co_await corio::run_in(pool, bench::cpu_work, w.c_us);
}

double budget_s() { return quick ? 0.2 : 1.0; }

double cores() { return bench::hardware_threads(); }

// Ideal times, in seconds, on this machine (CPU parallelism is capped by its cores).
double ideal_sequential(const workload& w) { return static_cast<double>(w.n) * (w.w_us + w.c_us) * 1e-6; }

double ideal_pool(const workload& w, unsigned t) {
    const double rounds = std::ceil(static_cast<double>(w.n) / t);
    const double cpu_bound = static_cast<double>(w.n) * w.c_us * 1e-6 / std::min<double>(t, cores());
    return std::max(rounds * (w.w_us + w.c_us) * 1e-6, cpu_bound);
}

double ideal_loop(const workload& w) { return (w.w_us + static_cast<double>(w.n) * w.c_us) * 1e-6; }

double ideal_loop_pool(const workload& w, unsigned t) {
    return (w.w_us + w.c_us) * 1e-6 + static_cast<double>(w.n - 1) * w.c_us * 1e-6 / std::min<double>(t, cores());
}

void set_counters(benchmark::State& state, const workload& w, double ideal, double extrapolated, unsigned t) {
    state.counters["n"] = static_cast<double>(w.n);
    state.counters["w_us"] = w.w_us;
    state.counters["c_us"] = w.c_us;
    state.counters["threads"] = t;
    state.counters["ideal_s"] = ideal;
    state.counters["seq_ideal_s"] = ideal_sequential(w);
    state.counters["extrapolated"] = extrapolated;
}

// A blocking mode whose full run would exceed the time budget runs a whole number of
// rounds (T jobs each) and reports its time scaled to all rounds. Blocking jobs take the
// same time in every round, so this is the measured rate, not a model; the factor is
// kept in the row ("extrapolated") and shown by the report.
void run_blocking(benchmark::State& state, const workload& w, unsigned t) {
    const long width = std::max(1U, t);  // jobs per round; sequential runs one at a time
    // A round: the wait, plus the CPU part stretched when there are more threads than cores.
    const double round_s = (w.w_us + w.c_us * std::max(1.0, static_cast<double>(width) / cores())) * 1e-6;
    const long rounds_all = (w.n + width - 1) / width;
    long rounds = rounds_all;
    if (static_cast<double>(rounds) * round_s > budget_s())
        rounds = std::max(1L, static_cast<long>(budget_s() / round_s));
    const long jobs = std::min(w.n, rounds * width);
    const double factor = static_cast<double>(rounds_all) / static_cast<double>((jobs + width - 1) / width);

    std::unique_ptr<bench::blocking_pool> pool;
    if (t > 0) pool = std::make_unique<bench::blocking_pool>(t);
    const std::function<void(long)> job = [&](long) { blocking_job(w); };
#if CORIO_BENCH_POSTGRES
    if (w.kind == "io_db") warm_db(pool.get(), t);
#endif
    for (auto _ : state) {
        const auto t0 = steady::now();
        if (pool)
            pool->run(jobs, job);
        else
            for (long i = 0; i < jobs; ++i) blocking_job(w);
        state.SetIterationTime(duration<double>(steady::now() - t0).count() * factor);
    }
    set_counters(state, w, t == 0 ? ideal_sequential(w) : ideal_pool(w, t), factor, t == 0 ? 1 : t);
}

void run_event_loop(benchmark::State& state, const workload& w, unsigned pool_threads) {
    corio::event_loop loop;
    std::unique_ptr<corio::thread_pool> pool;
    if (pool_threads > 0) pool = std::make_unique<corio::thread_pool>(pool_threads);
    for (auto _ : state) {
        const auto t0 = steady::now();
        loop.run([&]() -> corio::task<> {
            std::vector<corio::task<>> jobs;
            jobs.reserve(static_cast<std::size_t>(w.n));
            for (long i = 0; i < w.n; ++i) jobs.push_back(pool ? async_pool_job(w, *pool) : async_job(w));
            co_await corio::gather(std::move(jobs));
        });
        state.SetIterationTime(duration<double>(steady::now() - t0).count());
    }
    set_counters(state, w, pool ? ideal_loop_pool(w, pool_threads) : ideal_loop(w), 1, pool ? pool_threads : 1);
}

#if CORIO_BENCH_POSTGRES
// io_db on the loop, K connections, one query each at a time: a corio::pg::pool of K, its
// connections opened before the clock starts.
void db_event_loop(benchmark::State& state, const workload& w, unsigned conns) {
    corio::event_loop loop;
    const std::string dsn = db_dsn();
    for (auto _ : state) {
        const double s = loop.run([&]() -> corio::task<double> {
            corio::pg::pool db(dsn, conns);
            {
                std::vector<corio::pg::pool::lease> warm;
                for (unsigned k = 0; k < conns; ++k) warm.push_back(co_await db.acquire());
            }
            const auto t0 = steady::now();
            std::vector<corio::task<>> jobs;
            jobs.reserve(static_cast<std::size_t>(w.n));
            for (long i = 0; i < w.n; ++i) {
                jobs.push_back([](corio::pg::pool& p, const workload& wl, long id) -> corio::task<> {
                    auto conn = co_await p.acquire();
                    corio::pg::result r = co_await conn->query(db_sql(), db_wait_s(wl), id);
                    if (r[0][1].as<long>() != id) throw std::runtime_error("io_db: a wrong answer");
                }(db, w, i));
            }
            co_await corio::gather(std::move(jobs));
            co_return duration<double>(steady::now() - t0).count();
        });
        state.SetIterationTime(s);
    }
    const double rounds = std::ceil(static_cast<double>(w.n) / conns);
    set_counters(state, w, rounds * w.w_us * 1e-6, 1, conns);
}

// io_db on the loop over one connection in pipeline mode: every query sent before the
// first answer is read. The server runs one connection's queries one after another, so n
// waits of W take n × W however they are sent: the run takes what fits the time budget
// and is scaled to n, as run_blocking does (the factor is kept in "extrapolated").
void db_pipelined(benchmark::State& state, const workload& w) {
    corio::event_loop loop;
    const std::string dsn = db_dsn();
    const long jobs = std::clamp(static_cast<long>(budget_s() / (w.w_us * 1e-6)), 1L, w.n);
    const double factor = static_cast<double>(w.n) / static_cast<double>(jobs);
    for (auto _ : state) {
        const double s = loop.run([&]() -> corio::task<double> {
            auto conn = co_await corio::pg::connection::connect(dsn);
            std::vector<corio::pg::statement> batch;
            batch.reserve(static_cast<std::size_t>(jobs));
            for (long i = 0; i < jobs; ++i) batch.emplace_back(db_sql(), db_wait_s(w), i);
            const auto t0 = steady::now();
            auto out = co_await conn.pipeline(std::move(batch));
            const double elapsed = duration<double>(steady::now() - t0).count();
            for (long i = 0; i < jobs; ++i)
                if (out[static_cast<std::size_t>(i)].value()[0][1].as<long>() != i)
                    throw std::runtime_error("io_db: a wrong answer in the pipeline");
            co_return elapsed;
        });
        state.SetIterationTime(s * factor);
    }
    set_counters(state, w, ideal_sequential(w), factor, 1);
}
#endif

// ---- simul_chess: 24 boards, 30 move pairs; the master's 5 s per move is her own CPU
// time (one master: a mutex in the pool mode), each opponent's 55 s is waiting.

constexpr int boards = 24;
constexpr int move_pairs = 30;

double chess_second_us() { return quick ? 10.0 : 50.0; }

void chess_counters(benchmark::State& state, double ideal, unsigned t) {
    const double s = chess_second_us() * 1e-6;
    state.counters["n"] = boards;
    state.counters["w_us"] = 55 * chess_second_us();
    state.counters["c_us"] = 5 * chess_second_us();
    state.counters["threads"] = t;
    state.counters["ideal_s"] = ideal;
    state.counters["seq_ideal_s"] = boards * move_pairs * 60 * s;
    state.counters["extrapolated"] = 1;
}

void chess_sequential(benchmark::State& state) {
    const double sec = chess_second_us();
    for (auto _ : state) {
        const auto t0 = steady::now();
        for (int b = 0; b < boards; ++b)
            for (int m = 0; m < move_pairs; ++m) {
                bench::cpu_work(5 * sec);
                std::this_thread::sleep_for(usec(55 * sec));
            }
        state.SetIterationTime(duration<double>(steady::now() - t0).count());
    }
    chess_counters(state, boards * move_pairs * 60 * sec * 1e-6, 1);
}

void chess_pool(benchmark::State& state, unsigned t) {
    const double sec = chess_second_us();
    bench::blocking_pool pool(t);
    std::mutex master;
    const std::function<void(long)> game = [&](long) {
        for (int m = 0; m < move_pairs; ++m) {
            {
                std::lock_guard lock(master);
                bench::cpu_work(5 * sec);
            }
            std::this_thread::sleep_for(usec(55 * sec));
        }
    };
    for (auto _ : state) {
        const auto t0 = steady::now();
        pool.run(boards, game);
        state.SetIterationTime(duration<double>(steady::now() - t0).count());
    }
    const double groups = std::ceil(static_cast<double>(boards) / t);
    chess_counters(state, groups * move_pairs * std::max(t * 5.0, 60.0) * sec * 1e-6, t);
}

void chess_event_loop(benchmark::State& state) {
    const double sec = chess_second_us();
    corio::event_loop loop;
    for (auto _ : state) {
        const auto t0 = steady::now();
        loop.run([&]() -> corio::task<> {
            std::vector<corio::task<>> games;
            for (int b = 0; b < boards; ++b) {
                games.push_back([](double s) -> corio::task<> {
                    for (int m = 0; m < move_pairs; ++m) {
                        bench::cpu_work(5 * s);
                        co_await corio::sleep(usec(55 * s));
                    }
                }(sec));
            }
            co_await corio::gather(std::move(games));
        });
        state.SetIterationTime(duration<double>(steady::now() - t0).count());
    }
    chess_counters(state, move_pairs * std::max(boards * 5.0, 60.0) * sec * 1e-6, 1);
}

// ---- registration

std::vector<unsigned> pool_sizes(bool waiting) {
    std::vector<unsigned> out;
    const unsigned hw = bench::hardware_threads();
    for (unsigned t = 1; t < hw; t *= 2) out.push_back(t);
    out.push_back(hw);
    if (waiting) {
        const std::vector<unsigned> beyond =
            quick ? std::vector<unsigned>{16, 64, 256} : std::vector<unsigned>{4, 8, 16, 32, 64, 128, 256};
        for (unsigned t : beyond)
            if (t > hw) out.push_back(t);
    }
    return out;
}

std::string label(const workload& w) {
    std::string s = w.kind + "/n=" + std::to_string(w.n);
    if (w.w_us > 0) s += "/w=" + std::to_string(static_cast<long>(w.w_us / 1000)) + "ms";
    if (w.c_us > 0) s += "/c=" + std::to_string(static_cast<long>(w.c_us)) + "us";
    return s;
}

void configure(benchmark::internal::Benchmark* b) {
    b->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->Repetitions(quick ? 3 : 5)
        ->ReportAggregatesOnly(true);
}

void register_workload(const workload& w) {
    const bool waiting = w.w_us > 0;
    const std::string base = label(w);
    configure(benchmark::RegisterBenchmark((base + "/sequential").c_str(),
                                           [w](benchmark::State& s) { run_blocking(s, w, 0); }));
    for (unsigned t : pool_sizes(waiting))
        configure(benchmark::RegisterBenchmark((base + "/thread_pool/T=" + std::to_string(t)).c_str(),
                                               [w, t](benchmark::State& s) { run_blocking(s, w, t); }));
    configure(benchmark::RegisterBenchmark((base + "/event_loop").c_str(),
                                           [w](benchmark::State& s) { run_event_loop(s, w, 0); }));
    if (w.c_us > 0)
        for (unsigned t : pool_sizes(false))
            configure(benchmark::RegisterBenchmark((base + "/event_loop+pool/T=" + std::to_string(t)).c_str(),
                                                   [w, t](benchmark::State& s) { run_event_loop(s, w, t); }));
}

// io_db: sequential, thread_pool/T (T up to 128, not 256: each thread holds a server
// connection, and the server started here allows 300),
// and the loop over one pipelined connection or K plain ones.
void register_db(const workload& w) {
#if CORIO_BENCH_POSTGRES
    if (const std::string why = db_unavailable(); !why.empty()) {
        std::fprintf(stderr, "bench_modes: io_db skipped: %s\n", why.c_str());
        benchmark::AddCustomContext("io_db_skipped", why);
        return;
    }
    const std::string base = label(w);
    configure(benchmark::RegisterBenchmark((base + "/sequential").c_str(),
                                           [w](benchmark::State& s) { run_blocking(s, w, 0); }));
    std::vector<unsigned> sizes;
    for (unsigned t : pool_sizes(true)) sizes.push_back(std::min(t, 128U));
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    for (unsigned t : sizes)
        configure(benchmark::RegisterBenchmark((base + "/thread_pool/T=" + std::to_string(t)).c_str(),
                                               [w, t](benchmark::State& s) { run_blocking(s, w, t); }));
    configure(benchmark::RegisterBenchmark((base + "/event_loop/K=1/pipelined").c_str(),
                                           [w](benchmark::State& s) { db_pipelined(s, w); }));
    for (unsigned k : quick ? std::vector<unsigned>{16, 128} : std::vector<unsigned>{16, 64, 128})
        configure(benchmark::RegisterBenchmark((base + "/event_loop/K=" + std::to_string(k)).c_str(),
                                               [w, k](benchmark::State& s) { db_event_loop(s, w, k); }));
#else
    (void)w;
    benchmark::AddCustomContext("io_db_skipped", "bench_modes was built without libpq (Debian: libpq-dev)");
#endif
}

void register_all() {
    for (long n : {100L, 1000L, 10000L})
        for (double w : {1000.0, 10000.0}) register_workload({"io_wait", n, w, 0});
    register_workload({"io_socket", 1000, 10000, 0});
    register_db({"io_db", 1000, 10000, 0});
    for (double c : {1.0, 10.0, 100.0}) register_workload({"cpu", quick ? 1000 : 10000, 0, c});
    register_workload({"mixed", 1000, 10000, 100});
    if (!quick) register_workload({"mixed", 10000, 10000, 100});

    const std::string chess = "simul_chess/n=24";
    configure(benchmark::RegisterBenchmark((chess + "/sequential").c_str(), chess_sequential));
    for (unsigned t : std::vector<unsigned>{1, 2, 4, 8, 24})
        configure(benchmark::RegisterBenchmark((chess + "/thread_pool/T=" + std::to_string(t)).c_str(),
                                               [t](benchmark::State& s) { chess_pool(s, t); }));
    configure(benchmark::RegisterBenchmark((chess + "/event_loop").c_str(), chess_event_loop));
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
    if (!bench::initialize(argc, argv, quick)) return 1;
    benchmark::AddCustomContext("cpu_model", cpu_model());
    benchmark::AddCustomContext("compiler", __VERSION__);
    benchmark::AddCustomContext("hash_rounds_per_us", std::to_string(bench::rounds_per_us()));
    benchmark::AddCustomContext("corio_backend", std::string(corio::to_string(corio::event_loop().backend())));
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
