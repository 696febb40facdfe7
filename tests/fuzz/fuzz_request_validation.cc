// Fuzz target: client request validation and the MVCC apply path behind it. The first input
// byte picks the request kind (Range, Put, DeleteRange, Txn, Compaction); the rest is that
// request serialized. A request that passes etcd's checks (ValidateRange/ValidateTxn and the
// empty-key rule) is applied to a real KvStore on RocksDB, as a member applies a committed
// entry; any input must end in a result or an error status, never a crash.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>

#include "chainfire/mvcc/kv_store.h"
#include "chainfire/mvcc/txn_validation.h"
#include "chainfire/storage/engine.h"

namespace {

struct Store {
  std::unique_ptr<chainfire::storage::Engine> engine;
  std::unique_ptr<chainfire::mvcc::KvStore> kv;
  uint64_t index = 0;
};

Store& TheStore() {
  static Store* store = [] {
    auto* s = new Store;
    const std::string dir = "/tmp/chainfire-fuzz-kv-" + std::to_string(getpid());
    std::filesystem::remove_all(dir);
    auto engine = chainfire::storage::Engine::Open(dir);
    if (!engine.ok()) __builtin_trap();
    s->engine = std::move(*engine);
    auto kv = chainfire::mvcc::KvStore::Open(s->engine.get());
    if (!kv.ok()) __builtin_trap();
    s->kv = std::move(*kv);
    return s;
  }();
  return *store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Store& s = TheStore();
  const int kind = data[0] % 5;
  const void* body = data + 1;
  const int len = static_cast<int>(size - 1);
  switch (kind) {
    case 0: {
      etcdserverpb::RangeRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      if (!chainfire::mvcc::ValidateRange(req).ok()) return 0;
      etcdserverpb::RangeResponse resp;
      (void)s.kv->Range(req, &resp);
      break;
    }
    case 1: {
      etcdserverpb::PutRequest req;
      if (!req.ParseFromArray(body, len) || req.key().empty()) return 0;
      etcdserverpb::PutResponse resp;
      (void)s.kv->ApplyPut(++s.index, req, &resp);
      break;
    }
    case 2: {
      etcdserverpb::DeleteRangeRequest req;
      if (!req.ParseFromArray(body, len) || req.key().empty()) return 0;
      etcdserverpb::DeleteRangeResponse resp;
      (void)s.kv->ApplyDeleteRange(++s.index, req, &resp);
      break;
    }
    case 3: {
      etcdserverpb::TxnRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      if (!chainfire::mvcc::ValidateTxn(req).ok()) return 0;
      etcdserverpb::TxnResponse resp;
      (void)s.kv->ApplyTxn(++s.index, req, &resp);
      break;
    }
    case 4: {
      etcdserverpb::CompactionRequest req;
      if (!req.ParseFromArray(body, len)) return 0;
      etcdserverpb::CompactionResponse resp;
      (void)s.kv->ApplyCompact(++s.index, req.revision(), &resp);
      break;
    }
  }
  return 0;
}
