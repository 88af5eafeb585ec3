//! A child command that lives and dies with us (`rdsiam run`, issue 24).
//!
//! - [`die_with_us`]: if rdsiam is killed (SIGKILL leaves no chance to pass
//!   anything on), the kernel kills COMMAND too, instead of leaving it to run
//!   on against a proxy that is gone.
//! - [`Interrupts`]: SIGINT and SIGQUIT with who sent them. The terminal's
//!   Ctrl-C reaches COMMAND directly (same process group), so we only outlive
//!   it; a `kill -INT` aimed at rdsiam's own PID reaches only us, and is
//!   passed on. Linux says which is which (`si_code`); elsewhere every one is
//!   treated as the terminal's, as before.

use std::io;

use nix::sys::signal::Signal;

/// Makes `command`'s process receive SIGKILL when the thread that spawns it
/// (the runtime's, which lives as long as rdsiam) ends, and start with the
/// signals [`Interrupts::block`] blocked unblocked again (a blocked mask is
/// inherited across exec; psql would never see Ctrl-C).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_us(command: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    let mut interrupts = nix::sys::signal::SigSet::empty();
    interrupts.add(Signal::SIGINT);
    interrupts.add(Signal::SIGQUIT);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (pthread_sigmask, prctl, getppid, kill), and nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            interrupts.thread_unblock().map_err(io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died before prctl took effect.
            if nix::unistd::getppid() != parent {
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGKILL);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_us(_command: &mut tokio::process::Command) {}

/// Where an interrupt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The kernel: a terminal's Ctrl-C or Ctrl-\ to the foreground group.
    Terminal,
    /// `kill(2)` by the process with this PID.
    Process(i32),
}

/// SIGINT and SIGQUIT, each with its sender. Create it with [`Interrupts::block`]
/// before any thread is started, so no thread takes them the default way.
pub struct Interrupts {
    #[cfg(target_os = "linux")]
    received: tokio::sync::mpsc::Receiver<io::Result<(Signal, From)>>,
    #[cfg(not(target_os = "linux"))]
    int: tokio::signal::unix::Signal,
    #[cfg(not(target_os = "linux"))]
    quit: tokio::signal::unix::Signal,
}

#[cfg(target_os = "linux")]
pub struct Blocked(nix::sys::signal::SigSet);

#[cfg(not(target_os = "linux"))]
pub struct Blocked;

impl Interrupts {
    /// Blocks SIGINT and SIGQUIT in this thread (threads started later
    /// inherit that); a child must unblock them ([`die_with_us`]). Call
    /// before the runtime is built.
    #[cfg(target_os = "linux")]
    pub fn block() -> io::Result<Blocked> {
        use nix::sys::signal::SigSet;
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGQUIT);
        set.thread_block().map_err(io::Error::from)?;
        Ok(Blocked(set))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn block() -> io::Result<Blocked> {
        Ok(Blocked)
    }

    /// Starts reading them: a thread of its own blocks on the signalfd
    /// (a blocking read needs no unsafe registration with the runtime).
    #[cfg(target_os = "linux")]
    pub fn new(blocked: Blocked) -> io::Result<Interrupts> {
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let fd =
            SignalFd::with_flags(&blocked.0, SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        let (tx, received) = tokio::sync::mpsc::channel(8);
        std::thread::Builder::new()
            .name("rdsiam-signals".into())
            .spawn(move || {
                loop {
                    let next = match fd.read_signal() {
                        Ok(Some(info)) => Ok(sender(&info)),
                        Ok(None) => continue,
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(err) => Err(io::Error::from(err)),
                    };
                    let failed = next.is_err();
                    if tx.blocking_send(next).is_err() || failed {
                        return;
                    }
                }
            })?;
        Ok(Interrupts { received })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(_blocked: Blocked) -> io::Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Interrupts {
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The next SIGINT or SIGQUIT.
    #[cfg(target_os = "linux")]
    pub async fn recv(&mut self) -> io::Result<(Signal, From)> {
        match self.received.recv().await {
            Some(next) => next,
            None => std::future::pending().await,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub async fn recv(&mut self) -> io::Result<(Signal, From)> {
        tokio::select! {
            _ = self.int.recv() => Ok((Signal::SIGINT, From::Terminal)),
            _ = self.quit.recv() => Ok((Signal::SIGQUIT, From::Terminal)),
        }
    }
}

/// The signal and its sender, from what the kernel told the signalfd.
#[cfg(target_os = "linux")]
fn sender(info: &nix::sys::signalfd::siginfo) -> (Signal, From) {
    let signal = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGINT);
    // SI_USER (0), SI_QUEUE (-1), SI_TKILL (-6): a process sent it;
    // SI_KERNEL (0x80): the terminal did.
    let from = if info.ssi_code <= 0 {
        From::Process(info.ssi_pid as i32)
    } else {
        From::Terminal
    };
    (signal, from)
}
