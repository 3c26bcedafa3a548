//! The `memberctl` binary: parse, run, exit. Everything else is in the library.

use std::process::ExitCode;

/// mimalloc: planning 100,000 members makes millions of small allocations,
/// which it serves markedly faster and more compactly than the system
/// allocator (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(memberctl::cli::run(std::env::args_os().collect()))
}
