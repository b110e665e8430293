fn main() {
    protocol::main(acceptance_run::AcceptanceRun)
}
