//! The `pollen` command. Everything happens in the library; see `pollen --help`.

fn main() -> std::process::ExitCode {
    pollen_host::cli::main()
}
