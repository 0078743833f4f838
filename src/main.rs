//! The `posta` binary: parse the command line, load configuration, start logging, then hand
//! over to the library. No logic of its own.

use std::process::ExitCode;

fn main() -> ExitCode {
    posta::cli::main()
}
