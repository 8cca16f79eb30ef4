//! The fence an agent starts around each dyno: its one implementation is
//! the `tally-fence` crate (protocol, deadline semantics, readiness), run as
//! the small `tally-fence` binary installed beside `tally` (or, failing
//! that, as the hidden `tally fence` verb). This module re-exports what the
//! agent uses and finds the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

pub use tally_fence::{Options as FenceOptions, Ready, argv_of, kill_orphaned_group, run};

/// The fence's binary name, looked for beside the `tally` executable.
pub const FENCE_BIN: &str = "tally-fence";

/// How an agent starts a fence: `tally-fence ARGS`, or `tally fence ARGS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceExe {
    program: PathBuf,
    verb: bool,
}

impl FenceExe {
    /// `tally-fence` beside `tally_exe` (the running `tally`), or else
    /// `tally_exe fence` (about 5 MB resident per dyno instead of well under
    /// 1 MB), said once per process in a warning.
    #[must_use]
    pub fn beside(tally_exe: &Path) -> FenceExe {
        let small = tally_exe.with_file_name(FENCE_BIN);
        if small.is_file() {
            return FenceExe {
                program: small,
                verb: false,
            };
        }
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{} not found; dynos run under `{} fence` instead, which costs more memory per dyno",
                small.display(),
                tally_exe.display()
            );
        }
        FenceExe {
            program: tally_exe.to_path_buf(),
            verb: true,
        }
    }

    /// A command that starts a fence; the fence's arguments follow.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        if self.verb {
            cmd.arg("fence");
        }
        cmd
    }
}
