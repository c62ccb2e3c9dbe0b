// CPU batched linear assignment: OpenMP threads take problems in dynamic chunks (problems of one size cost about
// the same, but the machine may be shared) and solve each with lap_solve (lap.h). Each thread carves its work
// arrays once, before its loop, out of one buffer allocated here; nothing is allocated per problem.
#include <cstdint>
#include <vector>

#if defined(WMF_WITH_OPENMP)
#include <omp.h>
#endif

#include "assign/lap.h"
#include "common/check.h"

namespace wmf {

template <class T>
void linear_assignment_cpu(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total) {
  WMF_CHECK(costs.n >= 1 && costs.n <= INT32_MAX / 4, "problems must have 1 <= n < 2^29 rows, got ", costs.n);
  WMF_CHECK(costs.count >= 0, "negative problem count");
  WMF_CHECK(perm.rows == costs.count && perm.cols == costs.n && perm.col_stride == 1, "perm must be [B, n]");
  WMF_CHECK(total.size == costs.count, "total must be [B]");
  const int64_t count = costs.count;
  const int32_t n = static_cast<int32_t>(costs.n);
  if (count == 0) return;
  int threads = 1;
#if defined(WMF_WITH_OPENMP)
  threads = omp_get_max_threads();
  if (count < threads) threads = static_cast<int>(count);
#endif
  const int64_t per_thread = lap_work_bytes(n) / 8;
  std::vector<double> scratch(static_cast<size_t>(per_thread * threads));  // 8-byte aligned; may throw here
  // About 64 K cost entries per chunk: few scheduling events for tiny problems, balance for large ones.
  const int64_t chunk = n * n >= 65536 ? 1 : 65536 / (n * n);

#if defined(WMF_WITH_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
  {
    int thread = 0;
#if defined(WMF_WITH_OPENMP)
    thread = omp_get_thread_num();
#endif
    const LapWork work = lap_work_at(reinterpret_cast<unsigned char*>(scratch.data() + thread * per_thread), n);
#if defined(WMF_WITH_OPENMP)
#pragma omp for schedule(dynamic, chunk)
#endif
    for (int64_t b = 0; b < count; ++b) {
      total[b] = lap_solve(costs.problem(b), n, work, perm.data + b * perm.row_stride);
    }
  }
}

template void linear_assignment_cpu<float>(CostBatch<float>, Mat<int64_t>, Vec<double>);
template void linear_assignment_cpu<double>(CostBatch<double>, Mat<int64_t>, Vec<double>);

}  // namespace wmf
