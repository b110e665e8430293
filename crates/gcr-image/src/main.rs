fn main() {
    protocol::main(gcr_image::GcrImage)
}
