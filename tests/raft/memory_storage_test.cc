#include "chainfire/raft/log_storage.h"
#include "gtest/gtest.h"

namespace chainfire::raft {
namespace {

std::vector<Entry> Ents(Index from, Index to, Term term) {
  std::vector<Entry> out;
  for (Index i = from; i <= to; ++i) out.push_back(Entry{term, i, "e" + std::to_string(i)});
  return out;
}

TEST(MemoryStorage, EmptyStorageHasNothing) {
  MemoryStorage s;
  EXPECT_EQ(s.FirstIndex(), 1u);
  EXPECT_EQ(s.LastIndex(), 0u);
  EXPECT_EQ(*s.TermAt(0), 0u);
  EXPECT_TRUE(IsEntryUnavailable(s.TermAt(1).status()));
}

TEST(MemoryStorage, AppendTruncatesConflictingSuffix) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, 5, 1)).ok());
  ASSERT_TRUE(s.Append(Ents(3, 4, 2)).ok());
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.TermAt(2), 1u);
  EXPECT_EQ(*s.TermAt(3), 2u);
  EXPECT_FALSE(s.Append(Ents(7, 8, 2)).ok()) << "a gap must be refused";
}

TEST(MemoryStorage, CompactionErrors) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, 10, 1)).ok());
  ASSERT_TRUE(s.CreateSnapshot(6, "state").ok());
  ASSERT_TRUE(s.Compact(6).ok());
  EXPECT_EQ(s.FirstIndex(), 7u);
  EXPECT_EQ(*s.TermAt(6), 1u) << "the snapshot's own index keeps its term";
  EXPECT_TRUE(IsCompacted(s.TermAt(5).status()));
  EXPECT_TRUE(IsCompacted(s.Entries(6, 8, kNoLimit).status()));
  EXPECT_TRUE(IsEntryUnavailable(s.Entries(7, 12, kNoLimit).status()));
  EXPECT_TRUE(IsCompacted(s.Compact(3)));
  EXPECT_EQ(s.GetSnapshot()->meta, (SnapshotMeta{6, 1}));
}

TEST(MemoryStorage, EntriesRespectSizeLimitButReturnOne) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, 5, 1)).ok());  // each entry has 2 bytes of data
  EXPECT_EQ(s.Entries(1, 6, 0)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 6, 5)->size(), 2u);
  EXPECT_EQ(s.Entries(1, 6, kNoLimit)->size(), 5u);
}

TEST(MemoryStorage, ApplySnapshotReplacesEverything) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, 3, 1)).ok());
  ASSERT_TRUE(s.ApplySnapshot(Snapshot{{20, 4}, "x"}).ok());
  EXPECT_EQ(s.FirstIndex(), 21u);
  EXPECT_EQ(s.LastIndex(), 20u);
  EXPECT_TRUE(IsCompacted(s.ApplySnapshot(Snapshot{{10, 3}, "older"})));
}

}  // namespace
}  // namespace chainfire::raft
