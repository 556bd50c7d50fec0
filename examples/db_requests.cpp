// The web-server story with a real database: N requests, each one round trip to PostgreSQL
// (SELECT pg_sleep(0.01), $1: 10 ms of the server's time, like a query that reads from
// disk), served three ways:
//
//   one by one       one thread, one connection, blocking libpq (PQexecParams)
//   thread pool      T threads, each with its own blocking connection
//   event loop       one thread, corio::pg over a pool of K connections
//
// Every connection is opened before the clock starts. The server comes from CORIO_PG_DSN
// (or --dsn), a libpq connection string; without one the example says so and exits 0.
//
//     CORIO_PG_DSN="host=/run/postgresql dbname=postgres" db_requests [requests=200] [--threads 16] [--connections 16]

#include <corio/corio.hpp>
#include <corio/postgres.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"

using namespace corio;
using clock_type = std::chrono::steady_clock;

namespace {

const char* const request_sql = "SELECT pg_sleep(0.01), $1::int";

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// ---- blocking libpq: what a thread does, one request at a time

PGconn* connect_blocking(const std::string& dsn) {
    PGconn* c = PQconnectdb(dsn.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
        std::string why = PQerrorMessage(c);
        PQfinish(c);
        throw std::runtime_error("connect: " + why);
    }
    return c;
}

void request_blocking(PGconn* c, int id) {
    const std::string text = std::to_string(id);
    const char* values[] = {text.c_str()};
    PGresult* r = PQexecParams(c, request_sql, 1, nullptr, values, nullptr, nullptr, 0);
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && std::atoi(PQgetvalue(r, 0, 1)) == id;
    std::string why = ok ? "" : PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error("request " + text + ": " + why);
}

double one_by_one(const std::string& dsn, int requests) {
    PGconn* c = connect_blocking(dsn);
    const auto t0 = clock_type::now();
    for (int i = 0; i < requests; ++i) request_blocking(c, i);
    const double s = seconds_since(t0);
    PQfinish(c);
    return s;
}

double by_threads(const std::string& dsn, int requests, int threads) {
    std::vector<PGconn*> conns;
    for (int t = 0; t < threads; ++t) conns.push_back(connect_blocking(dsn));
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    const auto t0 = clock_type::now();
    std::vector<std::thread> workers;
    for (PGconn* c : conns) {
        workers.emplace_back([&, c] {
            try {
                for (int i; (i = next++) < requests;) request_blocking(c, i);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "db_requests: %s\n", e.what());
                failed = true;
            }
        });
    }
    for (auto& w : workers) w.join();
    const double s = seconds_since(t0);
    for (PGconn* c : conns) PQfinish(c);
    if (failed) throw std::runtime_error("the thread pool's requests failed");
    return s;
}

// ---- the event loop: corio::pg, a pool of K connections

task<> request(pg::pool& db, int id) {
    auto conn = co_await db.acquire();
    pg::result r = co_await conn->query(request_sql, id);
    if (r[0][1].as<int>() != id) throw std::runtime_error("request " + std::to_string(id) + ": a wrong answer");
}

task<double> event_loop_requests(std::string dsn, int requests, int connections) {
    pg::pool db(dsn, static_cast<std::size_t>(connections));
    {  // open the pool's connections before the clock starts, as the other modes do
        std::vector<pg::pool::lease> warm;
        for (int k = 0; k < connections; ++k) warm.push_back(co_await db.acquire());
    }
    const auto t0 = clock_type::now();
    std::vector<task<>> all;
    all.reserve(static_cast<std::size_t>(requests));
    for (int i = 0; i < requests; ++i) all.push_back(request(db, i));
    co_await gather(std::move(all));
    co_return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
    int requests = 200;
    int threads = 16;
    int connections = 16;
    std::string dsn;
    if (const char* env = std::getenv("CORIO_PG_DSN")) dsn = env;
    cli::command cmd("db_requests",
                     "N requests, each a PostgreSQL round trip: one by one, by a thread pool with blocking libpq, "
                     "and by the event loop over K connections (server: CORIO_PG_DSN or --dsn).");
    cmd.arg("requests", requests, "how many requests", {.min = 1});
    cmd.flag("--threads N", threads, "the thread pool's threads, each with a connection", {.min = 1, .max = 200});
    cmd.flag("--connections K", connections, "the event loop's connections", {.min = 1, .max = 200});
    cmd.flag("--dsn CONNINFO", dsn, "the server, as a libpq connection string (default: CORIO_PG_DSN)");
    return cmd.run(argc, argv, [&] {
        event_loop loop;  // first: a loop that cannot start is said before any work
        if (dsn.empty()) {
            std::printf("db_requests: no server given (set CORIO_PG_DSN or pass --dsn): skipped\n");
            return;
        }
        std::printf("%d requests, each \"%s\"\n", requests, request_sql);
        const double seq = one_by_one(dsn, requests);
        std::printf("one by one, 1 connection:             %7.3f s\n", seq);
        const double pool = by_threads(dsn, requests, threads);
        std::printf("thread pool, %3d blocking connections: %7.3f s  %5.1fx\n", threads, pool, seq / pool);
        const double el = loop.run(event_loop_requests(dsn, requests, connections));
        std::printf("event loop, %3d connections:           %7.3f s  %5.1fx\n", connections, el, seq / el);
        std::printf("speedup: %.1fx over one by one (the loop is %.2fx the thread pool's speed, on one thread)\n",
                    seq / el, pool / el);
    });
}
