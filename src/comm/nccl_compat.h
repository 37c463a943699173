// Vendor version gates for NCCL and CUDA, in one place (as c10d's NCCLUtils.hpp).
// Other files test the feature macros defined here, never version numbers.
#pragma once

#include <nccl.h>

#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "stylefleet needs NCCL 2.10 or newer (ncclAvg)"
#endif

// ncclGetLastError (2.13+) adds the detail behind an error code.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
#define STYLEFLEET_NCCL_HAS_LAST_ERROR 1
#else
#define STYLEFLEET_NCCL_HAS_LAST_ERROR 0
#endif
