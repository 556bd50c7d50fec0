// libFuzzer target: net::endpoint::parse. Whatever the text, it returns or throws
// std::system_error (EINVAL, naming the text); an endpoint it returns prints as text that
// parses back to the same endpoint.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include <corio/net/endpoint.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto ep = corio::net::endpoint::parse(text);
        const auto again = corio::net::endpoint::parse(ep.to_string());
        if (!(again == ep)) __builtin_trap();
    } catch (const std::system_error& e) {
        if (e.code().value() != EINVAL) __builtin_trap();
    }
    return 0;
}
