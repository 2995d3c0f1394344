//! Child processes of a test binary: a test that needs a fresh process
//! (options are read once per process, RSS and thread counts are
//! process-wide) runs one named test of its own binary as a child.

/// Runs `test` (its full path, `module::name` in a directory target) of this
/// binary in a child process with `env` set, and returns the child's output if
/// it passed.
pub fn run_in_child(test: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    cmd.env("RUSTYDB_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {test} did not run:\n{text}"
    );
    text
}

/// Whether this process is a child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os("RUSTYDB_TEST_CHILD").is_some()
}
