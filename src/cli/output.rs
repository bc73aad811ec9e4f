//! Every command prints through here: `println!` panics when its stream
//! fails (`meshes schema | head -1` closes the pipe, `> /dev/full` has no
//! room), and a panic is exit 101 with a backtrace, where a command has an
//! exit code of its own to give.

use std::io::{self, Write};
use std::process::ExitCode;

/// Writes `text` to stdout and flushes it, so that a failure is seen here
/// rather than lost in the flush at exit.
pub fn out(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Writes `text` to stderr ([`Stderr`]). A failure is ignored: diagnostics
/// have nowhere else to go, and a log collector that went away must not
/// end a command (nor `serve`).
pub fn err(text: &str) {
    let _ = Stderr.write_all(text.as_bytes());
}

/// Stderr, whose write errors are dropped. The gateway must keep serving
/// (and keep its data safe) when its log sink breaks (a closed pipe, a full
/// disk, a collector restarting): the fmt layer would report the error with
/// `eprintln!`, which panics on that same stderr.
#[derive(Debug, Clone, Copy)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One call per record, so records from threads do not interleave.
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One line to stderr, never panicking ([`err`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::err(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

/// The exit code once a command's output is written, or not: `code` when
/// it was, or when its reader went away (`| head` took what it wanted, and
/// `validate` with errors must still fail the pipeline's `pipefail`); 2
/// (an I/O error) when it could not be written, said on stderr.
pub fn finish(code: ExitCode, written: io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            say!("error: cannot write the output: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints `text` and ends a command that succeeded ([`finish`]).
pub fn print(text: &str) -> ExitCode {
    finish(ExitCode::SUCCESS, out(text))
}
