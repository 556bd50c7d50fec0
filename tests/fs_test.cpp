#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// A path in the temporary directory, removed afterwards.
struct temp_path {
    std::string path;
    temp_path() {
        static int n = 0;
        path = "/tmp/corio-fs-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    }
    ~temp_path() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("files: write_at and read_at at offsets, size and sync") {
    temp_path tmp;
    const int fds = fd_count();
    run([&]() -> task<> {
        auto f = co_await fs::file::open(tmp.path,
                                         fs::open_mode::read_write | fs::open_mode::create | fs::open_mode::truncate);
        CHECK(f.size() == 0);
        co_await f.write_at(std::string_view("hello"), 0);
        co_await f.write_at(std::string_view("world"), 100);  // a hole in between
        CHECK(f.size() == 105);
        co_await f.sync();
        std::string buf(5, '\0');
        const auto at_100 = co_await f.read_at(buf, 100);
        CHECK(at_100 == 5);
        CHECK(buf == "world");
        const auto at_0 = co_await f.read_at(buf, 0);
        CHECK(at_0 == 5);
        CHECK(buf == "hello");
        std::string hole(3, 'x');
        const auto in_hole = co_await f.read_at(hole, 50);
        CHECK(in_hole == 3);
        CHECK(hole == std::string(3, '\0'));
        std::string tail(10, '\0');
        const auto near_end = co_await f.read_at(tail, 102);  // short only at the end of the file
        CHECK(near_end == 3);
        const auto at_end = co_await f.read_at(tail, 105);
        CHECK(at_end == 0);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: several MiB written in concurrent pieces read back intact") {
    temp_path tmp;
    run([&]() -> task<> {
        auto f = co_await fs::file::open(tmp.path, fs::open_mode::read_write | fs::open_mode::create);
        constexpr std::size_t piece = 256 * 1024;
        constexpr std::size_t pieces = 16;
        std::vector<std::string> data;
        for (std::size_t i = 0; i < pieces; ++i) data.emplace_back(piece, static_cast<char>('a' + i));
        std::vector<task<>> writes;
        for (std::size_t i = 0; i < pieces; ++i) writes.push_back(f.write_at(data[i], i * piece));
        co_await gather(std::move(writes));
        CHECK(f.size() == piece * pieces);
        std::string back(piece * pieces, '\0');
        const auto whole = co_await f.read_at(back, 0);
        CHECK(whole == back.size());
        for (std::size_t i = 0; i < pieces; ++i) CHECK(back.compare(i * piece, piece, data[i]) == 0);
    }());
}

TEST_CASE("files: a missing file and a bad mode are errors naming the path") {
    temp_path tmp;
    {
        std::FILE* f = std::fopen(tmp.path.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fclose(f);
    }
    const int fds = fd_count();
    run([&]() -> task<> {
        std::error_code code;
        std::string what;
        try {
            co_await fs::file::open("/nonexistent-dir/nothing", fs::open_mode::read);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::no_such_file_or_directory);
        CHECK_THAT(what, Catch::Contains("fs::file::open") && Catch::Contains("/nonexistent-dir/nothing"));

        // Writing to a file opened read-only.
        auto f = co_await fs::file::open(tmp.path, fs::open_mode::read);
        std::error_code wcode;
        try {
            co_await f.write_at(std::string_view("x"), 0);
        } catch (const std::system_error& e) {
            wcode = e.code();
            what = e.what();
        }
        CHECK(wcode == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("fs::file::write_at") && Catch::Contains(tmp.path));
    }());
    CHECK(fd_count() == fds);
}
