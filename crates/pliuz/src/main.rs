fn main() -> std::process::ExitCode {
    pliuz::cli::main()
}
