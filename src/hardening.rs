//! Process-level protections for commands that hold AWS credentials and
//! tokens: no core dumps (a core of the REPL held the AWS secret and the
//! token, issue 10). The core-size limit is inherited by psql across exec.

/// Turn core dumps off for this process and what it execs. Best effort: a
/// platform without these calls just keeps its defaults.
pub fn no_core_dumps() {
    #[cfg(unix)]
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    // Also covers a core_pattern that pipes to a helper, which ignores the
    // size limit; exec (psql) resets it, the limit above stays.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_dumpable(false);
}
