// Invariant checks that stay on in production builds.
//
// CF_CHECK(cond) << "message"; stops the process when `cond` is false: a broken invariant or a
// failed fsync must never be carried past. Tests (the simulation) may install a handler that
// throws instead, so that one failing seed is reported and the run continues with the next.
#pragma once

#include <sstream>
#include <string>

namespace chainfire {

// Called with a description of the violated invariant. Must not return normally: the default
// handler prints to stderr and aborts. Thread-safety: set once at startup, before any thread.
using FatalHandler = void (*)(const std::string& what);

// Installs `handler` (nullptr restores the default) and returns the previous handler.
FatalHandler SetFatalHandler(FatalHandler handler);

// Invokes the current fatal handler. Never returns.
[[noreturn]] void Fatal(const std::string& what);

namespace internal {
// Collects the streamed message of a failed CF_CHECK and calls Fatal() when destroyed.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure() noexcept(false);
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace chainfire

#define CF_CHECK(cond)                                \
  if (__builtin_expect(static_cast<bool>(cond), 1)) { \
  } else                                              \
    ::chainfire::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()
