use std::process::ExitCode;

fn main() -> ExitCode {
    meshes::cli::main()
}
