// Watch: one bidirectional stream reactor per client stream (see services.h).
#include <deque>
#include <set>

#include "absl/strings/str_cat.h"
#include "chainfire/server/services.h"
#include "service_helpers.h"

namespace chainfire::server {
namespace {

constexpr size_t kMaxQueuedResponses = 256;

class WatchStream
    : public grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>,
      public mvcc::WatchSink {
 public:
  WatchStream(NodeHost* host, size_t max_bytes, AuthGuard* guard, grpc::CallbackServerContext* ctx)
      : host_(host), max_bytes_(max_bytes), guard_(guard), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side: stop the watches; finish once the queue has drained.
      host_->watch_hub().RemoveAll(this);
      std::lock_guard<std::mutex> l(mu_);
      closing_ = true;
      MaybeFinishLocked();
      return;
    }
    Handle(request_);
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    queue_.pop_front();
    writing_ = false;
    if (!ok) {
      closing_ = true;
      queue_.clear();
    }
    WriteNextLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    if (!writing_) queue_.clear();
    MaybeFinishLocked();
  }

  void OnDone() override {
    host_->watch_hub().RemoveAll(this);  // after this the hub never calls us again
    delete this;
  }

  // mvcc::WatchSink (called with the hub's lock held).
  bool Deliver(int64_t id, std::vector<mvccpb::Event> events, int64_t revision) override {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return true;  // dropping is fine: the stream is going away
    if (queue_.size() >= kMaxQueuedResponses) return false;
    if (!fragmenting_.count(id)) {
      etcdserverpb::WatchResponse r;
      Header(&r, revision);
      r.set_watch_id(id);
      for (mvccpb::Event& e : events) *r.add_events() = std::move(e);
      EnqueueLocked(std::move(r));
      return true;
    }
    // fragment: split a large batch into responses of at most max_bytes_, all but the last
    // flagged `fragment` (clients reassemble them).
    etcdserverpb::WatchResponse r;
    Header(&r, revision);
    r.set_watch_id(id);
    size_t size = 0;
    for (mvccpb::Event& e : events) {
      const size_t n = e.ByteSizeLong();
      if (r.events_size() > 0 && size + n > max_bytes_) {
        r.set_fragment(true);
        EnqueueLocked(r);
        r.clear_events();
        r.set_fragment(false);
        size = 0;
      }
      size += n;
      *r.add_events() = std::move(e);
    }
    EnqueueLocked(std::move(r));
    return true;
  }

  void Compacted(int64_t id, int64_t compact_revision) override {
    std::lock_guard<std::mutex> l(mu_);
    // As etcd 3.4: no revision in the header and no cancel_reason; clients read the
    // compaction from compact_revision.
    etcdserverpb::WatchResponse r;
    Header(&r, 0);
    r.set_watch_id(id);
    r.set_canceled(true);
    r.set_compact_revision(compact_revision);
    EnqueueLocked(std::move(r));
  }

  bool HasRoom() override {
    std::lock_guard<std::mutex> l(mu_);
    return !closing_ && queue_.size() < kMaxQueuedResponses / 2;
  }

 private:
  void Handle(const etcdserverpb::WatchRequest& req) {
    if (req.has_create_request()) {
      const etcdserverpb::WatchCreateRequest& c = req.create_request();
      int64_t id;
      // The watch reports every change after the revision its `created` response carries.
      const int64_t created_rev = host_->kv().revision();
      {
        std::lock_guard<std::mutex> l(mu_);
        id = c.watch_id() != 0 ? c.watch_id() : next_id_++;
        etcdserverpb::WatchResponse r;
        Header(&r, created_rev);
        r.set_watch_id(id);
        r.set_created(true);
        if (ids_.count(id)) {
          r.set_canceled(true);
          r.set_cancel_reason("mvcc: duplicate watch ID provided on the WatchStream");
          EnqueueLocked(std::move(r));
          return;
        }
        if (absl::Status denied = WatchPermission(c); !denied.ok()) {
          // etcd 3.4: created and canceled at once, the reason in the response.
          r.set_watch_id(-1);
          r.set_canceled(true);
          r.set_cancel_reason(absl::StrCat("rpc error: code = ", GrpcCodeName(denied.code()),
                                           " desc = ", denied.message()));
          EnqueueLocked(std::move(r));
          return;
        }
        ids_.insert(id);
        if (c.fragment()) fragmenting_.insert(id);
        EnqueueLocked(std::move(r));  // `created` precedes every event of this watch
      }
      mvcc::WatchSpec spec;
      spec.key = c.key();
      spec.range_end = c.range_end();
      spec.start_revision = c.start_revision() > 0 ? c.start_revision() : created_rev + 1;
      spec.prev_kv = c.prev_kv();
      spec.progress_notify = c.progress_notify();
      for (int f : c.filters()) {
        if (f == etcdserverpb::WatchCreateRequest::NOPUT) spec.no_put = true;
        if (f == etcdserverpb::WatchCreateRequest::NODELETE) spec.no_delete = true;
      }
      const int64_t compacted = host_->kv().compact_revision();
      if (spec.start_revision > 0 && spec.start_revision < compacted) {
        Compacted(id, compacted);
        return;
      }
      host_->watch_hub().Add(this, id, spec);
    } else if (req.has_cancel_request()) {
      const int64_t id = req.cancel_request().watch_id();
      host_->watch_hub().Remove(this, id);
      std::lock_guard<std::mutex> l(mu_);
      ids_.erase(id);
      fragmenting_.erase(id);
      etcdserverpb::WatchResponse r;
      Header(&r, host_->kv().revision());
      r.set_watch_id(id);
      r.set_canceled(true);
      EnqueueLocked(std::move(r));
    } else if (req.has_progress_request()) {
      int64_t rev = 0;
      if (host_->watch_hub().Synced(this, &rev)) {
        std::lock_guard<std::mutex> l(mu_);
        etcdserverpb::WatchResponse r;
        Header(&r, rev);
        r.set_watch_id(-1);  // etcd's id for progress notifications
        EnqueueLocked(std::move(r));
      }
    }
  }

  // READ on the watched range, as etcd checks a watch's creation.
  absl::Status WatchPermission(const etcdserverpb::WatchCreateRequest& c) {
    if (!host_->auth().enabled() && ctx_->client_metadata().count("token") == 0) {
      return absl::OkStatus();
    }
    absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx_);
    absl::Status s = caller.ok()
                         ? host_->auth().view()->CheckKeys(*caller, c.key(), c.range_end(), false)
                         : caller.status();
    if (!s.ok()) guard_->LogRefused(ctx_, caller.ok() ? *caller : auth::Caller{}, "a watch", s);
    return s;
  }

  // Go's names of the gRPC codes, as etcd's cancel reasons print them.
  static const char* GrpcCodeName(absl::StatusCode code) {
    switch (code) {
      case absl::StatusCode::kPermissionDenied:
        return "PermissionDenied";
      case absl::StatusCode::kUnauthenticated:
        return "Unauthenticated";
      case absl::StatusCode::kInvalidArgument:
        return "InvalidArgument";
      default:
        return "Unknown";
    }
  }

  void Header(etcdserverpb::WatchResponse* r, int64_t revision) {
    host_->FillHeader(r->mutable_header());
    r->mutable_header()->set_revision(revision);
  }

  void EnqueueLocked(etcdserverpb::WatchResponse r) {
    if (closing_) return;
    queue_.push_back(std::move(r));
    WriteNextLocked();
  }

  void WriteNextLocked() {
    if (writing_ || queue_.empty() || closing_) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  void MaybeFinishLocked() {
    if (closing_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  NodeHost* host_;
  const size_t max_bytes_;
  AuthGuard* guard_;
  grpc::CallbackServerContext* ctx_;  // the stream's; valid until OnDone
  etcdserverpb::WatchRequest request_;
  std::mutex mu_;
  std::deque<etcdserverpb::WatchResponse> queue_;  // guarded by mu_; front is being written
  std::set<int64_t> ids_;                          // guarded by mu_
  std::set<int64_t> fragmenting_;                  // guarded by mu_: watches with `fragment`
  int64_t next_id_ = 0;                            // guarded by mu_
  bool writing_ = false;                           // guarded by mu_
  bool closing_ = false;                           // guarded by mu_
  bool finished_ = false;                          // guarded by mu_
};

}  // namespace

grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>*
WatchService::Watch(grpc::CallbackServerContext* ctx) {
  return new WatchStream(host_, max_bytes_, guard_, ctx);
}

}  // namespace chainfire::server
