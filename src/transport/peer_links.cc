#include "chainfire/transport/peer_links.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/sockets.h"
#include "chainfire/common/thread_name.h"
#include "spdlog/spdlog.h"

namespace chainfire::transport {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kConnectTimeoutMs = 1000;
constexpr int kAnswerTimeoutMs = 2000;
constexpr auto kSniffTimeout = std::chrono::seconds(10);
constexpr size_t kMaxSniffing = 256;     // connections not yet sorted; more are closed
constexpr size_t kMaxAccepted = 64;      // open incoming links; more are closed
constexpr size_t kMaxHeld = 8192;        // messages held for a peer while its link is down
constexpr size_t kMaxUnsent = 64 << 20;  // bytes a slow peer may leave unsent
constexpr size_t kReadChunk = 256 << 10;
constexpr int kMinBackoffMs = 50;
constexpr int kMaxBackoffMs = 250;

void SetSocketOptions(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A peer that vanished without a reset (power loss) is noticed within ~25 s.
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  const int idle = 10, interval = 5, count = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  // Data unacknowledged for 10 s (a peer host gone) breaks the link, so it is dialed again
  // instead of waiting out TCP's retransmissions (minutes).
  const int user_timeout_ms = 10000;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

// Waits up to `timeout_ms` for `events` on `fd`; false on timeout or error.
bool PollFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int n;
  do {
    n = poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n == 1 && (p.revents & events) != 0;
}

enum class DialResult { kUp, kLegacy, kClosed, kFailed };

// Connects to `address`, sends the preface and waits for its answer. On kUp `*out` is the
// link's socket (non-blocking).
DialResult Dial(const std::string& address, int* out, std::string* error) {
  AddrInfoList found = ResolveHostPort(address, /*passive=*/false, error);
  if (found == nullptr) return DialResult::kFailed;
  for (addrinfo* a = found.get(); a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int err = 0;
    socklen_t len = sizeof err;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 &&
        (errno != EINPROGRESS || !PollFor(fd, POLLOUT, kConnectTimeoutMs) ||
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
      *error = err != 0 ? std::strerror(err) : "connect timed out";
      close(fd);
      continue;
    }
    SetSocketOptions(fd);
    if (send(fd, PeerLinks::kPreface, PeerLinks::kPrefaceBytes, MSG_NOSIGNAL) !=
        static_cast<ssize_t>(PeerLinks::kPrefaceBytes)) {
      *error = "cannot send the preface";
      close(fd);
      return DialResult::kFailed;
    }
    char answer[PeerLinks::kPrefaceBytes];
    size_t got = 0;
    while (got < sizeof answer && PollFor(fd, POLLIN, kAnswerTimeoutMs)) {
      const ssize_t n = recv(fd, answer + got, sizeof answer - got, 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (got == sizeof answer && std::memcmp(answer, PeerLinks::kPrefaceAnswer, got) == 0) {
      *out = fd;
      return DialResult::kUp;
    }
    close(fd);
    if (got == 0) {
      *error = "closed without answering the link preface";
      return DialResult::kClosed;
    }
    *error = "answered something other than the link preface's answer";
    return DialResult::kLegacy;
  }
  return DialResult::kFailed;
}

}  // namespace

class PeerLinks::Impl {
 public:
  // What an epoll event refers to.
  struct Tag {
    enum Kind { kAdopt, kOut, kIn } kind;
  };
  // This member's link to one peer (it dials it).
  struct OutLink : Tag {
    uint64_t id = 0;
    PeerOptions options;
    // Node thread only.
    int fd = -1;
    std::string unsent;
    size_t unsent_from = 0;
    bool want_writable = false;
    peer::MessageBatch pending;  // messages since the last Flush, or held while down
    uint64_t dial_failures_seen = 0;
    // Shared with the dialer.
    std::mutex mu;
    std::condition_variable cv;
    bool need_dial = true;  // guarded by mu
    bool broke = false;     // guarded by mu: back off before the next dial
    std::atomic<bool> legacy{false};
    std::atomic<uint64_t> dial_failures{0};
    std::thread dialer;
  };
  // A link a peer dialed (it only sends).
  struct InLink : Tag {
    int fd = -1;
    std::string remote;
    std::string buffer;
    size_t used = 0;
  };
  struct Adopted {
    int fd;
    OutLink* out;  // nullptr: an incoming link
    std::string remote;
  };

  explicit Impl(PeerLinks* links) : links_(links) {}

  PeerLinks* links_;
  Tag adopt_tag_{Tag::kAdopt};
  int adopt_fd_ = -1;  // eventfd: new links wait in `adopted_`
  std::mutex adopt_mu_;
  std::vector<Adopted> adopted_;  // guarded by adopt_mu_
  std::map<uint64_t, std::unique_ptr<OutLink>> out_;
  std::list<InLink> in_;  // node thread
  std::atomic<bool> stopping_{false};

  // Acceptor.
  std::vector<int> listeners_;
  std::vector<int> ports_;
  int accept_epoll_ = -1;
  int accept_stop_fd_ = -1;
  std::thread acceptor_;

  void Hand(Adopted a) {
    {
      std::lock_guard<std::mutex> l(adopt_mu_);
      if (!stopping_) {
        adopted_.push_back(std::move(a));
        a.fd = -1;
      }
    }
    if (a.fd >= 0) {
      close(a.fd);
      return;
    }
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(adopt_fd_, &one, sizeof one);
  }

  void AcceptLoop();
  void DialLoop(OutLink* l);
  void Adopt();
  void Frame(OutLink* l);
  void WriteOut(OutLink* l);
  void Break(OutLink* l, const std::string& why);
  void DropPending(OutLink* l);
  // Reads what `l` has; false when the link must close.
  bool ReadIn(InLink* l, std::vector<raft::Message>* out);
};

PeerLinks::PeerLinks(Options options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(this)) {}

absl::StatusOr<std::unique_ptr<PeerLinks>> PeerLinks::Listen(Options options) {
  CF_CHECK(options.intake != nullptr);
  auto links = std::unique_ptr<PeerLinks>(new PeerLinks(std::move(options)));
  Impl* impl = links->impl_.get();
  links->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  impl->adopt_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl->accept_epoll_ = epoll_create1(EPOLL_CLOEXEC);
  impl->accept_stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (links->epoll_fd_ < 0 || impl->adopt_fd_ < 0 || impl->accept_epoll_ < 0 ||
      impl->accept_stop_fd_ < 0) {
    return absl::InternalError(absl::StrCat("peer links: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &impl->adopt_tag_;
  epoll_ctl(links->epoll_fd_, EPOLL_CTL_ADD, impl->adopt_fd_, &ev);
  ev.data.fd = impl->accept_stop_fd_;
  epoll_ctl(impl->accept_epoll_, EPOLL_CTL_ADD, impl->accept_stop_fd_, &ev);
  for (const std::string& hp : links->options_.listen) {
    std::string error;
    AddrInfoList found = ResolveHostPort(hp, /*passive=*/true, &error);
    if (found == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", hp, ": ", error));
    }
    const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) close(fd);
      return absl::UnavailableError(absl::StrCat("cannot listen on ", hp, ": ", why));
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    impl->ports_.push_back(ntohs(bound.ss_family == AF_INET6
                                     ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port));
    impl->listeners_.push_back(fd);
    ev.data.fd = fd;
    epoll_ctl(impl->accept_epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
  impl->acceptor_ = std::thread([impl] {
    SetThreadName("cf-link-accept");
    impl->AcceptLoop();
  });
  return links;
}

std::vector<int> PeerLinks::bound_ports() const { return impl_->ports_; }

void PeerLinks::Start(std::map<uint64_t, PeerOptions> peers) {
  for (auto& [id, o] : peers) {
    auto l = std::make_unique<Impl::OutLink>();
    l->kind = Impl::Tag::kOut;
    l->id = id;
    l->options = std::move(o);
    l->pending.set_cluster_id(options_.cluster_id);
    l->pending.set_from(options_.self_id);
    Impl::OutLink* raw = l.get();
    impl_->out_[id] = std::move(l);
    raw->dialer = std::thread([this, raw] {
      SetThreadName("cf-link-dial");
      impl_->DialLoop(raw);
    });
  }
}

PeerLinks::~PeerLinks() {
  Stop();
  for (auto& [id, l] : impl_->out_) {
    if (l->fd >= 0) close(l->fd);
  }
  for (Impl::InLink& l : impl_->in_) close(l.fd);
  for (Impl::Adopted& a : impl_->adopted_) close(a.fd);
  for (int fd : {epoll_fd_, impl_->adopt_fd_, impl_->accept_epoll_, impl_->accept_stop_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void PeerLinks::Stop() {
  if (impl_->stopping_.exchange(true)) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(impl_->accept_stop_fd_, &one, sizeof one);
  if (impl_->acceptor_.joinable()) impl_->acceptor_.join();
  for (int fd : impl_->listeners_) close(fd);
  impl_->listeners_.clear();
  for (auto& [id, l] : impl_->out_) {
    { std::lock_guard<std::mutex> g(l->mu); }
    l->cv.notify_all();
    if (l->dialer.joinable()) l->dialer.join();
  }
}

bool PeerLinks::Legacy(uint64_t peer) const {
  auto it = impl_->out_.find(peer);
  return it != impl_->out_.end() && it->second->legacy.load(std::memory_order_relaxed);
}

void PeerLinks::Impl::AcceptLoop() {
  struct Sniffing {
    Clock::time_point since;
    std::string remote;
  };
  std::map<int, Sniffing> sniffing;
  const auto forget = [&](int fd) {
    epoll_ctl(accept_epoll_, EPOLL_CTL_DEL, fd, nullptr);
    sniffing.erase(fd);
  };
  for (;;) {
    epoll_event events[16];
    const int n = epoll_wait(accept_epoll_, events, 16, 1000);
    if (stopping_) break;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == accept_stop_fd_) continue;
      if (std::find(listeners_.begin(), listeners_.end(), fd) != listeners_.end()) {
        for (;;) {
          const int c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            // Out of descriptors: the listener stays readable, so back off instead of spinning.
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            break;
          }
          if (sniffing.size() >= kMaxSniffing) {
            close(c);
            continue;
          }
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = c;
          epoll_ctl(accept_epoll_, EPOLL_CTL_ADD, c, &ev);
          sniffing[c] = Sniffing{Clock::now(), SocketPeerName(c)};
        }
        continue;
      }
      auto it = sniffing.find(fd);
      if (it == sniffing.end()) continue;
      char head[kPrefaceBytes];
      const ssize_t got = recv(fd, head, sizeof head, MSG_PEEK);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        forget(fd);
        close(fd);
        continue;
      }
      std::string remote = it->second.remote;
      if (std::memcmp(head, kPreface, static_cast<size_t>(got)) != 0) {
        forget(fd);  // HTTP/2 (gRPC) or anything else: the other server's to judge
        if (links_->options_.other_connection) {
          links_->options_.other_connection(fd, remote);
        } else {
          close(fd);
        }
        continue;
      }
      if (static_cast<size_t>(got) < kPrefaceBytes) continue;  // the rest follows
      forget(fd);
      recv(fd, head, sizeof head, 0);  // consumes the preface it peeked at
      if (send(fd, kPrefaceAnswer, kPrefaceBytes, MSG_NOSIGNAL) !=
          static_cast<ssize_t>(kPrefaceBytes)) {
        close(fd);
        continue;
      }
      SetSocketOptions(fd);
      Hand(Adopted{fd, nullptr, std::move(remote)});
    }
    const auto now = Clock::now();
    for (auto it = sniffing.begin(); it != sniffing.end();) {
      if (now - it->second.since < kSniffTimeout) {
        ++it;
        continue;
      }
      epoll_ctl(accept_epoll_, EPOLL_CTL_DEL, it->first, nullptr);
      close(it->first);
      it = sniffing.erase(it);
    }
  }
  for (auto& [fd, s] : sniffing) close(fd);
}

void PeerLinks::Impl::DialLoop(OutLink* l) {
  int backoff_ms = kMinBackoffMs;
  int closed_in_a_row = 0;
  std::unique_lock<std::mutex> g(l->mu);
  while (!stopping_) {
    l->cv.wait(g, [&] { return stopping_ || l->need_dial; });
    if (stopping_) break;
    if (l->broke) {
      l->cv.wait_for(g, std::chrono::milliseconds(backoff_ms), [&] { return stopping_.load(); });
      if (stopping_) break;
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    }
    g.unlock();
    int fd = -1;
    std::string error;
    DialResult r = Dial(l->options.address, &fd, &error);
    // A member without links that closes at once looks like one shutting down; a few in a row
    // tell them apart.
    closed_in_a_row = r == DialResult::kClosed ? closed_in_a_row + 1 : 0;
    if (closed_in_a_row >= 3) r = DialResult::kLegacy;
    g.lock();
    if (r == DialResult::kUp) {
      if (l->legacy.exchange(false)) {
        spdlog::info("the member at {} ({:x}) speaks peer links again", l->options.address, l->id);
      }
      l->need_dial = false;
      l->broke = false;
      backoff_ms = kMinBackoffMs;
      g.unlock();
      Hand(Adopted{fd, l, l->options.address});
      g.lock();
      continue;
    }
    l->dial_failures.fetch_add(1);
    l->broke = true;
    if (r == DialResult::kLegacy) {
      closed_in_a_row = 0;
      if (!l->legacy.exchange(true)) {
        spdlog::info(
            "the member at {} ({:x}) {}: its messages go over the gRPC stream; trying again "
            "every {} s",
            l->options.address, l->id, error,
            std::chrono::duration_cast<std::chrono::seconds>(links_->options_.legacy_retry)
                .count());
      }
      l->cv.wait_for(g, links_->options_.legacy_retry, [&] { return stopping_.load(); });
    }
  }
}

void PeerLinks::Impl::Adopt() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(adopt_fd_, &count, sizeof count);
  std::vector<Adopted> adopted;
  {
    std::lock_guard<std::mutex> g(adopt_mu_);
    adopted.swap(adopted_);
  }
  for (Adopted& a : adopted) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    if (a.out != nullptr) {
      OutLink* l = a.out;
      if (l->fd >= 0) {  // not expected: the dialer dials only after a break
        close(a.fd);
        continue;
      }
      l->fd = a.fd;
      ev.data.ptr = static_cast<Tag*>(l);
      epoll_ctl(links_->epoll_fd_, EPOLL_CTL_ADD, a.fd, &ev);
      links_->dialed_up_.fetch_add(1);
      l->dial_failures_seen = l->dial_failures.load();
      if (l->pending.messages_size() > 0) {
        Frame(l);
        WriteOut(l);
      }
      continue;
    }
    if (in_.size() >= kMaxAccepted) {
      spdlog::warn("closing a peer link from {}: {} links are open already", a.remote,
                   kMaxAccepted);
      close(a.fd);
      continue;
    }
    InLink& l = in_.emplace_back();
    l.kind = Tag::kIn;
    l.fd = a.fd;
    l.remote = std::move(a.remote);
    ev.data.ptr = static_cast<Tag*>(&l);
    epoll_ctl(links_->epoll_fd_, EPOLL_CTL_ADD, a.fd, &ev);
    links_->accepted_up_.fetch_add(1);
  }
}

void PeerLinks::Send(raft::Message m) {
  auto it = impl_->out_.find(m.to);
  if (it == impl_->out_.end()) return;
  Impl::OutLink* l = it->second.get();
  if (l->fd < 0 && static_cast<size_t>(l->pending.messages_size()) >= kMaxHeld) {
    if (l->options.sent_failures) l->options.sent_failures->Add();
    return;
  }
  *l->pending.add_messages() = ToProto(std::move(m));
}

void PeerLinks::Flush() {
  for (auto& [id, l] : impl_->out_) {
    if (l->pending.messages_size() == 0) continue;
    if (l->fd >= 0) {
      impl_->Frame(l.get());
      impl_->WriteOut(l.get());
    } else if (l->dial_failures.load() != l->dial_failures_seen) {
      // The dial that was under way when these were sent failed: drop them (Raft retransmits).
      l->dial_failures_seen = l->dial_failures.load();
      impl_->DropPending(l.get());
    }
  }
}

void PeerLinks::Impl::DropPending(OutLink* l) {
  if (l->options.sent_failures) l->options.sent_failures->Add();
  if (links_->options_.heartbeat_failures) {
    for (const peer::RaftMessage& m : l->pending.messages()) {
      if (m.type() == static_cast<uint32_t>(raft::MessageType::kHeartbeat)) {
        links_->options_.heartbeat_failures->Add();
      }
    }
  }
  l->pending.clear_messages();
}

void PeerLinks::Impl::Frame(OutLink* l) {
  const size_t bytes = l->pending.ByteSizeLong();
  if (bytes > kMaxFrameBytes || l->unsent.size() - l->unsent_from > kMaxUnsent) {
    DropPending(l);  // a peer that reads too slowly, or a batch too large to frame
    return;
  }
  if (l->unsent_from == l->unsent.size()) {
    l->unsent.clear();
    l->unsent_from = 0;
  }
  const size_t at = l->unsent.size();
  l->unsent.resize(at + 4 + bytes);
  auto* p = reinterpret_cast<uint8_t*>(l->unsent.data() + at);
  const auto n = static_cast<uint32_t>(bytes);
  p[0] = n & 0xff;
  p[1] = (n >> 8) & 0xff;
  p[2] = (n >> 16) & 0xff;
  p[3] = n >> 24;
  l->pending.SerializeWithCachedSizesToArray(p + 4);
  l->pending.clear_messages();
  if (l->options.sent_bytes) l->options.sent_bytes->Add(bytes);
}

void PeerLinks::Impl::WriteOut(OutLink* l) {
  while (l->unsent_from < l->unsent.size()) {
    const ssize_t n = send(l->fd, l->unsent.data() + l->unsent_from,
                           l->unsent.size() - l->unsent_from, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      l->unsent_from += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!l->want_writable) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
        ev.data.ptr = static_cast<Tag*>(l);
        epoll_ctl(links_->epoll_fd_, EPOLL_CTL_MOD, l->fd, &ev);
        l->want_writable = true;
      }
      if (l->unsent_from > (1 << 20) && l->unsent_from * 2 > l->unsent.size()) {
        l->unsent.erase(0, l->unsent_from);
        l->unsent_from = 0;
      }
      return;
    }
    Break(l, std::strerror(errno));
    return;
  }
  l->unsent.clear();
  l->unsent_from = 0;
  if (l->want_writable) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = static_cast<Tag*>(l);
    epoll_ctl(links_->epoll_fd_, EPOLL_CTL_MOD, l->fd, &ev);
    l->want_writable = false;
  }
}

void PeerLinks::Impl::Break(OutLink* l, const std::string& why) {
  spdlog::info("the peer link to {:x} at {} broke ({}); dialing again", l->id, l->options.address,
               why);
  epoll_ctl(links_->epoll_fd_, EPOLL_CTL_DEL, l->fd, nullptr);
  close(l->fd);
  l->fd = -1;
  links_->dialed_up_.fetch_sub(1);
  if (l->unsent_from < l->unsent.size() && l->options.sent_failures) {
    l->options.sent_failures->Add();
  }
  l->unsent.clear();
  l->unsent_from = 0;
  l->want_writable = false;
  {
    std::lock_guard<std::mutex> g(l->mu);
    l->need_dial = true;
    l->broke = true;
  }
  l->cv.notify_one();
}

void PeerLinks::Poll(std::vector<raft::Message>* out) {
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(epoll_fd_, events, 64, 0);
  } while (n < 0 && errno == EINTR);
  std::vector<Impl::InLink*> closing;
  for (int i = 0; i < n; ++i) {
    auto* tag = static_cast<Impl::Tag*>(events[i].data.ptr);
    if (tag->kind == Impl::Tag::kAdopt) {
      impl_->Adopt();
      continue;
    }
    if (tag->kind == Impl::Tag::kOut) {
      auto* l = static_cast<Impl::OutLink*>(tag);
      if (l->fd < 0) continue;  // broke earlier in this round
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        // The listener never sends: this is the link closing (or a protocol breach).
        impl_->Break(l, "closed by the peer");
        continue;
      }
      if (events[i].events & EPOLLOUT) impl_->WriteOut(l);
      continue;
    }
    auto* l = static_cast<Impl::InLink*>(tag);
    if (!impl_->ReadIn(l, out)) closing.push_back(l);
  }
  for (Impl::InLink* l : closing) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, l->fd, nullptr);
    close(l->fd);
    accepted_up_.fetch_sub(1);
    impl_->in_.remove_if([l](const Impl::InLink& x) { return &x == l; });
  }
}

bool PeerLinks::Impl::ReadIn(InLink* l, std::vector<raft::Message>* out) {
  for (;;) {
    if (l->buffer.size() - l->used < kReadChunk / 4) l->buffer.resize(l->used + kReadChunk);
    const ssize_t n = recv(l->fd, l->buffer.data() + l->used, l->buffer.size() - l->used, 0);
    if (n == 0) return false;  // the peer closed it (restart, shutdown)
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    l->used += static_cast<size_t>(n);
    size_t at = 0;
    while (l->used - at >= 4) {
      const auto* p = reinterpret_cast<const uint8_t*>(l->buffer.data() + at);
      const uint32_t bytes =
          p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
      if (bytes > kMaxFrameBytes) {
        spdlog::warn("closing the peer link from {}: a frame of {} bytes (at most {})", l->remote,
                     bytes, kMaxFrameBytes);
        return false;
      }
      if (l->used - at - 4 < bytes) {
        if (l->buffer.size() < bytes + 4) l->buffer.resize(bytes + 4 + kReadChunk);
        break;
      }
      peer::MessageBatch batch;
      if (!batch.ParseFromArray(p + 4, static_cast<int>(bytes))) {
        spdlog::warn("closing the peer link from {}: a frame that is not a message batch",
                     l->remote);
        return false;
      }
      links_->options_.intake->Take(std::move(batch), bytes, l->remote, out);
      at += 4 + bytes;
    }
    if (at > 0) {
      std::memmove(l->buffer.data(), l->buffer.data() + at, l->used - at);
      l->used -= at;
    }
    if (static_cast<size_t>(n) < kReadChunk / 4) return true;  // probably drained
  }
}

}  // namespace chainfire::transport
