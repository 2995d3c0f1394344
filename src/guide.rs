//! The user guide (`docs/src`, an mdBook) compiled as documentation tests:
//! every Rust block of every chapter runs with `cargo test --doc`, whether or
//! not mdBook is installed.

macro_rules! chapters {
    ($($name:ident = $file:literal),* $(,)?) => {
        $(
            #[doc = include_str!(concat!("../docs/src/", $file))]
            mod $name {}
        )*
    };
}

chapters! {
    introduction = "introduction.md",
    architecture = "architecture.md",
    size_classes = "size-classes.md",
    block_path = "block-path.md",
    options = "options.md",
    tuning = "tuning.md",
    stats = "stats.md",
    contexts_pressure = "contexts-pressure.md",
    buffer_pool = "buffer-pool.md",
    debugger = "debugger.md",
    server = "server.md",
    testing = "testing.md",
    troubleshooting = "troubleshooting.md",
    platforms = "platforms.md",
}
