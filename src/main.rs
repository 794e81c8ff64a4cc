fn main() -> std::process::ExitCode {
    servicedb::cli::main()
}
