// Copies a file with several read_at/write_at in flight (workers taking chunk offsets
// from a queue), then the same with a blocking pread/pwrite loop, and compares.
//
//     file_copy [source] [destination]     (no source: a 64 MiB file is made first)

#include <corio/corio.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

using namespace corio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::size_t chunk = 1 << 20;
constexpr int workers = 8;

task<> copy_async(const std::string& from, const std::string& to) {
    auto src = co_await fs::file::open(from, fs::open_mode::read);
    auto dst = co_await fs::file::open(to, fs::open_mode::write | fs::open_mode::create | fs::open_mode::truncate);
    const std::uint64_t size = src.size();
    queue<std::uint64_t> offsets(workers);
    auto producer = [&]() -> task<> {
        for (std::uint64_t off = 0; off < size; off += chunk) co_await offsets.push(off);
        offsets.close();
    };
    auto worker = [&]() -> task<> {
        std::vector<char> buf(chunk);
        while (auto off = co_await offsets.pop()) {
            const std::size_t n = co_await src.read_at(buf, *off);
            co_await dst.write_at(const_buffer(buf.data(), n), *off);
        }
    };
    std::vector<task<>> all;
    all.push_back(producer());
    for (int i = 0; i < workers; ++i) all.push_back(worker());
    co_await gather(std::move(all));
    co_await dst.sync();
}

void copy_blocking(const std::string& from, const std::string& to) {
    const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
    const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) throw std::system_error(errno, std::system_category(), "file_copy: open");
    std::vector<char> buf(chunk);
    for (off_t off = 0;;) {
        const ssize_t n = ::pread(in, buf.data(), buf.size(), off);
        if (n < 0) throw std::system_error(errno, std::system_category(), "file_copy: pread");
        if (n == 0) break;
        if (::pwrite(out, buf.data(), static_cast<std::size_t>(n), off) != n)
            throw std::system_error(errno, std::system_category(), "file_copy: pwrite");
        off += n;
    }
    ::fsync(out);
    ::close(in);
    ::close(out);
}

std::uint64_t checksum(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::vector<unsigned char> buf(chunk);
    std::uint64_t h = 1469598103934665603ULL;
    for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;)
        for (ssize_t i = 0; i < n; ++i) h = (h ^ buf[static_cast<std::size_t>(i)]) * 1099511628211ULL;
    ::close(fd);
    return h;
}

void make_source(const std::string& path, std::size_t bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::vector<char> buf(chunk);
    std::uint64_t x = 88172645463325252ULL;
    for (std::size_t done = 0; done < bytes; done += buf.size()) {
        for (auto& c : buf) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c = static_cast<char>(x);
        }
        if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size()))
            throw std::system_error(errno, std::system_category(), "file_copy: making the source");
    }
    ::close(fd);
}

// Removes the files this run made, however it ends.
struct temporary_files {
    std::vector<std::string> paths;
    ~temporary_files() {
        for (const auto& p : paths) std::remove(p.c_str());
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string from;
    std::string to;
    cli::command cmd("file_copy", "A file copied with 8 read_at/write_at in flight, against a blocking loop.");
    cmd.arg("source", from, "the file to copy (none: a 64 MiB file is made, then removed)");
    cmd.arg("destination", to, "where to copy it (none: a temporary file, removed)");
    return cmd.run(argc, argv, [&] {
        const std::string base = "/tmp/corio-file-copy-" + std::to_string(::getpid());
        temporary_files temporary;
        if (from.empty()) {
            from = base + ".src";
            temporary.paths.push_back(from);
            make_source(from, 64u << 20);
        }
        if (to.empty()) {
            to = base + ".dst";
            temporary.paths.push_back(to);
        }
        temporary.paths.push_back(to + ".blocking");
        auto t0 = clock_type::now();
        run(copy_async(from, to));
        const double async_s = std::chrono::duration<double>(clock_type::now() - t0).count();
        const bool async_ok = checksum(from) == checksum(to);
        t0 = clock_type::now();
        copy_blocking(from, to + ".blocking");
        const double blocking_s = std::chrono::duration<double>(clock_type::now() - t0).count();
        const bool blocking_ok = checksum(from) == checksum(to + ".blocking");
        std::printf("corio (%d read_at/write_at in flight): %.3f s, copy %s\n", workers, async_s,
                    async_ok ? "identical" : "DIFFERS");
        std::printf("blocking pread/pwrite loop:          %.3f s, copy %s\n", blocking_s,
                    blocking_ok ? "identical" : "DIFFERS");
        return async_ok && blocking_ok ? 0 : 1;
    });
}
