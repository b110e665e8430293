fn main() {
    // The two in-pod modes of the kubernetes runner (see `reporter`), then the protocol.
    if let Some(code) = acceptance_run::reporter::main_if_asked() {
        std::process::exit(code);
    }
    protocol::main(acceptance_run::AcceptanceRun)
}
