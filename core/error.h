// core/error.h — the one exception type dfx throws, and the checks that build its messages.
// Messages name the op, the shapes, dtypes and devices involved and what was expected, so a user
// embedding dfx in a larger program can act on them (dfx never calls exit()).
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dfx {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Shapes print as [2, 3, 4] in every message.
inline std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& shape) {
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  return os << ']';
}

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... Rest>
void stream_all(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  stream_all(os, rest...);
}
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  stream_all(os, args...);
  return os.str();
}
}  // namespace detail

}  // namespace dfx

// DFX_CHECK(cond, "op: ", shape, " expected ...") throws dfx::Error with the pieces concatenated.
#define DFX_CHECK(cond, ...)                                        \
  do {                                                              \
    if (!(cond)) throw ::dfx::Error(::dfx::detail::cat(__VA_ARGS__)); \
  } while (0)

#define DFX_FAIL(...) throw ::dfx::Error(::dfx::detail::cat(__VA_ARGS__))
