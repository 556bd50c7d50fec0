#pragma once
/// @file
/// fs::file: positional reads and writes. On io_uring they are native operations (open,
/// read, write and fsync go through the ring); on epoll, where a regular file is always
/// "ready", they run on the default thread pool so the loop never blocks on the disk.

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <corio/buffer.hpp>
#include <corio/detail/io_awaiter.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>
#include <corio/task.hpp>
#include <corio/thread_pool.hpp>

namespace corio::fs {

/// How file::open opens a file: read, write or read_write, with any of create, truncate,
/// exclusive and append; combine them with |.
enum class open_mode : unsigned {
    read = 1U << 0,
    write = 1U << 1,
    read_write = read | write,
    create = 1U << 2,     ///< create if missing
    truncate = 1U << 3,   ///< empty it first
    exclusive = 1U << 4,  ///< with create: fail if it exists
    append = 1U << 5,
};
/// Both sets of flags.
constexpr open_mode operator|(open_mode a, open_mode b) noexcept {
    return static_cast<open_mode>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
/// True when `set` contains `bit`.
constexpr bool has(open_mode set, open_mode bit) noexcept {
    return (static_cast<unsigned>(set) & static_cast<unsigned>(bit)) != 0U;
}

/// An open file, for positional reads and writes. Move-only; the destructor closes it.
/// @code
/// using corio::fs::open_mode;
/// auto out = co_await corio::fs::file::open("copy.txt", open_mode::write | open_mode::create | open_mode::truncate);
/// co_await out.write_at(std::string_view("hello\n"), 0);
/// co_await out.sync();
/// @endcode
class file {
public:
    file() = default;
    /// Takes over o's descriptor; o is left closed.
    file(file&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
    /// Closes this file, then takes over o's descriptor.
    file& operator=(file&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            path_ = std::move(o.path_);
        }
        return *this;
    }
    ~file() { close(); }

    /// Opens path; a missing file, a denied one, a directory (EISDIR, even for reading):
    /// std::system_error naming the path.
    static task<file> open(std::string path, open_mode mode, mode_t permissions = 0644) {
        const int flags = open_flags(mode);
        int fd = -1;
        if (native()) {
            detail::transfer_awaiter op(detail::io_kind::openat, -1, path.data(), 0, "fs::file::open");
            op.set_open(flags, permissions);
            op.set_subject(path.c_str());
            fd = static_cast<int>(co_await op);
        } else {
            fd = static_cast<int>(co_await pooled("fs::file::open", path.c_str(), [&]() -> long {
                const int f = ::open(path.c_str(), flags, permissions);
                return f < 0 ? -errno : f;
            }));
        }
        // open(2) opens a directory for reading. The fd is owned before anything can throw;
        // fstat on an open fd is metadata from memory, fine on the loop thread.
        file f(fd, std::move(path));
        struct stat st {};
        if (::fstat(f.fd_, &st) < 0) throw f.error(errno, "fs::file::open");
        if (S_ISDIR(st.st_mode)) throw f.error(EISDIR, "fs::file::open");
        co_return f;
    }

    /// Up to buf.size bytes from offset; fewer only at the end of the file (0 there).
    task<std::size_t> read_at(mutable_buffer buf, std::uint64_t offset) const {
        const std::int64_t at = to_off(offset, "fs::file::read_at");
        if (native()) {
            detail::transfer_awaiter op(detail::io_kind::read, fd_, buf.data, buf.size, "fs::file::read_at", true, at);
            op.set_subject(path_.c_str());
            co_return co_await op;
        }
        co_return co_await pooled("fs::file::read_at", path_.c_str(), [fd = fd_, buf, offset]() -> long {
            std::size_t done = 0;
            while (done < buf.size) {
                const ssize_t n = ::pread(fd, static_cast<char*>(buf.data) + done, buf.size - done,
                                          static_cast<off_t>(offset + done));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return -errno;
                if (n == 0) break;
                done += static_cast<std::size_t>(n);
            }
            return static_cast<long>(done);
        });
    }

    /// All of buf at offset (the file grows as needed).
    task<> write_at(const_buffer buf, std::uint64_t offset) const {
        const std::int64_t at = to_off(offset, "fs::file::write_at");
        if (native()) {
            detail::exact_awaiter op(detail::io_kind::write, fd_, buf.data, buf.size, "fs::file::write_at", at);
            op.set_subject(path_.c_str());
            co_await op;
            co_return;
        }
        (void)co_await pooled("fs::file::write_at", path_.c_str(), [fd = fd_, buf, offset]() -> long {
            std::size_t done = 0;
            while (done < buf.size) {
                const ssize_t n = ::pwrite(fd, static_cast<const char*>(buf.data) + done, buf.size - done,
                                           static_cast<off_t>(offset + done));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return -errno;
                done += static_cast<std::size_t>(n);
            }
            return static_cast<long>(done);
        });
    }

    /// Flushes data and metadata to the device (fsync).
    task<> sync() const {
        if (native()) {
            detail::transfer_awaiter op(detail::io_kind::fsync, fd_, nullptr, 0, "fs::file::sync");
            op.set_subject(path_.c_str());
            (void)co_await op;
            co_return;
        }
        (void)co_await pooled("fs::file::sync", path_.c_str(),
                              [fd = fd_]() -> long { return ::fsync(fd) < 0 ? -errno : 0; });
    }

    /// The file's size now (fstat: metadata, answered from the cache).
    [[nodiscard]] std::uint64_t size() const {
        struct stat st {};
        if (::fstat(fd_, &st) < 0) throw error(errno, "fs::file::size");
        return static_cast<std::uint64_t>(st.st_size);
    }

    /// Closes the file now (the destructor does it too).
    void close() noexcept {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }
    /// False for a default-constructed, moved-from or closed file.
    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
    /// The descriptor, still owned here (do not close it).
    [[nodiscard]] int native_handle() const noexcept { return fd_; }
    /// The path it was opened with.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    file(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}

    static bool native() { return event_loop::current().backend() == backend_kind::io_uring; }

    static int open_flags(open_mode mode) noexcept {
        int flags = O_CLOEXEC;
        if (has(mode, open_mode::read) && has(mode, open_mode::write))
            flags |= O_RDWR;
        else if (has(mode, open_mode::write))
            flags |= O_WRONLY;
        else
            flags |= O_RDONLY;
        if (has(mode, open_mode::create)) flags |= O_CREAT;
        if (has(mode, open_mode::truncate)) flags |= O_TRUNC;
        if (has(mode, open_mode::exclusive)) flags |= O_EXCL;
        if (has(mode, open_mode::append)) flags |= O_APPEND;
        return flags;
    }

    // Checked on both backends alike (pread would say EINVAL too, io_uring's -1 would
    // mean "the current position").
    std::int64_t to_off(std::uint64_t offset, const char* what) const {
        if (offset > static_cast<std::uint64_t>(INT64_MAX)) throw error(EINVAL, what);
        return static_cast<std::int64_t>(offset);
    }

    // Worded like io_awaiter's and pooled's errors: the errno, the operation, the path.
    [[nodiscard]] std::system_error error(int code, const char* what) const {
        return {code, std::system_category(), std::string("corio: ") + what + " '" + path_ + "'"};
    }

    // The epoll backend's way: the blocking call on the default pool; it returns a count
    // or -errno.
    template <class F>
    static task<std::size_t> pooled(const char* what, const char* path, F job) {
        const long rc = co_await to_thread(std::move(job));
        if (rc < 0)
            throw std::system_error(static_cast<int>(-rc), std::system_category(),
                                    std::string("corio: ") + what + " '" + path + "'");
        co_return static_cast<std::size_t>(rc);
    }

    int fd_ = -1;
    std::string path_;
};

}  // namespace corio::fs
