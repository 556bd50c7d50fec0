#pragma once
// The exceptions corio itself throws. Operating-system failures are reported as
// std::system_error whose message names the operation.

#include <stdexcept>
#include <string>

namespace corio {

/// Thrown at a suspension point of a task that was cancelled (asyncio's CancelledError),
/// and by awaiting a cancelled future.
class cancelled_error : public std::runtime_error {
public:
    cancelled_error() : std::runtime_error("corio: operation cancelled") {}
    explicit cancelled_error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown by wait_for when the time runs out (the inner work has been cancelled and has ended).
class timeout_error : public std::runtime_error {
public:
    timeout_error() : std::runtime_error("corio: operation timed out") {}
    explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown when the API is used outside its contract (no running loop, a loop run twice
/// at once, a result read before it exists).
class usage_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

}  // namespace corio
