fn main() -> std::process::ExitCode {
    cni_types::skel::run(&host_local::HostLocal, host_local::ABOUT)
}
