fn main() -> std::process::ExitCode {
    cni_types::skel::run(&bridge::Bridge::default(), bridge::ABOUT)
}
