#include "chainfire/common/check.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace chainfire {
namespace {
std::atomic<FatalHandler> g_handler{nullptr};
}  // namespace

FatalHandler SetFatalHandler(FatalHandler handler) { return g_handler.exchange(handler); }

void Fatal(const std::string& what) {
  FatalHandler handler = g_handler.load();
  if (handler != nullptr) handler(what);
  std::fprintf(stderr, "FATAL: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

namespace internal {
CheckFailure::CheckFailure(const char* file, int line, const char* condition) {
  stream_ << file << ":" << line << ": check failed: " << condition << ": ";
}
CheckFailure::~CheckFailure() noexcept(false) { Fatal(stream_.str()); }
}  // namespace internal

}  // namespace chainfire
