//! `tally-fence`: the lease fence an agent starts around each dyno (see
//! `tally_fence`). Its own small binary, not a verb of `tally`, because one
//! runs beside every dyno: it links only the fence and parses its command
//! line by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    match tally_fence::Options::parse(std::env::args_os().skip(1)) {
        Ok(opts) => ExitCode::from(u8::try_from(tally_fence::run(&opts)).unwrap_or(1)),
        Err(e) => {
            eprintln!("tally-fence: {e}\n{}", tally_fence::USAGE);
            ExitCode::from(2)
        }
    }
}
