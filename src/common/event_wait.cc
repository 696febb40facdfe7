#include "chainfire/common/event_wait.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "chainfire/common/check.h"

namespace chainfire {

EventWait::EventWait()
    : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)), event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (epoll_fd_ < 0 || event_fd_ < 0) Fatal("EventWait: cannot create epoll or eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = event_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) != 0) {
    Fatal("EventWait: cannot watch its eventfd");
  }
}

EventWait::~EventWait() {
  close(event_fd_);
  close(epoll_fd_);
}

bool EventWait::Watch(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventWait::Notify() {
  const uint64_t one = 1;
  // Only fails when the counter would overflow (it is reset by every Wait that sees it).
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

bool EventWait::Wait(int timeout_ms) {
  epoll_event events[4];
  int n;
  do {
    n = epoll_wait(epoll_fd_, events, 4, timeout_ms);
  } while (n < 0 && errno == EINTR);
  bool watched = false;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.fd == event_fd_) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = read(event_fd_, &count, sizeof count);
    } else {
      watched = true;
    }
  }
  return watched;
}

}  // namespace chainfire
