//! The `memberctl` binary: parse, run, exit. Everything else is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed stdout (`memberctl plan | head`) is not an error worth a
    // panic: writes are ignored and the exit code stands.
    let code = memberctl::cli::run(std::env::args_os().collect());
    ExitCode::from(code)
}
