#pragma once
// An echo server in a process of its own: the peers written in other languages (the Tokio
// one in bench/tokio/). The protocol: the server listens on 127.0.0.1, prints its port as
// the first line of its stdout, and exits when its stdin reaches end of file.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace bench {

class external_server {
public:
    /// Starts `argv` (looked up in PATH when argv[0] has no slash) and waits for its port.
    /// Pinned to `cpu` when cpu >= 0 and there are two CPUs or more. Throws
    /// std::runtime_error, naming the command, when it cannot start, exits, prints
    /// something else than a port, or says nothing for start_timeout.
    explicit external_server(std::vector<std::string> argv, int cpu = -1) : argv_(std::move(argv)) {
        if (argv_.empty()) throw std::invalid_argument("bench::external_server: empty command");
        try {
            start(cpu);
            port_ = read_port();
        } catch (...) {
            stop(false);  // a server that failed to start gets no grace
            throw;
        }
    }
    /// Closes the server's stdin and waits for it to exit; SIGKILL after stop_timeout.
    ~external_server() { stop(true); }

    external_server(const external_server&) = delete;
    external_server& operator=(const external_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    pid_t pid() const noexcept { return pid_; }

    static constexpr std::chrono::seconds start_timeout{30};
    static constexpr std::chrono::seconds stop_timeout{5};

private:
    using clock = std::chrono::steady_clock;

    std::string command() const {
        std::string s;
        for (const auto& a : argv_) s += (s.empty() ? "" : " ") + a;
        return "'" + s + "'";
    }
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("bench: external server " + command() + " " + what);
    }
    [[noreturn]] void fail_errno(int err, const std::string& what) const { fail(what + ": " + errno_message(err)); }
    static std::string errno_message(int err) { return std::generic_category().message(err); }

    void start(int cpu) {
        int in[2];   // the server's stdin: we hold the writing end, and never write
        int out[2];  // the server's stdout
        if (::pipe2(in, O_CLOEXEC) < 0) fail_errno(errno, "cannot be started: pipe");
        to_child_ = in[1];
        if (::pipe2(out, O_CLOEXEC) < 0) {
            const int err = errno;
            ::close(in[0]);
            fail_errno(err, "cannot be started: pipe");
        }
        from_child_ = out[0];
        const std::string error = spawn(cpu, in[0], out[1]);
        ::close(in[0]);
        ::close(out[1]);
        if (!error.empty()) fail(error);
    }

    // An error message, or empty when the server runs.
    std::string spawn(int cpu, int child_in, int child_out) {
        // posix_spawn has no affinity attribute, and pinning the child after it started
        // races with the threads it starts. A child inherits the spawning thread's mask,
        // so this thread takes the server's CPU for the moment of the spawn.
        cpu_set_t mine;
        const bool pin = cpu >= 0 && std::thread::hardware_concurrency() >= 2;
        if (pin) {
            const std::string to = "cannot be pinned to CPU " + std::to_string(cpu);
            if (cpu >= CPU_SETSIZE) return to + ": no such CPU";
            if (::sched_getaffinity(0, sizeof mine, &mine) < 0) return to + ": " + errno_message(errno);
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(static_cast<unsigned>(cpu), &one);
            if (::sched_setaffinity(0, sizeof one, &one) < 0) return to + ": " + errno_message(errno);
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        // dup2 clears close-on-exec on the copies; the originals close at exec.
        posix_spawn_file_actions_adddup2(&actions, child_in, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, child_out, STDOUT_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
        // Nothing else of ours: a descriptor someone forgot to mark close-on-exec (a
        // socket of the benchmark, a pipe of whoever runs it) must not live on in the server.
        posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
        std::vector<char*> args;
        for (auto& a : argv_) args.push_back(a.data());
        args.push_back(nullptr);
        pid_t pid = -1;
        // glibc reports a failed exec here, rather than as the child's exit status 127.
        const int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (pin) ::sched_setaffinity(0, sizeof mine, &mine);
        if (err != 0) return "cannot be started: " + errno_message(err);
        pid_ = pid;
        return {};
    }

    // The first line of the server's stdout, as a port.
    std::uint16_t read_port() {
        const auto deadline = clock::now() + start_timeout;
        std::string line;
        for (;;) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) fail("printed no port within " + std::to_string(start_timeout.count()) + " s");
            pollfd p{from_child_, POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) fail_errno(errno, "cannot be read: poll");
            if (r == 0) continue;
            char buf[64];
            const ssize_t n = ::read(from_child_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail_errno(errno, "cannot be read");
            if (n == 0) fail("closed its stdout before printing its port (" + reap() + ")");
            line.append(buf, static_cast<std::size_t>(n));
            if (const auto eol = line.find('\n'); eol != std::string::npos) {
                line.resize(eol);
                break;
            }
            if (line.size() > 64) break;  // no port is that long: garbage
        }
        unsigned port = 0;
        const char* end = line.data() + line.size();
        const auto [p, ec] = std::from_chars(line.data(), end, port);
        if (ec != std::errc() || p != end || port == 0 || port > 65535)
            fail("printed \"" + line.substr(0, 64) + "\" instead of its port");
        return static_cast<std::uint16_t>(port);
    }

    // After end of file on its stdout: how the server ended, for the error message. It
    // may have closed stdout and still run; stop(false) then ends it.
    std::string reap() {
        const auto deadline = clock::now() + std::chrono::milliseconds(500);
        int status = 0;
        for (;;) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) break;
            if (r < 0 && errno != EINTR) return "no exit status";
            if (clock::now() >= deadline) return "still running";
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        pid_ = -1;
        if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
        if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
        return "status " + std::to_string(status);
    }

    // Never throws: the destructor, and the constructor's failure path, call it. Gently:
    // end of file on stdin first, SIGKILL only after stop_timeout.
    void stop(bool gently) noexcept {
        close_fd(to_child_);  // end of file on the server's stdin: its signal to exit
        close_fd(from_child_);
        if (pid_ <= 0) return;
        const auto deadline = clock::now() + stop_timeout;
        bool killed = !gently && ::kill(pid_, SIGKILL) == 0;
        for (;;) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_ || (r < 0 && errno != EINTR)) break;
            if (!killed && clock::now() >= deadline) {
                // It ignored the end of its stdin: no zombie and no stray server, whatever it does.
                ::kill(pid_, SIGKILL);
                killed = true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        pid_ = -1;
    }
    static void close_fd(int& fd) noexcept {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }

    std::vector<std::string> argv_;
    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::uint16_t port_ = 0;
};

}  // namespace bench
