fn main() -> std::process::ExitCode {
    cni_types::skel::run(&loopback::Loopback, loopback::ABOUT)
}
