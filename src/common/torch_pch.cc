// Compiled only to build the precompiled <torch/torch.h> that every
// LibTorch-including target reuses (see CMakeLists.txt).
