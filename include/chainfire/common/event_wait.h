// EventWait: what one thread sleeps on when it waits for work from other threads and for file
// descriptors at once (epoll with an eventfd). Notify from any thread makes the current or the
// next Wait return; Watch adds a descriptor whose readability also ends a Wait.
// Thread-safety: Notify and Watch from any thread; Wait from one thread at a time.
#pragma once

namespace chainfire {

class EventWait {
 public:
  EventWait();
  ~EventWait();
  EventWait(const EventWait&) = delete;
  EventWait& operator=(const EventWait&) = delete;

  // Also wake for `fd` becoming readable (level-triggered: while it stays readable, every
  // Wait returns at once). The caller keeps `fd` open until this object is gone.
  bool Watch(int fd);  // false (errno set) when epoll refuses it
  // Ends the current Wait, or the next one if none is running (at most one is remembered).
  void Notify();
  // Sleeps up to `timeout_ms` (0: only looks) until Notify or a watched descriptor is
  // readable. Returns whether a watched descriptor is readable (not counting Notify).
  bool Wait(int timeout_ms);

 private:
  int epoll_fd_ = -1;
  int event_fd_ = -1;
};

}  // namespace chainfire
