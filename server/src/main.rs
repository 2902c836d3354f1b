fn main() -> std::process::ExitCode {
    rdpfleet_server::cli::main()
}
