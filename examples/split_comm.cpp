// examples/split_comm.cpp — dfx inside someone else's MPI program: the host initialises MPI,
// splits MPI_COMM_WORLD in two, and each half trains its own model data-parallel on its own
// communicator (dfx duplicates it). dfx neither re-initialises nor finalises MPI; the host does.
//   mpiexec -n 4 build/examples/split_comm
#include <mpi.h>

#include <cstdio>

#include <dfx/dfx.h>
#include <dfx/dist/data_parallel.h>
#include <dfx/dist/mpi_communicator.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const int color = world_rank % 2;  // two independent groups
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, color, world_rank, &half);
  {
    using namespace dfx;
    auto comm = dist::make_mpi(half);
    // Each group fits w to its own target (2 for group 0, -3 for group 1): sum_s (w x_s - t x_s)^2.
    const double target = color == 0 ? 2.0 : -3.0;
    Var w(full({1}, 0.5, DType::Float64), true);
    dist::GradReducer reducer(comm, {w});
    const int64_t B = 6;
    for (int step = 0; step < 50; ++step) {
      std::vector<int64_t> batch;
      for (int64_t i = 0; i < B; ++i) batch.push_back(step * B + i);
      auto mine = dist::shard_indices(batch, comm->rank(), comm->size());
      w.zero_grad();
      if (!mine.empty()) {
        Tensor x = Tensor::empty({static_cast<int64_t>(mine.size())}, DType::Float64);
        for (size_t k = 0; k < mine.size(); ++k) x.set({static_cast<int64_t>(k)}, 1.0 + 0.1 * (mine[k] % 7));
        Var r = w * Var(x) - Var(x) * target;
        (ad::sum(r * r) / static_cast<double>(B)).backward();
      }
      reducer.finish();
      kernels::axpy_(w.mutable_data(), -0.2, w.grad().data());
    }
    if (comm->rank() == 0)
      std::printf("group %d (%d ranks): w = %.6f (target %.1f)\n", color, comm->size(), w.item(), target);
  }
  MPI_Comm_free(&half);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) std::printf("error: dfx finalised MPI behind the host's back\n");
  MPI_Finalize();
  return finalized ? 1 : 0;
}
