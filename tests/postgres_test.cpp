// corio::pg against a real PostgreSQL server: the fixture (tests/postgres/server.sh, run by
// ctest) starts one and gives its connection string in CORIO_PG_TEST_DSN. Each test runs on
// the backend CORIO_BACKEND names, like the main suite.
//
// g++ 12 miscompiles co_await inside a macro's argument: every awaited value is bound to a
// local first, then checked.

#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <corio/postgres.hpp>

#include "test_util.hpp"

using namespace test;
namespace pg = corio::pg;

namespace {

std::string dsn() {
    const char* v = std::getenv("CORIO_PG_TEST_DSN");
    if (v == nullptr || *v == '\0')
        FAIL("CORIO_PG_TEST_DSN is not set: run these tests through ctest, whose fixture starts the server");
    return v;
}

// Waits (polling a second connection, at most 5 s) until the backend `pid` runs a query
// containing `text`: the query has reached the server.
corio::task<bool> running_on_server(pg::connection& observer, int pid, std::string text) {
    const auto deadline = clock::now() + 5s;
    while (clock::now() < deadline) {
        pg::result r = co_await observer.query(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND position($2 in query) > 0",
            pid, text);
        if (r[0][0].as<int>() == 1) co_return true;
        co_await corio::sleep(10ms);
    }
    co_return false;
}

// The pg::error a query ends with; nullopt when it succeeds. (A pointer, not a reference:
// a coroutine's reference parameter may outlive what it refers to.)
template <class... Args>
corio::task<std::optional<pg::error>> query_error(pg::connection* conn, std::string sql, Args... args) {
    try {
        co_await conn->query(std::move(sql), args...);
    } catch (const pg::error& e) {
        co_return e;
    }
    co_return std::nullopt;
}

// The pg::error a connect ends with; nullopt when it connects.
corio::task<std::optional<pg::error>> connect_error(std::string conninfo) {
    try {
        co_await pg::connection::connect(std::move(conninfo));
    } catch (const pg::error& e) {
        co_return e;
    }
    co_return std::nullopt;
}

// The pg::error an outcome holds; nullopt for a value or another exception.
std::optional<pg::error> error_in(const corio::outcome<pg::result>& o) {
    if (!o.has_error()) return std::nullopt;
    try {
        std::rethrow_exception(o.error());
    } catch (const pg::error& e) {
        return e;
    } catch (...) {
    }
    return std::nullopt;
}

template <class F>
std::optional<pg::error> error_of(F&& f) {
    try {
        f();
    } catch (const pg::error& e) {
        return e;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("a connection runs a simple query") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        CHECK(conn.is_open());
        CHECK(conn.backend_pid() > 0);
        pg::result r = co_await conn.query("SELECT 1 AS one, 'two'::text AS two");
        REQUIRE(r.size() == 1);
        REQUIRE(r.columns() == 2);
        CHECK(r.column_name(0) == "one");
        CHECK(r.column_name(1) == "two");
        CHECK(r[0][0].as<int>() == 1);
        CHECK(r[0]["two"].as<std::string>() == "two");
        CHECK(r[0][1].text() == "two");
        CHECK(r.command_tag() == "SELECT 1");
        CHECK_FALSE(conn.in_transaction());
    }());
}

TEST_CASE("parameters go as text and NULL comes back as NULL") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        const std::optional<int> none;
        const std::string word = "it's";  // a quote needs no escaping: parameters are not spliced in
        pg::result r = co_await conn.query("SELECT $1::int + $2, $3::text, $4::int, $5::float8, $6::bool, $7::bigint",
                                           40, 2, word, none, 0.25, true, std::int64_t{1} << 40);
        REQUIRE(r.size() == 1);
        auto row = r[0];
        CHECK(row[0].as<int>() == 42);
        CHECK(row[1].as<std::string>() == "it's");
        CHECK(row[2].is_null());
        CHECK_FALSE(row[2].as<std::optional<int>>().has_value());
        CHECK(row[3].as<double>() == 0.25);
        CHECK(row[4].as<bool>());
        CHECK(row[5].as<std::int64_t>() == (std::int64_t{1} << 40));
        pg::result n = co_await conn.query("SELECT $1::text IS NULL, $2::text IS NULL", nullptr, std::nullopt);
        CHECK(n[0][0].as<bool>());
        CHECK(n[0][1].as<bool>());
    }());
}

TEST_CASE("values that do not convert are errors naming the column") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        pg::result r = co_await conn.query("SELECT 'abc'::text AS word, NULL::int AS nothing, 99999999999 AS big");
        auto row = r[0];
        auto bad = error_of([&] { (void)row["word"].as<int>(); });
        REQUIRE(bad);
        CHECK(bad->step() == "value");
        CHECK_THAT(bad->what(), Catch::Contains("\"word\"") && Catch::Contains("not a number"));
        auto null = error_of([&] { (void)row["nothing"].as<int>(); });
        REQUIRE(null);
        CHECK_THAT(null->what(), Catch::Contains("NULL"));
        auto big = error_of([&] { (void)row["big"].as<int>(); });
        REQUIRE(big);
        CHECK_THAT(big->what(), Catch::Contains("out of range"));
        CHECK(row["big"].as<std::int64_t>() == 99999999999);
        CHECK_THROWS_AS(row["missing"], std::out_of_range);
        CHECK_THROWS_AS(r[1], std::out_of_range);
    }());
}

TEST_CASE("a query returns many rows") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        pg::result r = co_await conn.query("SELECT i, repeat('x', 100) FROM generate_series(1, $1::int) AS i", 20000);
        REQUIRE(r.size() == 20000);
        std::int64_t sum = 0;
        int rows = 0;
        for (pg::row row : r) {
            sum += row[0].as<int>();
            CHECK(row[1].text().size() == 100);
            ++rows;
        }
        CHECK(rows == 20000);
        CHECK(sum == std::int64_t{20000} * 20001 / 2);
    }());
}

TEST_CASE("execute returns the number of rows a command affected") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        co_await conn.execute("CREATE TEMP TABLE t (a int, b text)");
        const std::int64_t inserted = co_await conn.execute("INSERT INTO t SELECT i, 'v' FROM generate_series(1, 5) i");
        CHECK(inserted == 5);
        const std::int64_t updated = co_await conn.execute("UPDATE t SET b = $1 WHERE a > $2", "w", 2);
        CHECK(updated == 3);
        pg::result r = co_await conn.query("SELECT count(*) FROM t WHERE b = 'w'");
        CHECK(r[0][0].as<int>() == 3);
    }());
}

TEST_CASE("a query error carries its SQLSTATE and the connection stays usable") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        const std::optional<pg::error> missing = co_await query_error(&conn, "SELECT * FROM no_such_table");
        REQUIRE(missing);
        CHECK(missing->sqlstate() == "42P01");
        CHECK(missing->step() == "query");
        CHECK_THAT(missing->server_message(), Catch::Contains("no_such_table"));
        CHECK_THAT(missing->what(), Catch::Contains("SQLSTATE 42P01"));
        CHECK_FALSE(missing->connection_lost());

        const std::optional<pg::error> division = co_await query_error(&conn, "SELECT 1 / $1::int", 0);
        REQUIRE(division);
        CHECK(division->sqlstate() == "22012");
        CHECK(conn.is_open());
        pg::result r = co_await conn.query("SELECT 7");
        CHECK(r[0][0].as<int>() == 7);
    }());
}

TEST_CASE("a refused connection is a clear error") {
    char dir[] = "/tmp/corio-pg-none-XXXXXX";  // a socket directory where no server listens
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::optional<pg::error> refused =
        corio::run(connect_error(std::string("host=") + dir + " port=5432 dbname=postgres user=postgres"));
    ::rmdir(dir);
    REQUIRE(refused);
    CHECK(refused->step() == "connect");
    CHECK(refused->connection_lost());
    CHECK_THAT(refused->what(), Catch::Contains(dir) && Catch::Contains("No such file or directory"));
}

TEST_CASE("a wrong password is a clear error and the right one connects") {
    corio::run([]() -> corio::task<> {
        const std::optional<pg::error> denied = co_await connect_error(dsn() + " user=corio_password password=wrong");
        REQUIRE(denied);
        CHECK(denied->step() == "connect");
        CHECK_THAT(denied->what(), Catch::Contains("password authentication failed for user \"corio_password\""));
        pg::connection ok = co_await pg::connection::connect(dsn() + " user=corio_password password=corio-secret");
        pg::result r = co_await ok.query("SELECT current_user");
        CHECK(r[0][0].as<std::string>() == "corio_password");
    }());
}

TEST_CASE("a bad connection string is a clear error") {
    corio::run([]() -> corio::task<> {
        const std::optional<pg::error> bad = co_await connect_error("no_such_keyword=1");
        REQUIRE(bad);
        CHECK(bad->step() == "connect");
        CHECK_THAT(bad->what(), Catch::Contains("no_such_keyword"));
    }());
}

TEST_CASE("cancelling a running query reaches the server and the connection works after") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        pg::connection observer = co_await pg::connection::connect(dsn());
        const int pid = conn.backend_pid();
        auto sleeping = corio::spawn([&]() -> corio::task<> { co_await conn.query("SELECT pg_sleep(10)"); });
        const bool running = co_await running_on_server(observer, pid, "pg_sleep(10)");
        REQUIRE(running);
        const auto t0 = clock::now();
        sleeping.cancel();
        const bool cancelled = co_await ends_cancelled(sleeping);
        CHECK(cancelled);
        // The drain waits for the server to end the statement: only the cancel request can
        // end a 10 s sleep this soon, and the server said so.
        CHECK(ms_since(t0) < 5000);
        CHECK(conn.last_cancel_sqlstate() == "57014");
        CHECK(conn.is_open());
        pg::result r = co_await conn.query("SELECT 5");
        CHECK(r[0][0].as<int>() == 5);
        pg::result state = co_await observer.query("SELECT state FROM pg_stat_activity WHERE pid = $1", pid);
        CHECK(state[0][0].as<std::string>() == "idle");
    }());
}

TEST_CASE("wait_for on a running query times out, cancels it on the server, and the connection works after") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        const auto t0 = clock::now();
        bool timed_out = false;
        try {
            auto slow = corio::wait_for(conn.query("SELECT pg_sleep(10)"), 200ms);  // a local: g++ 12
            co_await slow;
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        const double ms = ms_since(t0);
        CHECK(ms >= 190);
        CHECK(ms < 5000);
        CHECK(conn.last_cancel_sqlstate() == "57014");
        CHECK(conn.is_open());
        pg::result r = co_await conn.query("SELECT 'after'");
        CHECK(r[0][0].as<std::string>() == "after");
    }());
}

TEST_CASE("a query whose server connection is terminated is an error naming it, not a hang") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        pg::connection killer = co_await pg::connection::connect(dsn());
        const int pid = conn.backend_pid();
        std::optional<pg::error> lost;
        auto victim = corio::spawn([&]() -> corio::task<> {
            try {
                co_await conn.query("SELECT pg_sleep(10)");
            } catch (const pg::error& e) {
                lost = e;
            }
        });
        const bool running = co_await running_on_server(killer, pid, "pg_sleep(10)");
        REQUIRE(running);
        const auto t0 = clock::now();
        pg::result k = co_await killer.query("SELECT pg_terminate_backend($1)", pid);
        CHECK(k[0][0].as<bool>());
        co_await victim;
        CHECK(ms_since(t0) < 5000);
        REQUIRE(lost);
        CHECK(lost->connection_lost());
        CHECK(lost->sqlstate() == "57P01");
        CHECK_THAT(lost->what(), Catch::Contains("terminating connection"));
        CHECK(conn.is_broken());
        CHECK_FALSE(conn.is_open());
        // The next query on it fails at once, saying why.
        const std::optional<pg::error> after = co_await query_error(&conn, "SELECT 1");
        REQUIRE(after);
        CHECK(after->connection_lost());
        CHECK_THAT(after->what(), Catch::Contains("broken"));
    }());
}

TEST_CASE("a connection whose server went away while idle fails its next query clearly") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        pg::connection killer = co_await pg::connection::connect(dsn());
        const int pid = conn.backend_pid();
        co_await killer.query("SELECT pg_terminate_backend($1, 5000)", pid);  // waits for the backend to exit
        const auto t0 = clock::now();
        const std::optional<pg::error> lost = co_await query_error(&conn, "SELECT 1");
        CHECK(ms_since(t0) < 5000);
        REQUIRE(lost);
        CHECK(lost->connection_lost());
        CHECK(conn.is_broken());
    }());
}

TEST_CASE("a second query on a busy connection is a usage error") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        auto first = corio::spawn(conn.query("SELECT pg_sleep(0.2)"));
        co_await corio::yield();
        bool refused = false;
        try {
            co_await conn.query("SELECT 1");
        } catch (const corio::usage_error&) {
            refused = true;
        }
        CHECK(refused);
        co_await first;
        pg::result r = co_await conn.query("SELECT 1");
        CHECK(r[0][0].as<int>() == 1);
    }());
}

TEST_CASE("the pool bounds the connections in use and reuses them") {
    corio::run([]() -> corio::task<> {
        pg::pool db(dsn(), 3);
        int in_flight = 0;
        int most = 0;
        std::set<int> pids;
        std::vector<corio::task<>> jobs;
        for (int i = 0; i < 12; ++i) {
            jobs.push_back([](pg::pool& p, int& now, int& peak, std::set<int>& seen, int i) -> corio::task<> {
                auto conn = co_await p.acquire();
                peak = std::max(peak, ++now);
                seen.insert(conn->backend_pid());
                pg::result r = co_await conn->query("SELECT $1::int, pg_sleep(0.05)", i);
                CHECK(r[0][0].as<int>() == i);
                --now;
            }(db, in_flight, most, pids, i));
        }
        const auto t0 = clock::now();
        co_await corio::gather(std::move(jobs));
        CHECK(most == 3);
        CHECK(pids.size() == 3);
        CHECK(db.open() == 3);
        CHECK(db.idle() == 3);
        CHECK(ms_since(t0) >= 4 * 50 - 5);  // 12 queries of 50 ms, 3 at a time
    }());
}

TEST_CASE("the pool drops a broken connection instead of lending it again") {
    corio::run([]() -> corio::task<> {
        pg::pool db(dsn(), 2);
        pg::connection killer = co_await pg::connection::connect(dsn());
        int dead_pid = 0;
        {
            auto conn = co_await db.acquire();
            dead_pid = conn->backend_pid();
            co_await killer.query("SELECT pg_terminate_backend($1, 5000)", dead_pid);
            const std::optional<pg::error> failed = co_await query_error(&*conn, "SELECT 1");
            REQUIRE(failed);
            CHECK(failed->connection_lost());
        }
        CHECK(db.open() == 0);  // closed, not returned
        CHECK(db.idle() == 0);
        auto conn = co_await db.acquire();
        CHECK(conn->backend_pid() != dead_pid);
        pg::result r = co_await conn->query("SELECT 1");
        CHECK(r[0][0].as<int>() == 1);
        // One that dies while idle in the pool is found out at the next acquire (which reads
        // what the server sent meanwhile: its FATAL message and the end) and skipped.
        const int idle_pid = conn->backend_pid();
        conn.release();
        CHECK(db.idle() == 1);
        co_await killer.query("SELECT pg_terminate_backend($1, 5000)", idle_pid);  // waits for the backend to exit
        auto fresh = co_await db.acquire();
        CHECK(fresh->backend_pid() != idle_pid);
        CHECK(db.open() == 1);
        pg::result f = co_await fresh->query("SELECT pg_backend_pid()");
        CHECK(f[0][0].as<int>() == fresh->backend_pid());
    }());
}

TEST_CASE("a connection left inside a transaction is not returned to the pool") {
    corio::run([]() -> corio::task<> {
        pg::pool db(dsn(), 1);
        {
            auto conn = co_await db.acquire();
            co_await conn->execute("BEGIN");
            CHECK(conn->in_transaction());
        }
        CHECK(db.open() == 0);
        auto conn = co_await db.acquire();
        CHECK_FALSE(conn->in_transaction());
    }());
}

TEST_CASE("a pool whose server refuses the connection reports it and frees the slot") {
    char dir[] = "/tmp/corio-pg-none-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    corio::run([&]() -> corio::task<> {
        pg::pool db(std::string("host=") + dir + " dbname=postgres", 1);
        for (int attempt = 0; attempt < 2; ++attempt) {  // the second one gets the slot back
            bool refused = false;
            try {
                auto conn = co_await db.acquire();
            } catch (const pg::error& e) {
                refused = e.step() == "connect";
            }
            CHECK(refused);
        }
        CHECK(db.open() == 0);
    }());
    ::rmdir(dir);
}

TEST_CASE("a pipeline of 1000 queries answers in order and a failing query fails alone") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        std::vector<pg::statement> batch;
        for (int i = 0; i < 1000; ++i) {
            if (i == 500)
                batch.emplace_back("SELECT 1 / $1::int", 0);
            else
                batch.emplace_back("SELECT $1::int * 2", i);
        }
        std::vector<corio::outcome<pg::result>> out = co_await conn.pipeline(std::move(batch));
        REQUIRE(out.size() == 1000);
        int right = 0;
        for (int i = 0; i < 1000; ++i) {
            if (i == 500) continue;
            if (out[i].has_value() && out[i].value()[0][0].as<int>() == 2 * i) ++right;
        }
        CHECK(right == 999);
        const std::optional<pg::error> division = error_in(out[500]);
        REQUIRE(division);
        CHECK(division->sqlstate() == "22012");
        CHECK(division->step() == "pipeline[500]");
        CHECK_FALSE(division->aborted());
        CHECK(conn.is_open());
        pg::result r = co_await conn.query("SELECT 3");  // out of pipeline mode again
        CHECK(r[0][0].as<int>() == 3);
    }());
}

TEST_CASE("a pipeline synced at its end skips the queries after a failure and says so") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        std::vector<pg::statement> batch;
        for (int i = 0; i < 1000; ++i) {
            if (i == 500)
                batch.emplace_back("SELECT * FROM no_such_table");
            else
                batch.emplace_back("SELECT $1::int", i);
        }
        auto out = co_await conn.pipeline(std::move(batch), pg::pipeline_sync::at_end);
        REQUIRE(out.size() == 1000);
        int before = 0;
        int skipped = 0;
        for (int i = 0; i < 1000; ++i) {
            if (i < 500 && out[i].has_value() && out[i].value()[0][0].as<int>() == i) ++before;
            const std::optional<pg::error> e = error_in(out[i]);
            if (i > 500 && e && e->aborted() && std::string(e->what()).find("query 500") != std::string::npos)
                ++skipped;
        }
        CHECK(before == 500);
        CHECK(skipped == 499);
        const std::optional<pg::error> missing = error_in(out[500]);
        REQUIRE(missing);
        CHECK(missing->sqlstate() == "42P01");
        CHECK_FALSE(missing->aborted());
        pg::result r = co_await conn.query("SELECT 4");
        CHECK(r[0][0].as<int>() == 4);
    }());
}

TEST_CASE("a timed-out pipeline is cancelled on the server and the connection works after") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        std::vector<pg::statement> batch;
        batch.emplace_back("SELECT 1");
        batch.emplace_back("SELECT pg_sleep(10)");
        batch.emplace_back("SELECT 2");
        const auto t0 = clock::now();
        bool timed_out = false;
        try {
            auto slow = corio::wait_for(conn.pipeline(std::move(batch), pg::pipeline_sync::at_end), 200ms);
            co_await slow;
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(ms_since(t0) < 5000);
        CHECK(conn.last_cancel_sqlstate() == "57014");
        CHECK(conn.is_open());
        pg::result r = co_await conn.query("SELECT 6");
        CHECK(r[0][0].as<int>() == 6);
        std::vector<pg::statement> next;
        next.emplace_back("SELECT 7");
        auto again = co_await conn.pipeline(std::move(next));
        CHECK(again.at(0).value()[0][0].as<int>() == 7);
    }());
}

TEST_CASE("a cancelled connect ends at once and closes what it opened") {
    const int fds = fd_count();
    corio::run([]() -> corio::task<> {
        auto connecting = corio::spawn(pg::connection::connect(dsn()));
        co_await corio::yield();  // it starts, and waits for the server
        connecting.cancel();
        const bool cancelled = co_await ends_cancelled(connecting);
        CHECK(cancelled);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("a pipeline larger than the socket buffers both ways is sent and read without a deadlock") {
    corio::run([]() -> corio::task<> {
        pg::connection conn = co_await pg::connection::connect(dsn());
        // 3,000 queries of 4 KiB each, each answered with its 4 KiB: 12 MiB each way, far more
        // than the socket holds. The server blocks writing answers until the client reads,
        // while the client is still sending: the flush must read as it waits.
        const std::string payload(4096, 'p');
        std::vector<pg::statement> batch;
        for (int i = 0; i < 3000; ++i) batch.emplace_back("SELECT $1::int, $2::text", i, payload);
        auto out = co_await conn.pipeline(std::move(batch));
        REQUIRE(out.size() == 3000);
        int right = 0;
        for (int i = 0; i < 3000; ++i) {
            const auto& r = out[i].value();
            if (r[0][0].as<int>() == i && r[0][1].text() == payload) ++right;
        }
        CHECK(right == 3000);
    }());
}
