//! The `memberctl` binary: parse, run, exit. Everything else is in the library.

use std::process::ExitCode;

/// mimalloc: planning 100,000 members makes millions of small allocations,
/// which it serves markedly faster than the system allocator: on the
/// benchmark's 100k, the steady plan takes 0.51-0.53 s with it and
/// 0.96-1.22 s with glibc's malloc (which holds about 141 MB against 137).
/// Version 3 (the crate's default) rather than version 2 (its `v2`
/// feature): version 2 keeps less memory it no longer uses (steady plan 116
/// MB, 1M plan 1,086 MB against 1,102) but is slower (steady plan 0.55-0.56
/// s, 1M plan 5.5-5.7 s against 4.9-5.1 s), and both are inside the memory
/// targets. Alternating runs of the same build. See docs/PERFORMANCE.md.
///
/// Built with the crate's `no_thp` feature: transparent huge pages off for
/// this process. With them, the kernel zeroed (and, in `madvise` mode,
/// compacted memory for) 2 MB pages at first touch, and the 1M plan spent
/// 4.2-4.9 s in the kernel against 0.5-0.7 s without (7.8-9.5 s against
/// 6.1-7.8 s in all; the 100k first plan 0.80-0.90 s against 0.57-0.67 s,
/// and 10 MB less), alternating runs on the same busy day.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(memberctl::cli::run(std::env::args_os().collect()))
}
