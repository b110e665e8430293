fn main() {
    protocol::main(github_promote_pr::PromotePr)
}
