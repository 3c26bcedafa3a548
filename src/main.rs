//! The `memberctl` binary: parse, run, exit. Everything else is in the library.

use std::process::ExitCode;

/// mimalloc: planning 100,000 members makes millions of small allocations,
/// which it serves markedly faster than the system allocator. Its version 2
/// (the crate's `v2` feature), not the default version 3, because it keeps
/// less memory it no longer uses: on the benchmark's 100k (3 alternating
/// runs of each, same build otherwise), the first plan takes 0.57-0.59 s in
/// 134-139 MB with version 2, 0.57-0.72 s in 164-168 MB with version 3 and
/// 0.63-0.79 s in 141 MB with glibc's malloc; the steady plan 0.60-0.79 s
/// in 138-143 MB, 0.57-0.75 s in 159-165 MB and 0.96-1.22 s in 141 MB.
/// See docs/PERFORMANCE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(memberctl::cli::run(std::env::args_os().collect()))
}
