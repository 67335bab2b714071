// dist/nccl_stub.cpp — without CUDA and NCCL at configure time there is no NCCL backend; asking
// for it says how to get one.
#include "dist/nccl_communicator.h"

namespace dfx::dist {

std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator>, int) {
  DFX_FAIL("make_nccl: dfx was built without NCCL (it needs CUDA and the NCCL library at "
           "configure time: -Dcuda=enabled -Dnccl=enabled, -Dnccl_root=PREFIX when NCCL is not in "
           "the CUDA toolkit)");
}

bool nccl_available() { return false; }

cuda::Stream nccl_stream(const Communicator& comm) {
  DFX_FAIL("nccl_stream: dfx was built without NCCL; the communicator's backend is '",
           comm.backend(), "'");
}

}  // namespace dfx::dist
