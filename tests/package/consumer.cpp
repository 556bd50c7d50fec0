// A program that uses corio the way a user's project would.
#include <corio/corio.hpp>

#include <cstdio>
#include <string_view>

// Where the build says which version it found (find_package's corio_VERSION, or
// pkg-config --modversion), the headers it compiles against must be that version.
#ifdef CONSUMER_EXPECTS_VERSION
static_assert(std::string_view(CONSUMER_EXPECTS_VERSION) == CORIO_VERSION,
              "the package's version differs from CORIO_VERSION in the headers");
#endif

using namespace std::chrono_literals;

static corio::task<int> twice(int x) {
    co_await corio::sleep(1ms);
    co_return 2 * x;
}

int main() {
    auto [a, b, c] = corio::run(corio::gather(twice(1), twice(2), twice(3)));
    std::printf("consumer: gathered 3 results: %d %d %d (io_uring compiled in: %d)\n", a, b, c, CORIO_HAS_IO_URING);
    return a + b + c == 12 ? 0 : 1;
}
