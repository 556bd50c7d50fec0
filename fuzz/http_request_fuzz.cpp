// libFuzzer target: http_server's request parser (examples/http_request.hpp).
// Whatever the bytes, parse_head returns or throws http::error with 400, 413 or 501; a
// head it accepts holds no control byte but CR LF pairs and tabs, its views lie inside
// the input, and its body is within the limit.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../examples/http_request.hpp"

namespace {

bool inside(std::string_view part, std::string_view whole) {
    return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

bool clean(std::string_view head) {
    for (std::size_t i = 0; i < head.size(); ++i) {
        const auto c = static_cast<unsigned char>(head[i]);
        if (c == '\r' && (i + 1 >= head.size() || head[i + 1] != '\n')) return false;
        if (c == '\n' && (i == 0 || head[i - 1] != '\r')) return false;
        if ((c < 32 && c != '\t' && c != '\r' && c != '\n') || c == 127) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view head(reinterpret_cast<const char*>(data), size);
    const http::limits lim;
    try {
        const http::request r = http::parse_head(head, lim);
        if (!inside(r.method, head) || !inside(r.target, head)) __builtin_trap();
        if (r.target.empty() || r.target.front() != '/') __builtin_trap();
        if (r.content_length > lim.max_body_bytes) __builtin_trap();
        if (!clean(head)) __builtin_trap();
    } catch (const http::error& e) {
        if (e.status != 400 && e.status != 413 && e.status != 501) __builtin_trap();
    }
    return 0;
}
