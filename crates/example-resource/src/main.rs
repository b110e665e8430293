fn main() {
    protocol::main(example_resource::Example)
}
