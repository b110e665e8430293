fn main() {
    protocol::main(k8s_deploy::K8sDeploy)
}
