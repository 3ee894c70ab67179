fn main() -> std::process::ExitCode {
    storage_broker::cli::main()
}
