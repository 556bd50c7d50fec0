// A program built against an installed corio::postgres: it compiles the headers, links
// libpq, and runs a connect that must fail (no server in an empty socket directory) with
// corio::pg's error.
#include <corio/corio.hpp>
#include <corio/postgres.hpp>

#include <cstdio>
#include <string>

int main() {
    const std::string step = corio::run([]() -> corio::task<std::string> {
        try {
            co_await corio::pg::connection::connect("host=/nonexistent-corio-dir dbname=postgres");
        } catch (const corio::pg::error& e) {
            co_return e.step();
        }
        co_return "connected";
    }());
    std::printf("pg_consumer: connect failed at step '%s', libpq %d\n", step.c_str(), PQlibVersion());
    return step == "connect" ? 0 : 1;
}
