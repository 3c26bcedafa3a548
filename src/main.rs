//! The `memberctl` binary: parse, run, exit. Everything else is in the library.

use std::process::ExitCode;

/// mimalloc: planning 100,000 members makes millions of small allocations,
/// which it serves markedly faster than the system allocator: the
/// benchmark's steady plan of 100k takes 1.33 s with it and 1.84 s with
/// glibc's malloc (means of 3 alternating runs; glibc's peak RSS is 7%
/// lower). See docs/PERFORMANCE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(memberctl::cli::run(std::env::args_os().collect()))
}
