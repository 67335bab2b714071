// dist/local_communicator.cpp — the size-1 backend: collectives are identities (all_gather
// stacks the single tensor), so single-process code runs the same path as distributed code.
#include "dist/communicator.h"

namespace dfx::dist {
namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void all_reduce(const Tensor& t, ReduceOp) override {
    DFX_CHECK(t.defined(), "all_reduce: undefined tensor");
  }
  std::unique_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    all_reduce(t, op);
    return std::make_unique<DoneWork>();
  }
  void broadcast(const Tensor&, int root) override {
    DFX_CHECK(root == 0, "broadcast: root ", root, " out of range for 1 rank");
  }
  Tensor all_gather(const Tensor& t) override { return t.unsqueeze(0).contiguous().clone(); }
  void barrier() override {}
};

}  // namespace

std::shared_ptr<Communicator> make_local() { return std::make_shared<LocalCommunicator>(); }

}  // namespace dfx::dist
