// The thread pools of the BLAS library that LibTorch calls for matrix
// products (Gram matrices and their gradients).
//
// Debian's LibTorch calls whatever libblas.so.3 the system points to. An
// optimized BLAS keeps a thread pool of its own, sized when it is loaded by
// the CPUs the process may run on, whatever LibTorch's set_num_threads says.
// A rank that mpirun binds to one core then multiplies on one thread, and the
// same command unbound on two; the two split sums differently, so their
// results differ in the last bits (which Adam amplifies), and unbound ranks
// oversubscribe the node. Setting the pool from the rank's thread budget
// removes both.
#pragma once

#include <string>

namespace stylefleet {

/// Sets the thread pool of the BLAS library loaded into this process to
/// `threads` (> 0), through that library's own C API found at run time:
/// OpenBLAS (openblas_set_num_threads), BLIS (bli_thread_set_num_threads) or
/// Intel MKL (MKL_Set_Num_Threads). Returns what was set, for the log
/// ("OpenBLAS: 2 threads"); "" when no such library is loaded (the reference
/// BLAS has no threads, so nothing needs setting). Thread-safe, but the pool
/// is the process's: call it before training starts.
std::string SetBlasThreads(int threads);

/// The threads the loaded BLAS says its pool has (openblas_get_num_threads,
/// bli_thread_get_num_threads or MKL_Get_Max_Threads); 0 when none of them is
/// loaded.
int BlasThreads();

}  // namespace stylefleet
