//! The agent, stamped with the next patch version of the crate's: what a release pipeline's
//! newer build is to the update tests (same code, newer version).
fn main() -> std::process::ExitCode {
    let mut v = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate's version is semantic");
    v.patch += 1;
    rdpfleet_agent::cli::main_as(Box::leak(v.to_string().into_boxed_str()))
}
