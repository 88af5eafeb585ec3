//! Process-level protections for commands that hold AWS credentials and
//! tokens: no core dumps (a core of the REPL held the AWS secret and the
//! token, issue 10). The core-size limit is inherited by psql across exec.

/// Turn core dumps off for this process and what it execs. Best effort: a
/// platform without these calls just keeps its defaults.
pub fn no_core_dumps() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        );
    }
    // Also covers a core_pattern that pipes to a helper, which ignores the
    // size limit; exec (psql) resets it, the limit above stays.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}
