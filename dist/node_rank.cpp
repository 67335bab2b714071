// dist/node_rank.cpp — which ranks share a host, found over the communicator itself (an
// all-gather of host-name hashes), so it works the same under any launcher and any backend.
#include <unistd.h>

#include <climits>
#include <string>

#include "dist/communicator.h"

namespace dfx::dist {

NodeRank node_rank(Communicator& comm) {
  if (comm.size() == 1) return {};
  char name[HOST_NAME_MAX + 1] = {};
  DFX_CHECK(gethostname(name, sizeof name - 1) == 0, "node_rank: gethostname failed");
  // FNV-1a of the host name, kept to 63 bits so it is a non-negative int64.
  uint64_t h = 1469598103934665603ull;
  for (const char* p = name; *p; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ull;
  }
  const int64_t mine = static_cast<int64_t>(h >> 1);
  Tensor all = comm.all_gather(from_vector<int64_t>({mine}, {1})).cpu();
  NodeRank r;
  r.local_rank = 0;
  r.local_size = 0;
  for (int k = 0; k < comm.size(); ++k) {
    if (all.data<int64_t>()[k] != mine) continue;
    if (k < comm.rank()) ++r.local_rank;
    ++r.local_size;
  }
  return r;
}

}  // namespace dfx::dist
