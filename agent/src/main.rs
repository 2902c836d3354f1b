fn main() -> std::process::ExitCode {
    rdpfleet_agent::cli::main()
}
