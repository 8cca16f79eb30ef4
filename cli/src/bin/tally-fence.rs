//! `tally-fence`: the lease fence an agent starts around each dyno (see
//! `tally_fence`). Its own small binary, not a verb of `tally`, because one
//! runs beside every dyno: it links only the fence and parses its command
//! line by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == tally_fence::EXEC_DYNO) {
        let code = tally_fence::exec_dyno(args.get(1..).unwrap_or_default());
        return ExitCode::from(u8::try_from(code).unwrap_or(127));
    }
    match tally_fence::Options::parse(args) {
        Ok(opts) => ExitCode::from(u8::try_from(tally_fence::run(&opts)).unwrap_or(1)),
        Err(e) => {
            eprintln!("tally-fence: {e}\n{}", tally_fence::USAGE);
            ExitCode::from(2)
        }
    }
}
