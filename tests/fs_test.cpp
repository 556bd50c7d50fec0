#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
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
    ~temp_path() { std::remove(path.c_str()); }  // a file, a FIFO or an empty directory
};

void make_file(const std::string& path, const std::string& content) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(content.data(), 1, content.size(), f) == content.size());
    std::fclose(f);
}

// What an operation threw: its code and what() (empty when it threw nothing).
struct failure {
    std::error_code code;
    std::string what;
};

template <class T>
task<failure> failure_of(task<T> t) {
    failure out;
    try {
        (void)co_await std::move(t);
    } catch (const std::system_error& e) {
        out.code = e.code();
        out.what = e.what();
    }
    co_return out;
}

// Holds every worker of the default pool until released, so that a file job submitted
// after them (the epoll backend's path) stays queued. Bounded: a blocker gives up after
// 10 s and counts that, so a test that fails to release cannot hang. Declare it outside
// run(): a worker may still hold it while the loop drains.
struct pool_blockers {
    std::mutex m;
    std::condition_variable cv;
    bool released = false;
    std::atomic<std::size_t> holding{0};
    std::atomic<int> gave_up{0};

    task<std::vector<future<void>>> occupy() {
        const std::size_t n = default_thread_pool().size();
        std::vector<future<void>> jobs;
        for (std::size_t i = 0; i < n; ++i)
            jobs.push_back(spawn(to_thread([this] {
                ++holding;
                std::unique_lock lock(m);
                if (!cv.wait_for(lock, std::chrono::seconds(10), [this] { return released; })) ++gave_up;
            })));
        for (int i = 0; i < 10000 && holding.load() < n; ++i) co_await sleep(1ms);
        REQUIRE(holding.load() == n);
        co_return jobs;
    }
    void release() {
        {
            std::lock_guard lock(m);
            released = true;
        }
        cv.notify_all();
    }
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

TEST_CASE("files: opening a file without permission is a system_error with the errno, the operation and the path") {
    temp_path tmp;
    std::string denied;
    auto mode = fs::open_mode::read;
    int expected = 0;
    if (::geteuid() != 0) {
        make_file(tmp.path, "secret");
        REQUIRE(::chmod(tmp.path.c_str(), 0) == 0);
        denied = tmp.path;
        expected = EACCES;
    } else {
        // Root passes the permission checks of ordinary files (CAP_DAC_OVERRIDE), but a
        // read-only sysctl and a read-only sysfs attribute refuse writing to everyone.
        for (const char* p : {"/proc/sys/kernel/osrelease", "/sys/devices/system/cpu/online"}) {
            const int fd = ::open(p, O_WRONLY | O_CLOEXEC);
            const int err = errno;
            if (fd >= 0) {
                ::close(fd);
            } else if (err == EACCES || err == EPERM) {
                denied = p;
                mode = fs::open_mode::write;
                expected = err;
                break;
            }
        }
    }
    if (denied.empty()) {
        WARN(
            "running as root and neither /proc/sys/kernel/osrelease nor /sys/devices/system/cpu/online "
            "refuses a write open with EACCES or EPERM (read-only mounts?): nothing to deny root");
        return;
    }
    const int fds = fd_count();
    run([&]() -> task<> {
        auto t = failure_of(fs::file::open(denied, mode));
        const failure f = co_await std::move(t);
        CHECK(f.code == std::error_code(expected, std::system_category()));
        CHECK_THAT(f.what, Catch::Contains("fs::file::open") && Catch::Contains(denied));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: opening a directory is EISDIR naming the path and leaves no descriptor open") {
    temp_path dir;
    REQUIRE(::mkdir(dir.path.c_str(), 0755) == 0);
    const int fds = fd_count();
    run([&]() -> task<> {
        for (const auto mode : {fs::open_mode::read, fs::open_mode::write, fs::open_mode::read_write}) {
            auto t = failure_of(fs::file::open(dir.path, mode));
            const failure f = co_await std::move(t);
            CHECK(f.code == std::errc::is_a_directory);
            CHECK_THAT(f.what, Catch::Contains("fs::file::open") && Catch::Contains(dir.path));
        }
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: exclusive creates a new file and refuses an existing one with EEXIST naming the path") {
    temp_path tmp;
    const int fds = fd_count();
    run([&]() -> task<> {
        {
            auto f = co_await fs::file::open(tmp.path,
                                             fs::open_mode::write | fs::open_mode::create | fs::open_mode::exclusive);
            co_await f.write_at(std::string_view("first"), 0);
        }
        struct stat st {};
        REQUIRE(::stat(tmp.path.c_str(), &st) == 0);
        CHECK(st.st_size == 5);
        for (const auto mode :
             {fs::open_mode::write | fs::open_mode::create | fs::open_mode::exclusive,
              fs::open_mode::read_write | fs::open_mode::create | fs::open_mode::exclusive | fs::open_mode::truncate}) {
            auto t = failure_of(fs::file::open(tmp.path, mode));
            const failure f = co_await std::move(t);
            CHECK(f.code == std::errc::file_exists);
            CHECK_THAT(f.what, Catch::Contains("fs::file::open") && Catch::Contains(tmp.path));
        }
        // The refused opens left it alone (no truncation).
        auto f = co_await fs::file::open(tmp.path, fs::open_mode::read);
        std::string back(5, '\0');
        const auto n = co_await f.read_at(back, 0);
        CHECK(n == 5);
        CHECK(back == "first");
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: read_at, write_at, sync and size errors carry the errno, the operation and the path") {
    temp_path tmp;
    make_file(tmp.path, "data");
    const int fds = fd_count();
    run([&]() -> task<> {
        std::string buf(4, '\0');
        auto wo = co_await fs::file::open(tmp.path, fs::open_mode::write);
        auto t1 = failure_of(wo.read_at(buf, 0));
        const failure read_wo = co_await std::move(t1);
        CHECK(read_wo.code == std::errc::bad_file_descriptor);
        CHECK_THAT(read_wo.what, Catch::Contains("fs::file::read_at") && Catch::Contains(tmp.path));

        // fsync has nothing to flush on a character device: EINVAL.
        const std::string dev_null = "/dev/null";
        auto null = co_await fs::file::open(dev_null, fs::open_mode::read_write);
        auto t2 = failure_of(null.sync());
        const failure sync_null = co_await std::move(t2);
        CHECK(sync_null.code == std::errc::invalid_argument);
        CHECK_THAT(sync_null.what, Catch::Contains("fs::file::sync") && Catch::Contains("/dev/null"));

        // An offset past what off_t holds, the same on both backends.
        auto rw = co_await fs::file::open(tmp.path, fs::open_mode::read_write);
        constexpr std::uint64_t too_far = std::uint64_t{1} << 63;
        auto t3 = failure_of(rw.read_at(buf, too_far));
        const failure read_far = co_await std::move(t3);
        CHECK(read_far.code == std::errc::invalid_argument);
        CHECK_THAT(read_far.what, Catch::Contains("fs::file::read_at") && Catch::Contains(tmp.path));
        auto t4 = failure_of(rw.write_at(std::string_view("x"), too_far));
        const failure write_far = co_await std::move(t4);
        CHECK(write_far.code == std::errc::invalid_argument);
        CHECK_THAT(write_far.what, Catch::Contains("fs::file::write_at") && Catch::Contains(tmp.path));

        // A closed file keeps its path for the messages.
        rw.close();
        auto t5 = failure_of(rw.read_at(buf, 0));
        const failure read_closed = co_await std::move(t5);
        CHECK(read_closed.code == std::errc::bad_file_descriptor);
        CHECK_THAT(read_closed.what, Catch::Contains("fs::file::read_at") && Catch::Contains(tmp.path));
        auto t6 = failure_of(rw.write_at(std::string_view("x"), 0));
        const failure write_closed = co_await std::move(t6);
        CHECK(write_closed.code == std::errc::bad_file_descriptor);
        CHECK_THAT(write_closed.what, Catch::Contains("fs::file::write_at") && Catch::Contains(tmp.path));
        auto t7 = failure_of(rw.sync());
        const failure sync_closed = co_await std::move(t7);
        CHECK(sync_closed.code == std::errc::bad_file_descriptor);
        CHECK_THAT(sync_closed.what, Catch::Contains("fs::file::sync") && Catch::Contains(tmp.path));
        failure size_closed;
        try {
            (void)rw.size();
        } catch (const std::system_error& e) {
            size_closed = {e.code(), e.what()};
        }
        CHECK(size_closed.code == std::errc::bad_file_descriptor);
        CHECK_THAT(size_closed.what, Catch::Contains("fs::file::size") && Catch::Contains(tmp.path));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: a read cancelled before it starts or while it waits ends cancelled and leaves nothing behind") {
    temp_path data;
    make_file(data.path, "contents");
    temp_path fifo;
    REQUIRE(::mkfifo(fifo.path.c_str(), 0600) == 0);
    pool_blockers blockers;
    const int fds = fd_count();
    run([&]() -> task<> {
        auto& loop = event_loop::current();
        auto f = co_await fs::file::open(data.path, fs::open_mode::read);
        const std::string untouched(8, 'x');

        // Cancelled before its first step: the read never runs.
        std::string buf = untouched;
        auto never = spawn([&]() -> task<std::size_t> { co_return co_await f.read_at(buf, 0); });
        never.cancel();
        auto w1 = ends_cancelled(never);
        const bool never_cancelled = co_await std::move(w1);
        CHECK(never_cancelled);
        CHECK(buf == untouched);

        // A cancel pending when the task reaches read_at: the read throws and is not done.
        future<std::size_t> self;
        bool saw_cancel = false;
        self = spawn([&]() -> task<std::size_t> {
            self.cancel();
            try {
                co_return co_await f.read_at(buf, 0);
            } catch (const cancelled_error&) {
                saw_cancel = true;
                throw;
            }
        });
        auto w2 = ends_cancelled(self);
        const bool self_cancelled = co_await std::move(w2);
        CHECK(self_cancelled);
        CHECK(saw_cancel);
        CHECK(buf == untouched);

        // Cancelled while it waits. Where a file read really waits depends on the backend:
        // io_uring reads in the kernel (a FIFO with no writer's data keeps it pending);
        // epoll runs file reads on the default pool (held busy here, so the job is queued).
        const bool uring = loop.backend() == backend_kind::io_uring;
        fs::file pipe;
        std::vector<future<void>> held;
        if (uring) {
            pipe = co_await fs::file::open(fifo.path, fs::open_mode::read_write);  // O_RDWR: no wait for a writer
        } else {
            held = co_await blockers.occupy();
        }
        fs::file& source = uring ? pipe : f;
        bool pending_saw_cancel = false;
        bool pending_returned = false;
        auto waiting = spawn([&]() -> task<> {
            try {
                (void)co_await source.read_at(buf, 0);
                pending_returned = true;
            } catch (const cancelled_error&) {
                pending_saw_cancel = true;
                throw;
            }
        });
        if (uring) {
            for (int i = 0; i < 10000 && loop.io().in_flight() == 0; ++i) co_await sleep(1ms);
            CHECK(loop.io().in_flight() == 1);
        } else {
            for (int i = 0; i < 10; ++i) co_await yield();
        }
        CHECK_FALSE(waiting.done());
        waiting.cancel();
        auto w3 = ends_cancelled(waiting);
        const bool waiting_cancelled = co_await std::move(w3);
        CHECK(waiting_cancelled);
        CHECK(pending_saw_cancel);
        CHECK_FALSE(pending_returned);
        CHECK(buf == untouched);
        CHECK(loop.io().in_flight() == 0);
        if (uring) {
            // The cancelled read took nothing: the next one gets the bytes.
            REQUIRE(::write(pipe.native_handle(), "late ok!", 8) == 8);
            const auto n = co_await pipe.read_at(buf, 0);
            CHECK(n == 8);
            CHECK(buf == "late ok!");
        } else {
            blockers.release();
            for (auto& h : held) co_await h;
            CHECK(blockers.gave_up.load() == 0);  // the cancel did not wait for a worker
        }
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("files: wait_for with a tiny deadline gives a file operation's result or timeout_error, never losing one") {
    temp_path tmp;
    temp_path fifo;
    REQUIRE(::mkfifo(fifo.path.c_str(), 0600) == 0);
    const int fds = fd_count();
    run([&]() -> task<> {
        // 0 times out at the first suspension, 10 s finishes: both answers come; the
        // deadlines in between race the operation's completion.
        const auto deadline = [](int i) -> std::chrono::nanoseconds {
            static constexpr std::array<std::chrono::nanoseconds, 8> d{0ns, 1us, 5us, 20us, 50us, 100us, 300us, 10s};
            return d[static_cast<std::size_t>(i) % d.size()];
        };
        constexpr int rounds = 400;
        auto f = co_await fs::file::open(tmp.path,
                                         fs::open_mode::read_write | fs::open_mode::create | fs::open_mode::truncate);

        // Writes: returned means the byte is in the file, timed out means it is not.
        int returned = 0;
        int timed_out = 0;
        int lost = 0;
        for (int i = 0; i < rounds; ++i) {
            const char byte = static_cast<char>('a' + i % 26);
            bool ok = false;
            try {
                auto aw = wait_for(f.write_at(const_buffer(&byte, 1), static_cast<std::uint64_t>(i)), deadline(i));
                co_await aw;
                ok = true;
            } catch (const timeout_error&) {
            }
            char on_disk = '\0';
            (void)::pread(f.native_handle(), &on_disk, 1, i);  // past the end: nothing read
            ++(ok ? returned : timed_out);
            if (on_disk != (ok ? byte : '\0')) ++lost;
        }
        INFO("writes: " << returned << " returned, " << timed_out << " timed out");
        CHECK(returned > 0);
        CHECK(timed_out > 0);
        CHECK(lost == 0);

        // Reads of a regular file: returned means the bytes, timed out means the buffer
        // was not touched (a read that had filled it would have been its value).
        std::string expected(16, '\0');
        for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<char>('a' + i);
        co_await f.write_at(expected, 0);
        returned = timed_out = lost = 0;
        for (int i = 0; i < rounds; ++i) {
            std::string buf(16, '#');
            try {
                auto aw = wait_for(f.read_at(buf, 0), deadline(i));
                const auto n = co_await aw;
                ++returned;
                if (n != 16 || buf != expected) ++lost;
            } catch (const timeout_error&) {
                ++timed_out;
                if (buf != std::string(16, '#')) ++lost;
            }
        }
        INFO("reads: " << returned << " returned, " << timed_out << " timed out");
        CHECK(returned > 0);
        CHECK(timed_out > 0);
        CHECK(lost == 0);

        // Opens: a file or timeout_error, and no descriptor left open either way.
        returned = timed_out = 0;
        for (int i = 0; i < rounds; ++i) {
            try {
                auto aw = wait_for(fs::file::open(tmp.path, fs::open_mode::read), deadline(i));
                const fs::file g = co_await aw;
                if (g.is_open()) ++returned;
            } catch (const timeout_error&) {
                ++timed_out;
            }
        }
        CHECK(returned > 0);
        CHECK(timed_out > 0);

        if (event_loop::current().backend() == backend_kind::io_uring) {
            // A read that really waits in the kernel while a byte arrives from another
            // thread around the deadline: the byte is returned or is still in the FIFO.
            auto pipe = co_await fs::file::open(fifo.path, fs::open_mode::read_write);
            returned = timed_out = lost = 0;
            for (int i = 0; i < rounds / 2; ++i) {
                const char byte = static_cast<char>('A' + i % 26);
                std::thread writer([&pipe, byte, i] {
                    std::this_thread::sleep_for(std::chrono::microseconds(i % 5 * 40));
                    (void)::write(pipe.native_handle(), &byte, 1);
                });
                char got = '\0';
                bool ok = false;
                try {
                    auto aw =
                        wait_for(pipe.read_at(mutable_buffer(&got, 1), 0), std::chrono::microseconds(25 << (i % 7)));
                    (void)co_await aw;
                    ok = true;
                } catch (const timeout_error&) {
                }
                writer.join();
                int queued = -1;
                REQUIRE(::ioctl(pipe.native_handle(), FIONREAD, &queued) == 0);
                if (ok) {
                    ++returned;
                    if (got != byte || queued != 0) ++lost;
                } else {
                    ++timed_out;
                    char left = '\0';
                    if (queued != 1 || ::read(pipe.native_handle(), &left, 1) != 1 || left != byte) ++lost;
                }
            }
            INFO("FIFO reads: " << returned << " returned, " << timed_out << " timed out");
            CHECK(lost == 0);
            CHECK(event_loop::current().io().in_flight() == 0);
        }
    }());
    CHECK(fd_count() == fds);
}
