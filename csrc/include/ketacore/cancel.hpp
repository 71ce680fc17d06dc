// ketacore/cancel.hpp -- cooperative cancellation token for long C++ loops.
//
// The Python binding (csrc/bindings/cancellable.hpp) runs a job on a worker thread with the GIL
// released; when the user presses Ctrl-C it sets the token, and the loops, which poll
// `cancelled()` every few thousand events, return early.  Results of a cancelled job are
// discarded by the caller; all memory is owned by RAII containers, so nothing leaks.
#pragma once
#include <atomic>

namespace ketacore {

class CancelToken {
 public:
  bool cancelled() const noexcept { return flag_.load(std::memory_order_relaxed); }
  void cancel() noexcept { flag_.store(true, std::memory_order_relaxed); }
  void reset() noexcept { flag_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

// Events (or steps) between two polls of the token inside hot loops.
constexpr long kCancelPollInterval = 4096;

}  // namespace ketacore
